"""Quick-mode check of ``bench/tiled_update_probe.py`` (so the probe cannot rot): on a small layer
its tiled backward + update computes what the layered step computes, and the timing loop runs
every variant. Skipped where MKL is not on the shared pool (no ``fast`` extra, not Linux x86-64)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")
import tiled_update_probe  # noqa: E402  (bench/ is on the path: pytest puts a test's folder there)

K, N, BATCH = 100, 80, 24  # 50 rows a thread: tiles of 16 leave a partial tile at the end of each thread's rows
LR, MOMENTUM = tiled_update_probe.LR, tiled_update_probe.MOMENTUM


@pytest.fixture
def probe():
    try:
        probe = tiled_update_probe.Probe(K, N, BATCH, tiles=[16, 1000])
    except SystemExit as exc:
        pytest.skip(str(exc))
    yield probe
    probe.close()


def test_the_tiled_variant_computes_the_layered_step(probe):
    worst = probe.largest_difference()
    assert worst["dh"] < 1e-5 and worst["g"] < 1e-5 and worst["w"] < 1e-6 and worst["v"] < 1e-6
    w, v, g, dh = probe.state["tiled 16"]  # and against the formulas, in float64
    h, dz = probe.h.astype(np.float64), probe.dz.astype(np.float64)
    g_ref = h.T @ dz
    v_ref = MOMENTUM * probe.v0 - LR * g_ref
    np.testing.assert_allclose(dh, (dz @ probe.w0.T.astype(np.float64)) * (h > 0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g, g_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(v, v_ref, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(w, probe.w0 + v_ref, rtol=1e-4, atol=1e-6)


def test_the_check_sees_a_variant_that_skips_the_update(probe):
    probe.variants["tiled 16"] = lambda: None
    assert probe.largest_difference()["w"] > 1e-4


def test_every_variant_is_timed(probe):
    times = tiled_update_probe.time_variants(probe.variants, rounds=1, calls=2, evict_bytes=1 << 16)
    assert set(times) == {"layered", "tiled 16", "tiled 1000"}
    assert all(len(values) == 2 and min(values) > 0 for values in times.values())
