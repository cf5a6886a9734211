"""bench/huge_pages.py in quick mode (so that it cannot rot): every case trains all three ways,
and the buffers it built on huge pages are the ones on the kernel's huge pages where it grants
them."""
import huge_pages

from tensornet.backend import huge_pages as backend_huge_pages


def test_quick_run_times_every_trainer():
    results = huge_pages.main(["--quick", "--cases", "mlp-512"])
    result, = results
    assert set(result["median_s"]) == set(huge_pages.TRAINERS)
    assert all(seconds > 0 for seconds in result["median_s"].values())
    assert result["tensornet_step"].startswith(("compiled", "layered"))
    backed = result["params_on_huge_pages"]
    assert backed["ordinary"] in (False, None)  # TENSORNET_HUGE_PAGES=0 while it was built
    if not backend_huge_pages.enabled():
        assert backed["huge"] in (False, None)
