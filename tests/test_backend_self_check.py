"""``tensornet info --check``: every op a backend implements itself is run against the host
reference and reported one line each, with a summary and a non-zero exit when one fails."""
from __future__ import annotations

import numpy as np

import tensornet.backend as backend_package
from tensornet.backend import NumpyBackend
from tensornet.backend.self_check import check_backend, overridden
from tensornet.cli import main


class BrokenSgd(NumpyBackend):
    """An SGD kernel that forgets the weight decay term."""

    def sgd_update(self, w, g, velocity, lr, momentum, nesterov, weight_decay):
        return super().sgd_update(w, g, velocity, lr, momentum, nesterov, 0.0)


class RaisingRelu(NumpyBackend):
    def backprop_relu(self, dy, y, out=None):
        raise RuntimeError("launch failed")


def test_numpy_backend_passes_every_check_of_its_own_kernels():
    backend = NumpyBackend()
    results = check_backend(backend)
    assert results and all(r.passed for r in results), [r for r in results if not r.passed]
    names = {r.name for r in results}
    assert {"sgd_update[nesterov] float32", "adam_update float64", "softmax_cross_entropy[labels] float32",
            "bias_activation[relu] float32", "count_correct[categorical] float64"} <= names
    # Only ops the backend implements itself are listed.
    assert all(overridden(backend, r.name.split("[")[0].split(" ")[0]) for r in results)


def test_a_wrong_kernel_fails_only_its_own_checks():
    results = {r.name: r for r in check_backend(BrokenSgd(), dtypes=("float32",))}
    assert not results["sgd_update[momentum] float32"].passed
    assert "max error" in results["sgd_update[momentum] float32"].detail
    assert results["sgd_update[nesterov] float32"].passed  # no weight decay in that case
    assert results["adam_update float32"].passed


def test_a_raising_kernel_is_reported_not_raised():
    results = {r.name: r for r in check_backend(RaisingRelu(), dtypes=("float64",))}
    assert not results["backprop_relu float64"].passed
    assert results["backprop_relu float64"].detail == "RuntimeError: launch failed"


def test_cli_prints_one_line_per_check_and_a_summary(capsys):
    assert main(["info", "--check", "--backend", "numpy"]) == 0
    out = capsys.readouterr().out.splitlines()
    checks = [line for line in out if line.startswith(("PASS ", "FAIL "))]
    assert len(checks) == len(check_backend(NumpyBackend())) and all(c.startswith("PASS ") for c in checks)
    assert out[-1] == f"check: {len(checks)} of {len(checks)} kernel checks pass on the numpy backend"


def test_cli_exits_non_zero_naming_the_failing_kernel(capsys, monkeypatch):
    broken = BrokenSgd()
    monkeypatch.setattr(backend_package, "get_backend", lambda name=None: broken)
    assert main(["info", "--check"]) == 1
    out = capsys.readouterr().out
    assert "FAIL sgd_update[momentum] float32 (max error" in out
    assert "failing: sgd_update[momentum] float32, sgd_update[momentum] float64" in out.splitlines()[-1]


def test_info_without_check_runs_no_kernel(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"numpy {np.__version__}" in out and "PASS" not in out
