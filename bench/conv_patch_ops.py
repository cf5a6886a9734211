"""Per-op timer of the NumPy backend's convolution and pooling kernels on the shapes of
bench/compare_cnn.py's two networks (batch 128), and of the direct convolution on their first
layers and on an RGB one (32x32x3 into 32 filters): each op of this tree against a baseline,
interleaved in one process, median milliseconds over ``--rounds`` rounds.

The baseline is another revision's ``tensornet/backend/_numba_conv.py`` and
``_numba_direct_conv.py`` (``--baseline``, a git revision, default ``main``) with that
revision's dispatch: the reference (ConvOps) for im2col / col2im under ``--min-channels``
channels and for average pooling and the bias gradient (``numpy.add.reduce``), its Numba
kernels otherwise.

    python bench/conv_patch_ops.py --rounds 15
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from tensornet.backend.base import Backend
from tensornet.backend.conv_ops import conv_geometry
from tensornet.backend.numpy_backend import NumpyBackend
from tensornet.backend.numpy_conv import _axes


def _baseline_module(revision, name="_numba_conv"):
    """``tensornet/backend/<name>.py`` as it is at ``revision``, loaded beside this tree's modules
    (its relative imports made absolute)."""
    source = subprocess.run(["git", "show", f"{revision}:tensornet/backend/{name}.py"], check=True,
                            capture_output=True, text=True).stdout
    source = source.replace("from ._numba", "from tensornet.backend._numba")
    path = os.path.join(tempfile.mkdtemp(), f"{name}_baseline.py")
    with open(path, "w") as handle:
        handle.write(source)
    spec = importlib.util.spec_from_file_location(f"{name}_baseline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cases(base, base_direct, ref, tree, min_channels, rng, twin):
    """(name, baseline callable, this tree's callable) for each op and shape."""
    cases = []
    conv = [("small conv1", (128, 28, 28, 1), "same"), ("small conv2", (128, 14, 14, 8), "valid"),
            ("mnist conv1", (128, 28, 28, 1), "valid"), ("mnist conv2", (128, 26, 26, 32), "valid")]
    for name, shape, padding in conv:
        x = rng.standard_normal(shape).astype("float32")
        rows, cols = conv_geometry(shape[1:], (3, 3), (1, 1), (1, 1), padding)
        out = ref.im2col(x, rows, cols)
        c = shape[3]
        base_fn = ((lambda x=x, out=out, r=rows, q=cols: base.im2col[0](x, out, *_axes(r, q))) if c >= min_channels
               else (lambda x=x, out=out, r=rows, q=cols: ref.im2col(x, r, q, out=out)))
        cases.append((f"im2col {name}", base_fn, lambda x=x, r=rows, q=cols, out=out: tree.im2col(x, r, q, out=out)))
        if name.endswith("conv2"):
            dcols = rng.standard_normal(out.shape).astype("float32")
            dx = np.empty(shape, "float32")
            base_fn = ((lambda d=dcols, dx=dx, r=rows, q=cols: base.col2im[0](d, dx, *_axes(r, q))) if c >= min_channels
                   else (lambda d=dcols, s=shape, r=rows, q=cols, dx=dx: ref.col2im(d, s, r, q, out=dx)))
            cases.append((f"col2im {name}", base_fn,
                          lambda d=dcols, s=shape, r=rows, q=cols, dx=dx: tree.col2im(d, s, r, q, out=dx)))
    for name, shape in [("small pool1", (128, 28, 28, 8)), ("small pool2", (128, 12, 12, 16)),
                        ("mnist pool", (128, 24, 24, 64))]:
        x = rng.standard_normal(shape).astype("float32")
        rows, cols = conv_geometry(shape[1:], (2, 2), (2, 2), (1, 1), "valid")
        y, arg = tree.max_pool2d(x, rows, cols)
        dy = rng.standard_normal(y.shape).astype("float32")
        dx = np.empty(shape, "float32")
        a = _axes(rows, cols, dilated=False)
        cases.append((f"maxpool fwd {name}", lambda x=x, y=y, g=arg, a=a: base.max_pool2d[0](x, y, g, *a),
                      lambda x=x, y=y, g=arg, r=rows, q=cols: tree.max_pool2d(x, r, q, out=y, argmax_out=g)))
        cases.append((f"maxpool bwd {name}", lambda d=dy, g=arg, dx=dx, a=a: base.max_pool2d_backward[0](d, g, dx, *a),
                      lambda d=dy, g=arg, s=shape, r=rows, q=cols, dx=dx:
                      tree.max_pool2d_backward(d, g, s, r, q, out=dx)))
        if name == "small pool1":
            cases.append((f"avgpool fwd {name}", lambda x=x, r=rows, q=cols, y=y: ref.avg_pool2d(x, r, q, out=y),
                          lambda x=x, r=rows, q=cols, y=y: tree.avg_pool2d(x, r, q, out=y)))
            cases.append((f"avgpool bwd {name}",
                          lambda d=dy, s=shape, r=rows, q=cols, dx=dx: ref.avg_pool2d_backward(d, s, r, q, out=dx),
                          lambda d=dy, s=shape, r=rows, q=cols, dx=dx: tree.avg_pool2d_backward(d, s, r, q, out=dx)))
    from tensornet.backend import _numba_conv_bias
    from tensornet.backend._numba_kernels import row_blocks

    for name, shape in [("small conv1", (128 * 28 * 28, 8)), ("small conv2", (128 * 12 * 12, 16)),
                        ("mnist conv1", (128 * 26 * 26, 32)), ("mnist conv2", (128 * 24 * 24, 64))]:
        dz = rng.standard_normal(shape).astype("float32")
        db = np.empty(shape[1], "float32")
        kernel = tree._kernel(_numba_conv_bias.sum_rows, dz.size, dz, db)
        parts = row_blocks(_numba_conv_bias.sum_rows, kernel, shape[0])
        cases.append((f"bias grad {name}", lambda d=dz, o=db: ref.sum_rows(d, out=o),
                      lambda d=dz, o=db, k=kernel, p=parts: k(d, o, p)))
    return cases + _direct_cases(base_direct, rng, twin)


def _direct_cases(base_direct, rng, twin):
    """(name, baseline, this tree's) for the direct convolution's forward and gradient kernels,
    both sides' ``twin`` (0 parallel, 1 serial)."""
    import numba

    from tensornet.backend import _numba_direct_conv as tree_direct

    cases = []
    for name, shape, padding, f in [("small conv1", (128, 28, 28, 1), "same", 8),
                                    ("mnist conv1", (128, 28, 28, 1), "valid", 32),
                                    ("rgb conv1", (128, 32, 32, 3), "same", 32)]:
        x = rng.standard_normal(shape).astype("float32")
        kernel = rng.standard_normal((3, 3, shape[3], f)).astype("float32")
        rows, cols = conv_geometry(shape[1:], (3, 3), (1, 1), (1, 1), padding)
        a = _axes(rows, cols)
        z = np.empty((shape[0], rows[5], cols[5], f), "float32")
        dz = rng.standard_normal(z.shape).astype("float32")
        dk, db = np.empty_like(kernel), np.empty(f, "float32")
        parts = 1 if twin else numba.get_num_threads()
        for label, fn in [("direct fwd", "direct_conv2d"), ("direct grads", "direct_conv2d_grads")]:
            args = (x, kernel, z) if fn == "direct_conv2d" else (x, dz, dk, db, True, parts)
            cases.append((f"{label} {name}", lambda k=getattr(base_direct, fn)[twin], g=args, a=a: k(*g, *a),
                          lambda k=getattr(tree_direct, fn)[twin], g=args, a=a: k(*g, *a)))
    return cases


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--baseline", default="main")
    parser.add_argument("--min-channels", type=int, default=4)
    parser.add_argument("--serial", action="store_true",
                        help="both sides' serial twins (steadier on a loaded machine)")
    args = parser.parse_args(argv)
    base, base_direct = _baseline_module(args.baseline), _baseline_module(args.baseline, "_numba_direct_conv")
    tree = NumpyBackend()
    tree._set_kernels("numba")
    if args.serial:
        tree._kernel = lambda pair, size, *arrays: pair[1]
        for name in base.__all__:
            pair = getattr(base, name)
            setattr(base, name, (pair[1], pair[1]))
    ref = Backend()
    cases = _cases(base, base_direct, ref, tree, args.min_channels, np.random.default_rng(0), int(args.serial))
    times = {name: ([], []) for name, _, _ in cases}
    for _ in range(2):  # compile and warm
        for _, base_fn, fresh in cases:
            base_fn(), fresh()
    for _ in range(args.rounds):
        for name, base_fn, fresh in cases:
            for slot, fn in enumerate((base_fn, fresh)):
                start = time.perf_counter()
                fn()
                times[name][slot].append(time.perf_counter() - start)
    print(f"# median ms over {args.rounds} rounds, load {os.getloadavg()}")
    print(f"{'op':32s} {args.baseline:>8s} {'tree':>8s} {'ratio':>6s}   (min: {args.baseline}, tree)")
    for name, (base_fn, fresh) in times.items():
        a, b = statistics.median(base_fn) * 1e3, statistics.median(fresh) * 1e3
        print(f"{name:32s} {a:8.2f} {b:8.2f} {b / a:6.2f}   {min(base_fn) * 1e3:8.2f} {min(fresh) * 1e3:8.2f}")
    tree.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
