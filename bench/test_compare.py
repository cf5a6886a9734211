"""bench/compare.py in quick mode (so that it cannot rot), its interleaving on fake trainers, and
its timing of fit's steps through a callback."""
import json
import statistics

import numpy as np
import pytest

import compare
import harness


@pytest.fixture
def fake_clock(monkeypatch):
    """(state, Timed): ``time.perf_counter`` advances by ``state["length"][name]`` at each step of
    the fake trainer ``Timed(name, log)``, which logs the order the trainers ran in; no sleeping."""
    state = {"now": 0.0, "length": {}}
    monkeypatch.setattr(harness.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(harness.time, "perf_counter", lambda: state["now"])

    class Timed(harness.Stepper):
        def __init__(self, name, log):
            self.name, self.log = name, log

        def step(self):
            self.log.append(self.name)
            state["now"] += state["length"][self.name]

    return state, Timed


def test_blocks_cut_to_block_seconds_keep_the_step_count(fake_clock):
    state, Timed = fake_clock
    state["length"].update(a=0.075, b=0.080)
    log = []
    steppers = {"a": Timed("a", log), "b": Timed("b", log)}
    times, per_block = harness.time_interleaved(steppers, rounds=15, steps=20, warmup=3, block_seconds=0.3)
    assert per_block == 4  # 0.3 s / 0.080 s, rounded
    assert len(times["a"]) == len(times["b"]) == 300  # 75 rounds of 4: as many steps as 15 of 20
    assert times["a"][0] == pytest.approx(0.075) and times["b"][0] == pytest.approx(0.080)
    # after the warm-up (an untimed step and 3 timed ones each), every block is an untimed step
    # plus 4 timed ones; the order rotates
    assert log[:8] == ["a"] * 4 + ["b"] * 4
    timed = log[8:]
    blocks = [timed[i:i + 5] for i in range(0, len(timed), 5)]
    assert all(len(set(block)) == 1 for block in blocks)
    assert [block[0] for block in blocks[:4]] == ["a", "b", "b", "a"]


def test_short_steps_keep_their_blocks(fake_clock):
    state, Timed = fake_clock
    state["length"].update(a=0.004, b=0.006)
    log = []
    times, per_block = harness.time_interleaved({"a": Timed("a", log), "b": Timed("b", log)},
                                                rounds=3, steps=20, warmup=2, block_seconds=0.3)
    assert per_block == 20 and len(times["a"]) == 60
    times, per_block = harness.time_interleaved({"a": Timed("a", log)}, rounds=3, steps=20, warmup=2,
                                                block_seconds=0)
    assert per_block == 20 and len(times["a"]) == 60


def test_paired_ratios_are_per_round_quartiles():
    # rounds of 2 steps: tensornet / torch = 0.5, 1.0, 2.0, 1.0 per round
    times = {"tensornet": [1, 1, 2, 2, 4, 4, 3, 3], "torch": [2, 2, 2, 2, 2, 2, 3, 3]}
    q = harness.paired_ratios(times, 2, "tensornet", "torch")
    assert q == pytest.approx(statistics.quantiles([0.5, 1.0, 1.0, 2.0], n=4, method="inclusive"))
    assert q[1] == pytest.approx(1.0)
    assert harness.paired_ratios({"tensornet": [1.0], "torch": [2.0]}, 1, "tensornet", "torch") == [0.5] * 3


def test_quick_run_of_the_smallest_case():
    pytest.importorskip("torch")
    result, = compare.main(["--quick", "--cases", "mlp-64", "--in-process", "--result-json", "/dev/null"])
    assert result["case"] == "mlp-64"
    assert set(result["median_s"]) == {"tensornet", "torch", "torch_fused", "gemm_floor"}
    assert all(value > 0 for value in result["median_s"].values())
    assert result["max_weight_diff_after_3_steps"] < 1e-3  # the two libraries trained the same network
    assert len(result["ratio_per_round_quartiles"]) == 3
    assert result["tensornet_step"].startswith("layered")  # 784-64-10: below the compiled step's size


def test_fit_blocks_time_each_step_and_train_the_batches_in_order():
    sizes, batch = (20, 16, 4), 8
    model = compare.build_tensornet(sizes, "numpy")
    twin = compare.build_tensornet(sizes, "numpy")
    batches = compare.random_batches(sizes, batch, count=8)
    x, y = np.concatenate([b[0] for b in batches] * 2), np.concatenate([b[1] for b in batches] * 2)
    stepper = compare.TensornetStepper(model, x, y, batch)
    laps = stepper.run(3) + stepper.run(2)  # 4 steps over batches 0-3, then 3 over batches 4-6
    assert len(laps) == 3 + 2 and all(lap > 0 for lap in laps)
    assert model.step_path is not None and model.step_path.startswith(("compiled", "layered"))
    twin.fit(x[:7 * batch], y[:7 * batch], batch_size=batch, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)  # the same 7 steps, in the same order
    with pytest.raises(ValueError, match="needs"):
        stepper.run(14)  # from batch 7: 15 steps run past the 16 batches x holds


@pytest.fixture
def small_images(monkeypatch):
    """compare_cnn's Fashion-MNIST loader replaced by 512 random images (no download)."""
    import compare_cnn

    rng = np.random.default_rng(1)
    images = rng.random((512, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 512)
    monkeypatch.setattr(compare_cnn, "load_images", lambda samples: (images[0][:samples], images[1][:samples]))


def test_quick_run_of_a_cnn_row(small_images):
    pytest.importorskip("torch")
    result, = compare.main(["--quick", "--cases", "cnn-small", "--in-process", "--result-json", "/dev/null",
                            "--cnn-samples", "256"])
    assert result["case"] == "cnn-small" and result["samples"] == 256 and result["batch"] == 128
    assert set(result["median_s"]) == {"tensornet", "torch"} and all(v > 0 for v in result["median_s"].values())
    assert result["max_prediction_diff_at_start"] < 1e-5  # the same network on both sides
    assert 0.0 < result["share_gemm_conv"]["tensornet"] <= 1.0
    table = compare.format_table([result], {"cnn-small": 1.0})
    assert "cnn-small" in table and f"{result['ratio_vs_torch']:.2f}" in table


def test_the_cnn_rows_are_cases_and_can_be_skipped():
    assert set(compare.CNN_CASES) == {"cnn-small", "mnist-cnn"} <= set(compare.CASE_NAMES)
    assert compare.main(["--quick", "--cases", "cnn-small,mnist-cnn", "--no-cnn", "--in-process",
                         "--result-json", "/dev/null"]) == []


def test_a_record_is_its_json_and_its_text(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(harness, "RESULTS", tmp_path / "results")
    harness.write_record("cpu-2core-x-compare", "python bench/compare.py --name x", {"results": [1, 2]},
                         "# header", "table line 1\ntable line 2", "footer")
    record = json.loads((tmp_path / "results" / "cpu-2core-x-compare.json").read_text())
    assert record == {"command": "python bench/compare.py --name x", "results": [1, 2]}
    text = (tmp_path / "results" / "cpu-2core-x-compare.txt").read_text()
    assert text == "$ python bench/compare.py --name x\n# header\ntable line 1\ntable line 2\nfooter\n"
    assert "cpu-2core-x-compare.json and .txt" in capsys.readouterr().out
