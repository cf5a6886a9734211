"""The training loop behind ``fit``, ``evaluate`` and ``predict`` (:mod:`.trainer`) and what runs
around it: callbacks, checkpoints and mid-epoch resume, progress output, the divergence guard,
SIGINT handling, out-of-memory advice and the checks on user input."""
