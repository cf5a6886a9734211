"""Where a layered training step spends its time, backend operation by backend operation,
measured inside ``fit`` on one of bench/compare.py's networks.

Every public method of the model's backend instance is wrapped with a timer for one ``fit`` of
``--steps`` batches (random data, after a few warm-up batches); each line is a method's total
time per step and calls per step, a call made inside another timed call listed as
``outer/inner`` (its time is part of the outer one's too). The step line is the whole ``fit``
over the batch count, Python and callbacks included. Memory-bound operations (the optimizer's
update, dropout, batch normalization, pooling) show first how loaded the shared host is:
their times move most between runs.

    python bench/profile_ops.py mlp-512-bn-dropout     # 784-512-512-10 with BatchNormalization + Dropout
    python bench/profile_ops.py cnn-small --steps 100
    python bench/profile_ops.py mnist-cnn --steps 12
"""
from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare  # noqa: E402
import compare_cnn  # noqa: E402

#: backend methods that are not operations of the step (workspaces, dispatch, dtypes)
NOT_TIMED = {"scratch", "workspace", "asarray", "empty", "zeros", "dtype"}


def build(name):
    """(model, input shape, classes, batch, one_hot) for a case of bench/compare.py (a step case,
    trained on one-hot targets, or a CNN row, on integer labels)."""
    if name in compare_cnn.CASES:
        return compare_cnn.build_tensornet(name), (28, 28, 1), 10, compare_cnn.BATCH, False
    for case, sizes, batch, optimizer, block, _ in compare.CASES:
        if case == name:
            model = compare.build_tensornet(sizes, "numpy", optimizer=optimizer, block=block)
            return model, (sizes[0],), sizes[-1], batch, True
    raise SystemExit(f"unknown case {name!r}; the cases are "
                     + ", ".join([c[0] for c in compare.CASES] + list(compare_cnn.CASES)))


def instrument(ops, totals, calls):
    """Wrap every public method of ``ops`` (this instance only) to add its time to ``totals``."""
    stack = []

    def timed(method, name):
        def wrapper(*args, **kwargs):
            stack.append(name)
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                seconds = time.perf_counter() - start
                stack.pop()
                key = f"{stack[-1]}/{name}" if stack else name
                totals[key] += seconds
                calls[key] += 1
        return wrapper

    for name in dir(type(ops)):
        if name.startswith("_") or name in NOT_TIMED or not callable(getattr(type(ops), name, None)):
            continue
        setattr(ops, name, timed(getattr(ops, name), name))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("case", help="a case of bench/compare.py: a step case or a CNN row")
    parser.add_argument("--steps", type=int, default=200, help="timed batches")
    parser.add_argument("--warmup", type=int, default=5, help="untimed batches first")
    parser.add_argument("--top", type=int, default=20, help="lines printed")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 1:
        raise SystemExit("--steps and --warmup must be at least 1")
    model, shape, classes, batch, one_hot = build(args.case)
    rng = np.random.default_rng(0)
    x = rng.random((batch * args.steps, *shape), dtype=np.float32)
    y = rng.integers(0, classes, batch * args.steps)
    if one_hot:
        y = np.eye(classes, dtype=np.float32)[y]
    fit = dict(batch_size=batch, epochs=1, verbose=0)
    model.fit(x[:batch * args.warmup], y[:batch * args.warmup], **fit)
    totals, calls = collections.defaultdict(float), collections.Counter()
    instrument(model.ops, totals, calls)
    start = time.perf_counter()
    model.fit(x, y, **fit)
    whole = time.perf_counter() - start
    print(f"{args.case}, batch {batch}, {args.steps} steps, step path {model.step_path}: "
          f"{whole / args.steps * 1e3:.3f} ms per step")
    for key, seconds in sorted(totals.items(), key=lambda item: -item[1])[:args.top]:
        print(f"  {key:<44} {seconds / args.steps * 1e3:8.3f} ms  x{calls[key] / args.steps:.0f}")


if __name__ == "__main__":
    main()
