"""Training curves: ``tensornet.plot.history(history, path)`` draws loss and accuracy per epoch,
training and validation, into an image file (PNG, SVG, PDF: by the path's extension).

Needs matplotlib (``pip install tensornet[plot]``); it is drawn with matplotlib's object API
on an Agg canvas, so it works without a display and leaves pyplot's global state alone.
"""
from __future__ import annotations

import os


def _require_matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("tensornet.plot needs matplotlib: pip install 'tensornet[plot]' "
                          "(or pip install matplotlib)") from None
    return Figure, FigureCanvasAgg


def _as_dict(history):
    if hasattr(history, "history") and isinstance(history.history, dict):
        epochs = list(getattr(history, "epoch", []) or [])
        return dict(history.history), epochs
    if isinstance(history, dict):
        return dict(history), []
    raise TypeError(f"history must be a History (what fit returns) or a dict of per-epoch lists; got "
                    f"{type(history).__name__}")


def panels(logs: dict) -> list:
    """The quantities to draw, one panel each: ``loss`` first, then each metric (the ``val_``
    curves go into their training quantity's panel)."""
    names = [key for key in logs if not key.startswith("val_") and key != "learning_rate"]
    names += [key[4:] for key in logs if key.startswith("val_") and key[4:] not in names]
    names.sort(key=lambda name: (name != "loss", name))
    return names


def history(history, path, title=None, dpi=120):
    """Draw ``history`` (a :class:`~tensornet.callbacks.History` or its ``.history`` dict) into
    ``path``: one panel per quantity (loss, accuracy, ...), training and validation curves
    against the epoch number (1-based). Returns ``path``."""
    logs, epochs = _as_dict(history)
    names = panels(logs)
    if not names or not any(logs.get(name) or logs.get("val_" + name) for name in names):
        raise ValueError("the history holds no epochs to plot")
    Figure, FigureCanvasAgg = _require_matplotlib()
    figure = Figure(figsize=(5.0 * len(names), 4.0), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names):
        for key, label, style in ((name, "training", "o-"), ("val_" + name, "validation", "s--")):
            values = logs.get(key)
            if not values:
                continue
            xs = [e + 1 for e in epochs] if len(epochs) == len(values) else list(range(1, len(values) + 1))
            ax.plot(xs, values, style, label=label, markersize=4)
        ax.set_title(name.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.set_ylabel(name.replace("_", " "))
        ax.grid(True, alpha=0.3)
        ax.legend()
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        figure.suptitle(title)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    figure.savefig(path)
    return path
