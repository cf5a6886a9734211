"""bench/readme_figures.py: the train run and the timing table it writes into the README, and
the check CI runs on its default train command's output."""
from __future__ import annotations


import pytest

import readme_figures as figures

LOG = """tensornet: backend numpy, dataset fashion_mnist, hidden [512, 512], ...
Epoch 1/3 - 430 steps - 9.5s - 6,000 samples/s - loss: 0.49 - accuracy: 0.82
Epoch 2/3 - 430 steps - 2.5s - 22,000 samples/s - loss: 0.36 - accuracy: 0.86
Epoch 3/3 - 430 steps - 2.7s - 21,000 samples/s - loss: 0.32 - accuracy: 0.88
training step: compiled
test loss: 0.3093 - test accuracy: 0.8871 (88.71%) - wall time 16.2s
"""

README = """intro
<!-- figures:train -->
old text
<!-- /figures:train -->
middle
<!-- figures:timing -->
old table
<!-- /figures:timing -->
end
"""


def test_the_train_block_quotes_the_runs_accuracy_and_first_epoch():
    run = figures.parse_run(LOG)
    assert run == {"accuracy": "0.8871", "wall": 16.2, "epochs": [9.5, 2.5, 2.7]}
    text = figures.replace_block(README, "train", figures.train_text(run, "a 2-core AMD EPYC"))
    assert "test accuracy **0.8871** after 3 epochs, in 16 s" in text
    assert "Epoch 1 took 9.5 s, the median later epoch 2.7 s: the first one also loads the CPU kernels" in text
    assert figures.quoted_accuracy(text) == "0.8871"
    assert text.startswith("intro\n") and text.endswith("old table\n<!-- /figures:timing -->\nend\n")


def test_the_timing_table_has_a_row_per_result(tmp_path):
    record = {"command": "python bench/compare.py", "when": "20261203-010000",
              "machine": {"cores": 2, "cpu": "AMD EPYC", "python": "3.11.7", "numpy": "2.4.6", "torch": "2.13.0+cpu",
                          "torch_threads": 2},
              "results": [{"case": "mlp-512", "sizes": [784, 512, 512, 10], "batch": 128,
                           "median_s": {"tensornet": 0.0035, "torch": 0.0045}, "ratio_vs_torch": 0.7778,
                           "gemm_share": 1.03, "tensornet_step": "compiled"},
                          {"case": "fmnist-epoch", "batch": 128, "median_s": {"tensornet": 1.8, "torch": 2.4},
                           "ratio_vs_torch": 0.75, "tensornet_step": "layered (why)"}]}
    table = figures.timing_text(record, str(tmp_path / "cpu-2core-compare.json"))
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[1:] == ["| mlp-512 (784-512-512-10) | 128 | 3.500 ms | 4.500 ms | 0.78 | 103 % | compiled |",
                        "| fmnist-epoch | 128 | 1.800 s | 2.400 s | 0.75 |  | layered |"]
    assert "2-core AMD EPYC" in table and "PyTorch 2.13.0+cpu" in table


def test_the_newest_record_is_readable():
    record, path = figures.newest_compare_record()
    assert path.endswith("-compare.json") and record["results"]
    assert figures.timing_text(record, path).count("\n| ") == len(record["results"]) + 2  # header, rule, rows


def test_check_passes_on_the_quoted_accuracy_and_fails_otherwise(tmp_path, monkeypatch, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(figures.replace_block(README, "train", figures.train_text(figures.parse_run(LOG), "x")))
    monkeypatch.setattr(figures, "README", str(readme))
    log = tmp_path / "run.txt"
    log.write_text(LOG)
    assert figures.main(["--check", str(log)]) == 0
    log.write_text(LOG.replace("0.8871 (88.71%)", "0.8931 (89.31%)"))
    assert figures.main(["--check", str(log)]) == 1
    assert "quotes test accuracy 0.8871, the default run printed 0.8931" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="no 'test accuracy"):
        figures.parse_run("nothing here")


def test_rewriting_from_a_log_fills_both_blocks(tmp_path, monkeypatch):
    readme = tmp_path / "README.md"
    readme.write_text(README)
    monkeypatch.setattr(figures, "README", str(readme))
    log = tmp_path / "run.txt"
    log.write_text(LOG)
    assert figures.main(["--log", str(log), "--machine", "a 2-core AMD EPYC"]) == 0
    text = readme.read_text()
    assert "test accuracy **0.8871**" in text and "| case | batch |" in text and "old" not in text
