"""Every kernel name expression the CuPy backend declares (``kernels.FAMILIES``) is launched by
the backend's own code and matches the reference: the self-check's cases
(``tensornet info --check``) plus int32 labels, with the launches recorded at the launcher seam
(``CupyBackend._kernel``). On a GPU (marker ``gpu``) the NVRTC builds run on the device; on the
CPU (marker ``kernels_on_cpu``) the host harness runs the same sources. A name no case
launches fails the test, so a kernel added without a check cannot go unrun."""
from __future__ import annotations

import numpy as np
import pytest

from tensornet.backend import Backend, kernels
from tensornet.backend.self_check import check_backend

ALL_NAMES = {name for names in kernels.FAMILIES.values() for name in names}


def _recording_cupy_backend():
    """The real ``CupyBackend`` (CuPy, a GPU) recording every name expression it launches."""
    from tensornet.backend.cupy_backend import CupyBackend

    class Recording(CupyBackend):
        def __init__(self):
            super().__init__()
            self.launches = []

        def _kernel(self, family, name_expression):
            self.launches.append(name_expression)
            return super()._kernel(family, name_expression)

    return Recording()


def _harness_backend():
    from tests.cuda_harness.backend import harness_backend

    return harness_backend()


def _int32_label_cases(backend):
    """The sparse loss with int32 labels (the self-check draws int64 ones), against the reference."""
    reference = Backend()
    failures = []
    for dtype in ("float32", "float64"):
        rng = np.random.default_rng(3)
        logits = rng.uniform(-4, 4, (37, 11)).astype(dtype)
        probs = reference.softmax(logits.copy())
        labels = rng.integers(0, 11, 37).astype(np.int32)
        grad_ref = np.empty_like(logits)
        loss_ref, correct_ref = reference.softmax_cross_entropy_count(logits, probs, labels, grad_ref, sparse=True)
        device = [backend.to_device(a) for a in (logits, probs, labels, np.empty_like(logits))]
        loss, correct = backend.softmax_cross_entropy_count(*device, sparse=True)
        rtol = 1e-5 if dtype == "float32" else 1e-12
        if not (np.allclose(backend.to_numpy(device[3]), grad_ref, rtol=rtol, atol=1e-7)
                and np.isclose(backend.to_float(loss), float(loss_ref), rtol=rtol)
                and int(backend.to_numpy(correct)) == int(correct_ref)):
            failures.append(f"sparse_softmax_cross_entropy int32 labels {dtype}")
    return failures


@pytest.mark.parametrize("make_backend", [
    pytest.param(_recording_cupy_backend, marks=pytest.mark.gpu, id="gpu"),
    pytest.param(_harness_backend, marks=pytest.mark.kernels_on_cpu, id="harness"),
])
def test_every_kernel_name_expression_is_launched_and_matches_the_reference(make_backend):
    backend = make_backend()
    results = check_backend(backend)
    failed = [(r.name, r.detail) for r in results if not r.passed]
    failed += _int32_label_cases(backend)
    assert not failed, failed
    unlaunched = sorted(ALL_NAMES - set(backend.launches))
    assert not unlaunched, f"declared kernels no case launches: {unlaunched}"
