"""bench/huge_pages.py in quick mode (so that it cannot rot): every case trains all three ways
and reports, for both tensornet models, the size of its lasting buffers and the share of them
the kernel backs with huge pages. Which buffers come from tensornet's huge-page mappings is
tested in tests/test_backend_huge_pages.py; here the share is only a share, since NumPy's own
arrays from 4 MiB are advised huge pages too and the ordinary model's buffers may land in them."""
import huge_pages


def test_quick_run_times_every_trainer():
    results = huge_pages.main(["--quick", "--cases", "mlp-512"])
    result, = results
    assert set(result["median_s"]) == set(huge_pages.TRAINERS)
    assert all(seconds > 0 for seconds in result["median_s"].values())
    assert result["tensornet_step"].startswith(("compiled", "layered"))
    for label in ("huge", "ordinary"):
        mib, share = result["lasting_mib_and_huge_share"][label]
        assert 7 < mib < 9  # 784-512-512-10: parameters, gradients, momentum, workspaces
        assert share is None or 0 <= share <= 1
