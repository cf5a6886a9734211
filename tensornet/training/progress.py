"""Progress output of ``fit``: Keras' ``verbose`` levels, drawn with tqdm.

- ``verbose=1`` on a terminal: one tqdm bar per epoch, redrawn in place, with samples/s, the
  ETA, and the running loss and metrics (read from the device at most every
  ``REFRESH_SECONDS``, never per step); when the epoch ends the bar is replaced by its
  finished form with the epoch's logs, validation included, which stays as that epoch's line.
- ``verbose=1`` when the output is not a terminal (a log file, a pipe, CI), and ``verbose=2``:
  one clean line per epoch, no carriage returns.
- ``verbose=0``: nothing.

In data-parallel ``fit`` only rank 0 prints. The epoch's line (and the finished bar) holds the
values over the whole global batch, every rank's rows (the sums are all-reduced at the epoch's
end); the bar's running values during the epoch are rank 0's rows only, and say so
(``rank 0's rows: loss: ...``), since reading every rank's would cost a collective per redraw.

tqdm is a dependency of tensornet; should it be missing (a vendored copy, say) ``verbose=1``
writes the one-line-per-epoch form everywhere.
"""
from __future__ import annotations

import io
import os
import sys
import time

from .callbacks import Callback

#: Least time between two reads of the running loss for the bar (seconds).
REFRESH_SECONDS = 0.5
#: Least time between two redraws of the bar (tqdm's ``mininterval``, seconds).
REDRAW_SECONDS = 0.1


def format_logs(logs) -> str:
    """``loss: 0.1234 - accuracy: 0.9876 - ...`` (4 decimals; small rates in scientific form)."""
    parts = []
    for key, value in logs.items():
        if key in ("batch", "size"):
            continue
        if isinstance(value, float) and value != 0 and abs(value) < 1e-3:
            parts.append(f"{key}: {value:.4e}")
        elif isinstance(value, (int, float)):
            parts.append(f"{key}: {value:.4f}")
        else:
            parts.append(f"{key}: {value}")
    return " - ".join(parts)


def epoch_line(epoch, epochs, steps, samples, elapsed, logs) -> str:
    """The one line written per epoch by ``verbose=2`` and off a terminal."""
    rate = samples / elapsed if elapsed > 0 else float("inf")
    text = f"Epoch {epoch + 1}/{epochs} - {steps} steps - {elapsed:.1f}s - {rate:,.0f} samples/s"
    formatted = format_logs(logs)
    return text + (" - " + formatted if formatted else "")


_printed_notes = set()


def print_path_note(ops):
    """Print the backend's note on a faster path it cannot take here (``faster_path_note``:
    which path ``fit`` takes and the command that gets the faster one), once per process."""
    note = ops.faster_path_note()
    if note and note not in _printed_notes:
        _printed_notes.add(note)
        print(f"tensornet: {note}", flush=True)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _terminal_size(stream):
    """{} when tqdm can size the bar to the terminal; fixed ``ncols``/``nrows`` when the terminal
    reports no size (a fresh pseudo-terminal says 0 x 0, and tqdm would then draw nothing)."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return {"dynamic_ncols": True}
    if size.columns > 0 and size.lines > 0:
        return {"dynamic_ncols": True}
    return {"ncols": size.columns or 100, "nrows": size.lines or 24}


def _tqdm():
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


class ProgressLogger(Callback):
    """Keras' ProgbarLogger: what ``fit(verbose=...)`` prints (the trainer adds it).

    ``stream``: where to write (default: ``sys.stdout`` at the time of construction).
    ``mode``: ``"bar"`` (tqdm bar redrawn in place) or ``"lines"`` (one line per epoch);
    by default ``"bar"`` when ``verbose == 1``, the stream is a terminal and tqdm imports.
    """

    def __init__(self, verbose=1, stream=None, mode=None):
        super().__init__()
        self.verbose = verbose
        self.stream = stream if stream is not None else sys.stdout
        if mode is None:
            mode = "bar" if verbose == 1 and _isatty(self.stream) and _tqdm() is not None else "lines"
        if mode not in ("bar", "lines"):
            raise ValueError(f"mode must be 'bar' or 'lines'; got {mode!r}")
        self.mode = mode if verbose else "off"
        self.bar = None
        self._started = self._last_read = 0.0
        self._samples = 0
        self._scope = ""  # what the running values cover when they are not the whole global batch

    @property
    def wants_batch_hooks(self):
        return self.mode == "bar"

    def on_train_begin(self, logs=None):
        parallel = getattr(self.run, "parallel", None)
        self._scope = "rank 0's rows: " if parallel is not None else ""

    def on_epoch_begin(self, epoch, logs=None):
        self._started = self._last_read = time.perf_counter()
        self._samples = 0
        self._epoch = epoch
        self.bar = None

    def _open_bar(self):
        tqdm = _tqdm()
        epochs = self.params.get("epochs", "?")
        self.bar = tqdm(total=self.params.get("samples"), desc=f"Epoch {self._epoch + 1}/{epochs}", unit=" samples",
                        unit_scale=False, file=self.stream, leave=False, **_terminal_size(self.stream),
                        mininterval=REDRAW_SECONDS,
                        bar_format="{desc}: {percentage:3.0f}%|{bar:20}| {n_fmt}/{total_fmt} "
                                   "[{elapsed}<{remaining}, {rate_fmt}]{postfix}")

    def on_train_batch_end(self, batch, logs=None):
        if self.mode != "bar":
            return
        if self.bar is None:  # opened at the first batch, after on_epoch_begin messages
            self._open_bar()
        size = (logs or {}).get("size", 0)
        self._samples += size
        now = time.perf_counter()
        if now - self._last_read >= REFRESH_SECONDS:
            self._last_read = now
            self.bar.set_postfix_str(self._scope + format_logs(logs or {}), refresh=False)
        self.bar.update(size)

    def on_epoch_end(self, epoch, logs=None):
        elapsed = time.perf_counter() - self._started
        logs = dict(logs or {})
        if self.mode == "bar" and self.bar is not None:
            bar, self.bar = self.bar, None
            bar.set_postfix_str(format_logs(logs), refresh=False)
            # The finished bar is rewritten in full, validation logs included, however narrow
            # the terminal (tqdm would cut the line at its width).
            final = bar.format_meter(**{**bar.format_dict, "ncols": None})
            bar.close()
            self.stream.write(final + "\n")
            self.stream.flush()
        elif self.mode in ("lines", "bar"):
            samples = self._samples or self.params.get("samples", 0)
            self.stream.write(epoch_line(epoch, self.params.get("epochs", epoch + 1), self.params.get("steps", 0),
                                         samples, elapsed, logs) + "\n")
            self.stream.flush()

    def on_train_end(self, logs=None):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
