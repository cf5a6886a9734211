"""SIGINT (Ctrl-C) as a request that ``fit`` honours at the end of the current step.

While a :class:`InterruptRequests` block is active in the main thread, the first SIGINT only
sets ``requested``; the trainer finishes the step, lets checkpoint callbacks write, and raises
:class:`~tensornet.errors.TrainingInterrupted`. The handler then gives SIGINT back to the
previous handler, so a second Ctrl-C interrupts at once, as usual.
"""
from __future__ import annotations

import signal
import threading


class InterruptRequests:
    """Context manager: ``requested`` becomes True when SIGINT arrives (``enabled=False``, or
    outside the main thread where handlers cannot be installed, leaves SIGINT alone)."""

    def __init__(self, enabled=True):
        self.enabled = enabled
        self.requested = False
        self._previous = None
        self._installed = False

    def __enter__(self):
        if self.enabled and threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, self._handle)
            self._previous = signal.default_int_handler if previous is None else previous
            self._installed = True
        return self

    def _handle(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, self._previous)

    def __exit__(self, *exc):
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False
        return False
