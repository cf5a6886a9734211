"""bench/compare_graph.py in quick mode, so that it cannot rot: the two trainers agree after
three steps and both are timed."""
import pytest

pytest.importorskip("torch")

import compare_graph  # noqa: E402


def test_quick_run_checks_and_times_both_trainers(capsys):
    result = compare_graph.main(["--quick"])
    assert result["max_weight_difference_after_3_steps"] < 1e-4
    assert result["tensornet_epoch_s"] > 0 and result["torch_epoch_s"] > 0
    assert "ratio tensornet / PyTorch" in capsys.readouterr().out
