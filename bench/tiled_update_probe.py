"""Would fusing a large Dense layer's backward pass with its SGD update, tile by tile, beat the
layered step's backward on this machine? A probe for issue 4's 784-2048-2048-10 case (session 9
in bench/NOTES.md, change 19); tensornet does not use the fused form.

The layer: weights W (k, n), its input h (B, k) after a relu, the gradient at its output dz
(B, n). Both variants compute, with momentum SGD (``v = m v - lr g; w += v``, tensornet's kernel):

    dh = (dz W^T) * 1[h > 0]        (the input gradient, through the relu below)
    g  = h^T dz                     (the weight gradient, into the flat gradient buffer)
    W, v updated from g

- **layered**, as ``Dense.backward`` and the optimizer run it: the two products side by side
  (``NumpyBackend.matmuls``: one MKL call per thread on the shared pool), the relu gradient and
  then the SGD pass over the whole of W, g and v, each a threaded Numba kernel.
- **tiled R**: thread t owns rows k_t of W and walks them R rows at a time: ``dh[:, tile] =
  dz W[tile]^T`` (the only use of the old rows: this product must come first), the relu gradient
  on those columns, ``g[tile] = h[:, tile]^T dz``, then the SGD on rows ``tile`` of W, g and v
  while they are still in the core's cache. W is read from memory once for the product and the
  update, and g never leaves the cache before the update reads it. The price: every tile's two
  products repack dz (B x n), and narrow products run below MKL's best rate.

    python bench/tiled_update_probe.py                    # 2048 x 2048, batch 256; R = 64..1024
    python bench/tiled_update_probe.py 2048 2048 256 12 128 1024   # k n batch rounds R...

Each round times every variant in a block of 5 calls, in rotation; between calls a 64 MB buffer
is written, as the rest of a training step would evict the caches. Needs Numba and MKL on the
shared pool (``pip install -e '.[fast]'`` on Linux x86-64).
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numba
import numpy as np
from numba import prange

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, as compare.py puts it

from tensornet.backend import _numba_kernels  # noqa: E402
from tensornet.backend._numba_blas import _gemm_lp64  # noqa: E402
from tensornet.backend.blas_threads import SMALL_PRODUCT_MACS  # noqa: E402
from tensornet.backend.numpy_backend import NumpyBackend  # noqa: E402
from tensornet.backend.shared_pool import NO_TRANS, TRANS  # noqa: E402

LR, MOMENTUM = 0.01, 0.9
SGD_MOMENTUM_MODE = 1  # the sgd kernel's mode: v = m v - lr g, w += v
_sgd_serial = _numba_kernels.sgd[1]  # the kernels' arithmetic, on one thread's slices
_relu_backward_serial = _numba_kernels.relu_backward[1]


@numba.njit(parallel=True, nogil=True)
def tiled_backward_update(gemm, h, dz, w, v, g, dh, rows, lr, momentum, tiny, threads):
    """The tiled variant (module docstring) on float32 C-contiguous arrays: h (B, k), dz (B, n),
    w, v, g (k, n), dh (B, k); ``rows`` per tile; MKL's ``cblas_sgemm`` at ``gemm``."""
    batch, k = h.shape
    n = w.shape[1]
    one, zero, item = np.float32(1), np.float32(0), 4
    h_addr, dz_addr, w_addr, g_addr, dh_addr = h.ctypes.data, dz.ctypes.data, w.ctypes.data, g.ctypes.data, dh.ctypes.data
    w_flat, v_flat, g_flat = w.ravel(), v.ravel(), g.ravel()
    for t in prange(threads):
        k0, k1 = (k * t) // threads, (k * (t + 1)) // threads
        for r0 in range(k0, k1, rows):
            r1 = min(r0 + rows, k1)
            # dh[:, r0:r1] = dz W[r0:r1]^T, then * 1[h > 0]
            _gemm_lp64(gemm, NO_TRANS, TRANS, batch, r1 - r0, n, one, dz_addr, n, w_addr + r0 * n * item, n, zero,
                       dh_addr + r0 * item, k)
            for i in range(batch):  # the layered step's relu-gradient kernel, on this tile's columns
                _relu_backward_serial(dh[i, r0:r1], h[i, r0:r1], dh[i, r0:r1])
            # g[r0:r1] = h[:, r0:r1]^T dz
            _gemm_lp64(gemm, TRANS, NO_TRANS, r1 - r0, n, batch, one, h_addr + r0 * item, k, dz_addr, n, zero,
                       g_addr + r0 * n * item, n)
            lo, hi = r0 * n, r1 * n
            _sgd_serial(w_flat[lo:hi], g_flat[lo:hi], v_flat[lo:hi], lr, momentum, zero, SGD_MOMENTUM_MODE, False, tiny)


class Probe:
    """One layer's operands and the two variants as callables (``variants``), each on its own
    copy of W and v so that both can run in rotation."""

    def __init__(self, k, n, batch, tiles, seed=0):
        self.ops = NumpyBackend()
        self.ops.start()  # as fit does: MKL on the shared pool
        self.ops._blas_threads.for_product(max(batch * k * n, SMALL_PRODUCT_MACS))  # installs the pool
        mkl = self.ops._blas_threads.mkl
        if mkl is None:
            self.ops.finish()
            raise SystemExit(f"needs MKL on the shared pool ({self.ops._blas_threads.reason or 'not loaded'})")
        self.gemm, self.threads = mkl.addresses["f"], self.ops._blas_threads.threads
        rng = np.random.default_rng(seed)
        self.h = np.maximum(rng.standard_normal((batch, k), dtype=np.float32), 0)
        self.dz = rng.standard_normal((batch, n), dtype=np.float32)
        self.w0 = rng.standard_normal((k, n), dtype=np.float32) * np.float32(0.02)
        self.v0 = rng.standard_normal((k, n), dtype=np.float32) * np.float32(0.001)
        self.lr, self.momentum, self.tiny = np.float32(LR), np.float32(MOMENTUM), np.finfo(np.float32).tiny
        self.state = {}
        self.variants = {"layered": self._layered_call()}
        for rows in tiles:
            self.variants[f"tiled {rows}"] = self._tiled_call(f"tiled {rows}", rows)

    def _buffers(self, name):
        """A variant's own (W, v, g, dh), W and v starting from the shared initial values."""
        self.state[name] = (self.w0.copy(), self.v0.copy(), np.zeros_like(self.w0), np.zeros_like(self.h))
        return self.state[name]

    def _layered_call(self):
        w, v, g, dh = self._buffers("layered")
        kernels = self.ops._kernels()
        sgd, relu_backward = kernels.sgd[0], kernels.relu_backward[0]

        def call():
            self.ops.matmuls(((self.h, self.dz, g, True, False), (self.dz, w, dh, False, True)))
            relu_backward(dh.ravel(), self.h.ravel(), dh.ravel())
            sgd(w.ravel(), g.ravel(), v.ravel(), self.lr, self.momentum, np.float32(0), SGD_MOMENTUM_MODE, False,
                self.tiny)
        return call

    def _tiled_call(self, name, rows):
        w, v, g, dh = self._buffers(name)

        def call():
            tiled_backward_update(self.gemm, self.h, self.dz, w, v, g, dh, rows, self.lr, self.momentum, self.tiny,
                                  self.threads)
        return call

    def reset(self):
        for w, v, _, _ in self.state.values():
            w[...], v[...] = self.w0, self.v0

    def largest_difference(self):
        """After one call of each variant from the same state: the largest absolute difference
        from the layered variant's dh, g, W and v (rounding only: the products may sum in
        another order)."""
        self.reset()
        for call in self.variants.values():
            call()
        ref = self.state["layered"]
        worst = {"dh": 0.0, "g": 0.0, "w": 0.0, "v": 0.0}
        for name, (w, v, g, dh) in self.state.items():
            for key, a, b in (("dh", dh, ref[3]), ("g", g, ref[2]), ("w", w, ref[0]), ("v", v, ref[1])):
                worst[key] = max(worst[key], float(np.abs(a - b).max()))
        return worst

    def close(self):
        self.ops.finish()


def time_variants(variants, rounds, calls=5, evict_bytes=64 << 20):
    """{name: [seconds per call]}: in each round every variant runs ``calls`` times in a row."""
    junk = np.ones(evict_bytes // 4, np.float32)
    times = {name: [] for name in variants}
    for call in variants.values():
        call()
    for _ in range(rounds):
        for name, call in variants.items():
            for _ in range(calls):
                junk += 1.0
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
    return times


def main(argv):
    defaults = [2048, 2048, 256, 12]  # k, n, batch, rounds
    k, n, batch, rounds = [int(a) for a in argv[:4]] + defaults[len(argv[:4]):]
    tiles = [int(a) for a in argv[4:]] or [64, 128, 256, 512, 1024]
    probe = Probe(k, n, batch, tiles)
    try:
        diff = probe.largest_difference()
        print(f"layer {k} x {n}, batch {batch}, {probe.threads} threads; largest difference from layered: "
              + ", ".join(f"{key} {value:.2e}" for key, value in diff.items()))
        times = time_variants(probe.variants, rounds)
    finally:
        probe.close()
    base = statistics.median(times["layered"])
    for name, values in times.items():
        values = sorted(values)
        median = statistics.median(values)
        print(f"{name:12s} median {median * 1e3:7.2f} ms  p10 {values[len(values) // 10] * 1e3:7.2f} ms  "
              f"{median / base:5.2f}x layered")


if __name__ == "__main__":
    main(sys.argv[1:])
