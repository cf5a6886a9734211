"""What ``tensornet train`` writes after the run: the model (``--save``), the per-epoch history
(``--history``, or beside the model) and the training curves (``--plot``)."""
from __future__ import annotations

import os


def write_outputs(model, save_path, args):
    """The final model, the history and the plot, written by rank 0 only in a data-parallel run."""
    from ..distributed import is_root
    from ..models import history as saving_history

    if not is_root():
        return
    if save_path:
        model.save(save_path)
        print(f"saved model to {save_path}", flush=True)
    logs, epochs = saving_history.full_history(model)
    history_path = args.history
    if history_path is None and save_path:
        history_path = os.path.splitext(save_path)[0] + ".history.csv"
    if history_path:
        saving_history.write_history(logs, epochs, history_path)
        print(f"wrote history to {history_path}", flush=True)
    if args.plot:
        from .. import plot
        from ..training.callbacks import History

        history = History()
        history.history, history.epoch = logs, epochs
        hidden = "-".join(str(layer.units) for layer in model.layers[:-1] if hasattr(layer, "units"))
        network = "CNN" if getattr(args, "model", "mlp") == "cnn" else f"MLP {hidden or '-'}"
        plot.history(history, args.plot, title=f"{args.dataset}, {network}: training curves")
        print(f"wrote plot to {args.plot}", flush=True)
