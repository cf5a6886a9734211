"""``python -m tensornet``: the same command line as the ``tensornet`` entry point."""
import sys

from .cli import main

sys.exit(main())
