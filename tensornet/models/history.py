"""A model's training history across saves and resumes, and writing it to JSON or CSV."""
from __future__ import annotations

import csv
import io
import json
import os

from ..io.files import atomic_write


def full_history(model):
    """(logs, epochs): the model's history over every run, the one it was loaded with (before a
    resume) followed by the current ``model.history``; keys missing from a part read as NaN."""
    current = getattr(model, "history", None)
    logs = dict(getattr(current, "history", {}) or {})
    epochs = list(getattr(current, "epoch", []) or [])
    before_logs, before_epochs = getattr(model, "_loaded_history", ({}, []))
    first = min(epochs) if epochs else None
    keep = [i for i, e in enumerate(before_epochs) if first is None or e < first]
    if current is not None and before_epochs == epochs and before_logs == logs:
        keep = []
    keys = list(dict.fromkeys([*before_logs, *logs]))
    merged = {}
    for key in keys:
        old = before_logs.get(key, [])
        new = logs.get(key, [])
        merged[key] = ([old[i] if i < len(old) else float("nan") for i in keep]
                       + [new[i] if i < len(new) else float("nan") for i in range(len(epochs))])
    return merged, [before_epochs[i] for i in keep] + epochs


def write_history(logs, epochs, path):
    """Write a history as JSON (``.json``: ``{"epoch": [...], "loss": [...], ...}``) or CSV
    (anything else: ``epoch`` then the keys in sorted order, as CSVLogger), atomically."""
    path = os.fspath(path)
    if path.lower().endswith(".json"):
        text = json.dumps({"epoch": list(epochs), **logs}, indent=1)
    else:
        buffer = io.StringIO()
        keys = sorted(logs)
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["epoch", *keys])
        for i, epoch in enumerate(epochs):
            writer.writerow([epoch, *(logs[k][i] for k in keys)])
        text = buffer.getvalue()
    with atomic_write(path) as handle:
        handle.write(text.encode())
    return path
