"""The command line: ``tensornet train`` (a network on Fashion-MNIST, end to end) and
``tensornet info`` (versions, backend, device, self-check), one job per module:

- :mod:`.parser`: the commands and options, their help and defaults; :mod:`.values`, each
  option's value checked from its text; :mod:`.checks`, the options checked against each other
  (all before any data loads);
- :mod:`.train`: the train command; :mod:`.outputs`: the files it writes after the run;
- :mod:`.info`: the info command;
- :mod:`.distributed`: the train command on each rank of an MPI launch;
- :mod:`.main`: the entry point, which maps failures to one line and an exit status.
"""
from .main import main
from .parser import build_parser

__all__ = ["main", "build_parser"]
