"""How large can the GEMM share of a CPU training step get on this machine? An upper bound for
issue 4's target (784-512-512-10 at batch 128: at least 80 % of the step in GEMM), measured with
a step no layered framework can beat.

The bound is one compiled function per training step of the benchmark's MLP (relu hidden layers,
softmax + categorical cross-entropy, SGD with momentum), in two parallel regions and no Python
in between. Each thread keeps its data in its own cache:

1. Thread t takes rows r_t of the batch through the whole forward pass (``h = relu(x W + b)``,
   the last layer's softmax and its cross-entropy gradient ``dz = (p - y) / B``) and back
   through every input gradient (``dz_prev = (dz W^T) * 1[h_prev > 0]``). Its products are MKL
   ``cblas_sgemm`` calls on its rows, one thread each (MKL runs single-threaded inside an OpenMP
   parallel region); the element-wise work follows each product on the rows it just wrote.
2. Thread t then makes rows k_t of every weight gradient (``dW[k_t] = x[:, k_t]^T dz``) and
   columns c_t of every bias gradient, and applies tensornet's own SGD kernel to exactly the
   weights and biases it made the gradients of.

Against it, in one process, interleaved, each block started from the same weights and velocity
(so every block does the same work): tensornet's layered step (``train_step`` layer by layer,
as ``bench/compare.py`` timed it up to session 6), tensornet's compiled step (the same
``train_step`` through :mod:`tensornet.compiled_step`, this bound made part of the library in
session 7, which ``fit`` and compare.py now take), the products of the fused step alone, and
compare.py's GEMM floor (the products alone, one after the other, MKL threading each). It first
checks that the fused step trains the same network: the weights' change over three steps agrees
with the layered step's.

    python bench/fused_step_bound.py                       # 784-512-512-10, batch 128, 20 rounds
    python bench/fused_step_bound.py 784,1024,1024,10 128 10   # sizes, batch, rounds

Only meaningful with Numba, MKL and the shared pool (``pip install -e .[fast]``), and only where
every weight matrix fits a core's L2 cache: each thread reads whole weight matrices (on
784-2048-2048-10 at batch 256 a row-split 2048 x 2048 product took 29.6 ms against MKL's 13.6).
"""
from __future__ import annotations

import math
import statistics
import sys
import time

import numba
import numpy as np
from numba import prange

from compare import GemmFloor, TensornetStepper, _cpu_model, build_tensornet, random_batches

from tensornet.backend import _numba_kernels
from tensornet.compiled_step import CompiledStep
from tensornet.backend._numba_blas import _gemm_lp64
from tensornet.backend.shared_pool import NO_TRANS, TRANS

_sgd_serial = _numba_kernels.sgd[1]  # tensornet's SGD arithmetic, run on one thread's slice
_F = 4  # bytes per float32


@numba.njit(nogil=True, inline="always")
def _gemm(gemm, trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc):
    """c = op(a) op(b) (float32, row-major, addresses)."""
    _gemm_lp64(gemm, trans_a, trans_b, m, n, k, np.float32(1), a, lda, b, ldb, np.float32(0), c, ldc)


@numba.njit(parallel=True, nogil=True)
def fused_step(gemm, x, y, params, grads, velocity, table, acts, dz, lr, momentum, tiny, losses, elementwise):
    """One SGD step of the MLP in ``table`` (row l: weight offset, bias offset, fan-in K, units N,
    offset of the layer's (B, N) output in ``acts`` and its gradient in ``dz``) on the batch
    ``x``, ``y`` (one-hot). ``elementwise=False`` runs the products only. Returns the loss sum."""
    batch, layers, threads = x.shape[0], table.shape[0], numba.get_num_threads()
    zero, inv_batch = np.float32(0), np.float32(1.0 / batch)
    p_addr, g_addr, a_addr, d_addr = params.ctypes.data, grads.ctypes.data, acts.ctypes.data, dz.ctypes.data
    for t in prange(threads):  # 1. rows r0:r1 forward and back through the input gradients
        r0, r1 = (batch * t) // threads, (batch * (t + 1)) // threads
        losses[t] = 0.0
        if r1 == r0:
            continue
        for l in range(layers):
            w_off, b_off, k, n, out = table[l]
            src = x.ctypes.data + r0 * k * _F if l == 0 else a_addr + (table[l - 1, 4] + r0 * k) * _F
            _gemm(gemm, NO_TRANS, NO_TRANS, r1 - r0, n, k, src, k, p_addr + w_off * _F, n,
                  a_addr + (out + r0 * n) * _F, n)
            if not elementwise:
                continue
            bias = params[b_off:b_off + n]
            for i in range(r0, r1):  # slices: a loop from a nonzero start does not vectorize
                z = acts[out + i * n:out + (i + 1) * n]
                if l < layers - 1:  # h = relu(z + b)
                    for j in range(n):
                        v = z[j] + bias[j]
                        z[j] = v if (v > 0 or v != v) else zero
                    continue
                top = np.float32(-np.inf)  # softmax, cross-entropy and its gradient (p - y) / B
                for j in range(n):
                    z[j] += bias[j]
                    top = max(top, z[j])
                total = 0.0
                for j in range(n):
                    total += math.exp(z[j] - top)
                log_total = math.log(total)
                grad = dz[out + i * n:out + (i + 1) * n]
                for j in range(n):
                    losses[t] -= y[i, j] * ((z[j] - top) - log_total)
                    grad[j] = (np.float32(math.exp(z[j] - top) / total) - y[i, j]) * inv_batch
        for l in range(layers - 1, 0, -1):
            w_off, b_off, k, n, out = table[l]
            below = table[l - 1, 4]
            _gemm(gemm, NO_TRANS, TRANS, r1 - r0, k, n, d_addr + (out + r0 * n) * _F, n, p_addr + w_off * _F, n,
                  d_addr + (below + r0 * k) * _F, k)
            if elementwise:
                grad, h = dz[below + r0 * k:below + r1 * k], acts[below + r0 * k:below + r1 * k]
                for i in range(grad.shape[0]):  # dz_prev = dh * 1[h_prev > 0]
                    grad[i] = grad[i] if h[i] > 0 else zero
    for t in prange(threads):  # 2. rows k0:k1 of every weight gradient, then their SGD update
        for l in range(layers):
            w_off, b_off, k, n, out = table[l]
            k0, k1 = (k * t) // threads, (k * (t + 1)) // threads
            src = x.ctypes.data + k0 * _F if l == 0 else a_addr + (table[l - 1, 4] + k0) * _F
            if k1 > k0:
                _gemm(gemm, TRANS, NO_TRANS, k1 - k0, n, batch, src, k, d_addr + out * _F, n,
                      g_addr + (w_off + k0 * n) * _F, n)
            if not elementwise:
                continue
            c0, c1 = (n * t) // threads, (n * (t + 1)) // threads
            column_sums = np.zeros(c1 - c0, np.float32)
            for i in range(batch):
                grad = dz[out + i * n + c0:out + i * n + c1]
                for j in range(c1 - c0):
                    column_sums[j] += grad[j]
            grads[b_off + c0:b_off + c1] = column_sums
        for l in range(layers if elementwise else 0):  # after all the products: 0.1 ms faster than after each
            w_off, b_off, k, n, out = table[l]
            k0, k1 = (k * t) // threads, (k * (t + 1)) // threads
            c0, c1 = (n * t) // threads, (n * (t + 1)) // threads
            for lo, hi in ((w_off + k0 * n, w_off + k1 * n), (b_off + c0, b_off + c1)):
                if hi > lo:
                    _sgd_serial(params[lo:hi], grads[lo:hi], velocity[lo:hi], lr, momentum, zero, 1, False, tiny)
    return losses.sum()


class FusedStepper:
    """Runs :func:`fused_step` on the model's own flat parameter and gradient buffers and its
    optimizer's velocity, on the same batches as :class:`compare.TensornetStepper`."""

    def __init__(self, model, batches, gemm, elementwise=True):
        (self.params, self.grads), = model.store.groups.values()
        self.velocity = model.optimizer.state[str(self.params.dtype)]["velocity"]
        base = self.params.ctypes.data
        rows, offset = [], 0
        batch = batches[0][0].shape[0]
        for layer in model.layers:
            w, b = layer.weights["kernel"], layer.weights["bias"]
            rows.append([(w.ctypes.data - base) // _F, (b.ctypes.data - base) // _F, w.shape[0], w.shape[1], offset])
            offset += batch * w.shape[1]
        self.table = np.array(rows, dtype=np.int64)
        self.acts, self.dz = np.empty(offset, np.float32), np.empty(offset, np.float32)
        self.losses = np.zeros(numba.get_num_threads())
        f = np.float32
        self.scalars = (f(model.optimizer.learning_rate), f(model.optimizer.momentum), f(np.finfo(f).tiny))
        self.model, self.batches, self.gemm, self.elementwise, self.i = model, batches, gemm, elementwise, 0

    def step(self):
        x, y = self.batches[self.i % len(self.batches)]
        self.i += 1
        return fused_step(self.gemm, x, y, self.params, self.grads, self.velocity, self.table, self.acts, self.dz,
                          *self.scalars, self.losses, self.elementwise)


class CompiledStepper(TensornetStepper):
    """tensornet's ``train_step`` through its compiled step (what ``fit`` runs for this model
    since session 7, tensornet/compiled_step.py: this bound, made part of the library)."""

    def __init__(self, model, batches):
        super().__init__(model, batches)
        self.compiled, reason = CompiledStep.plan(model, batches[0][0].shape[0])
        if self.compiled is None:
            raise SystemExit(f"tensornet has no compiled step for this model here: {reason}")

    def step(self):
        trainer = self.model._trainer
        trainer.compiled_step = self.compiled
        try:
            super().step()
        finally:
            trainer.compiled_step = None


class Snapshot:
    """The model's weights and optimizer velocity, put back before each timed block."""

    def __init__(self, model):
        self.arrays = [model.store.groups[d][0] for d in model.store.groups]
        self.arrays += [buf for group in model.optimizer.state.values() for buf in group.values()]
        self.saved = [a.copy() for a in self.arrays]

    def restore(self):
        for array, saved in zip(self.arrays, self.saved):
            array[...] = saved


def setup(sizes, batch):
    """(model, steppers, snapshot) for the MLP ``sizes`` at ``batch``, the backend started as fit
    starts it; SystemExit where MKL is not on the shared pool."""
    model = build_tensornet(sizes, "numpy")
    ops = model.ops
    batches = random_batches(sizes, batch)
    ops.start()  # as fit does: the shared pool, MKL's products
    ops.matmul(batches[0][0], model.layers[0].weights["kernel"])
    mkl = ops._blas_threads.mkl
    if mkl is None:
        ops.finish()
        raise SystemExit("needs MKL on the shared pool (pip install -e .[fast] on Linux x86-64), which starts "
                         "with the first product of 4M multiply-adds or more")
    steppers = {"tensornet layered step": TensornetStepper(model, batches),
                "tensornet compiled step": CompiledStepper(model, batches),
                "fused step": FusedStepper(model, batches, mkl.addresses["f"]),
                "fused step's products": FusedStepper(model, batches, mkl.addresses["f"], elementwise=False),
                "GEMM floor": GemmFloor(np, sizes, batch, lambda: None, mkl=mkl)}
    return model, steppers, Snapshot(model)


def main(argv):
    sizes = tuple(int(s) for s in (argv[0] if argv else "784,512,512,10").split(","))
    batch = int(argv[1]) if len(argv) > 1 else 128
    rounds = int(argv[2]) if len(argv) > 2 else 20
    model, steppers, snapshot = setup(sizes, batch)
    ops, mkl = model.ops, model.ops._blas_threads.mkl
    relative = check_same_training(steppers, snapshot)
    print(f"weight change over 3 steps, fused against tensornet: relative difference {relative:.1e}")
    if not relative <= SAME_TRAINING:
        raise SystemExit("the fused step does not train the same network")
    times = {name: [] for name in steppers}
    for r in range(rounds):
        for name, stepper in steppers.items():
            snapshot.restore()
            for _ in range(3):
                stepper.step()
            block = []
            for _ in range(20):
                start = time.perf_counter()
                stepper.step()
                block.append(time.perf_counter() - start)
            times[name].append(statistics.median(block))
    ops.finish()
    snapshot.restore()
    med = {name: statistics.median(values) * 1e3 for name, values in times.items()}
    floor = med["GEMM floor"]
    print(f"{'-'.join(map(str, sizes))} batch {batch}; {_cpu_model()}, {numba.get_num_threads()} threads; "
          f"NumPy {np.__version__}, Numba {numba.__version__}; {mkl.version}")
    print(f"medians of {rounds} interleaved blocks of 20 steps, each block from the same weights")
    for name, value in med.items():
        print(f"  {name:<26}{value:8.3f} ms   GEMM floor / this: {floor / value * 100:5.1f} %")
    products = med["fused step's products"]
    print(f"  fused step's products / fused step: {products / med['fused step'] * 100:.1f} %")


#: Largest relative difference of the weight change over 3 steps between the fused step and
#: tensornet's (a wrong mask, transpose or bias gradient is off by tens of percent).
SAME_TRAINING = 1e-2


def check_same_training(steppers, snapshot):
    """||change_fused - change_tensornet|| / ||change_tensornet|| for the weights' change over
    three steps from the same start. Not element by element: the products sum in another order,
    and that can put a pre-activation within rounding of 0 on the other side of the relu's kink
    (one such element in the first step of 784-512-512-10 gives 1.2e-3 after three)."""
    start = snapshot.saved[0]
    changes = []
    for name in ("tensornet layered step", "fused step"):
        snapshot.restore()
        steppers[name].i = 0
        for _ in range(3):
            steppers[name].step()
        changes.append(snapshot.arrays[0].astype(np.float64) - start)
    snapshot.restore()
    steppers["tensornet layered step"].i = steppers["fused step"].i = 0
    return float(np.linalg.norm(changes[1] - changes[0]) / np.linalg.norm(changes[0]))


if __name__ == "__main__":
    main(sys.argv[1:])
