"""The compiled step's parts (tensornet/backend/_numba_step.py) are compiled once per machine:
a second process reads both jobs from Numba's disk cache instead of compiling them; with an
empty cache, a child process compiles the second job while the first compiles."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import json, numpy
from tensornet.backend import _numba_step
compiled = _numba_step.callbacks(numpy.float32)
addresses = _numba_step.jobs(numpy.float32)
print(json.dumps({"hits": [job.cache_hits for job in compiled], "addresses": [bool(a) for a in addresses]}))
"""


def _probe(cache, compile_mode="serial"):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONPATH=str(ROOT), TENSORNET_STEP_COMPILE=compile_mode)
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_step_jobs_are_read_from_the_disk_cache_by_a_second_process(tmp_path):
    pytest.importorskip("numba", reason="Numba is not installed")
    first = _probe(tmp_path)
    assert first == {"hits": [0, 0], "addresses": [True, True]}  # an empty cache: both compiled
    assert any(tmp_path.rglob("*.nbi")), "nothing was written to the cache"
    assert _probe(tmp_path) == {"hits": [1, 1], "addresses": [True, True]}


def test_a_child_process_compiles_the_second_job_into_the_cache_beside_the_first(tmp_path):
    pytest.importorskip("numba", reason="Numba is not installed")
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: both jobs compile in this process")
    first = _probe(tmp_path, "parallel")
    assert first == {"hits": [0, 1], "addresses": [True, True]}  # rows_pass compiled here, weights_pass read
    assert _probe(tmp_path, "parallel") == {"hits": [1, 1], "addresses": [True, True]}


def test_compile_forward_puts_validations_kernels_in_the_disk_cache(tmp_path):
    """What :func:`callbacks` compiles while it waits for the child."""
    pytest.importorskip("numba", reason="Numba is not installed")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    code = "from tensornet.backend import _numba_step; _numba_step.compile_forward('float32')"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    names = {path.name.split("-")[0] for path in tmp_path.rglob("*.nbi")}
    assert {"_numba_kernels._bias_activation_softmax_serial", "_numba_row_jobs.bias_relu_rows_float32",
            "_numba_blas.one_product_lp64"} <= names


@pytest.mark.parametrize("mode, load, cores, expected", [
    ("auto", 1.2, 2, True), ("auto", 2.0, 2, False), ("auto", 0.0, 1, False), ("parallel", 9.0, 2, True),
    ("serial", 0.0, 8, False)])
def test_side_by_side_compiles_while_the_load_leaves_cores_to_spare(monkeypatch, mode, load, cores, expected):
    from tensornet.backend import _numba_step

    monkeypatch.setattr(_numba_step, "COMPILE_MODE", mode)
    monkeypatch.setattr(_numba_step.os, "cpu_count", lambda: cores)
    monkeypatch.setattr(_numba_step.os, "getloadavg", lambda: (load, load, load))
    assert _numba_step._side_by_side() is expected
