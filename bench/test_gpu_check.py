"""bench/gpu_check.sh and its helpers on a machine without a GPU, so that they cannot rot:
argument and data checks, the clear exit without CuPy or a GPU, the record writer and the log
parser, the whole script's plumbing with the device-only commands stood in for, and
bench/gpu_compare.py's own code run on the CPU (NumPy backend against PyTorch CPU)."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import gpu_compare
import gpu_record

BENCH = Path(__file__).resolve().parent
SCRIPT = BENCH / "gpu_check.sh"
DATA = Path("/usr/share/datasets/fashion-mnist")
needs_data = pytest.mark.skipif(not (DATA / "train-images-idx3-ubyte.gz").exists(),
                                reason="Debian's dataset-fashion-mnist is not installed")
IDX = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def run_script(*args, env=None):
    environment = {**os.environ, "PYTHON": sys.executable, **(env or {})}
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          env=environment, timeout=120)


def fake_data(folder):
    folder.mkdir(exist_ok=True)
    for name in IDX:
        (folder / f"{name}.gz").write_bytes(b"")
    return folder


def test_the_script_is_executable_bash():
    assert SCRIPT.stat().st_mode & stat.S_IXUSR
    assert SCRIPT.read_text().startswith("#!/usr/bin/env bash")
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0


@pytest.mark.parametrize("args", [(), ("a", "b"), ("--help",)])
def test_usage_errors_exit_2(args):
    done = run_script(*args)
    assert done.returncode == 2 and "usage: bench/gpu_check.sh FASHION_MNIST_DIR" in done.stderr


def test_a_missing_data_directory_is_named(tmp_path):
    done = run_script(tmp_path / "nowhere")
    assert done.returncode == 2
    assert f"{tmp_path / 'nowhere'}: no such directory" in done.stderr


def test_a_directory_without_the_idx_files_is_named(tmp_path):
    folder = fake_data(tmp_path / "data")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    done = run_script(folder)
    assert done.returncode == 2
    assert "holds no t10k-labels-idx1-ubyte (nor t10k-labels-idx1-ubyte.gz)" in done.stderr


def test_without_cupy_or_a_gpu_the_script_says_so(tmp_path):
    from tensornet.backend import cupy_status

    if cupy_status()[0]:
        pytest.skip("CuPy sees a GPU here")
    done = run_script(fake_data(tmp_path / "data"), env={"GPU_CHECK_RESULTS": str(tmp_path / "results")})
    assert done.returncode == 3, done.stderr
    assert "gpu_check needs CuPy and a visible GPU: " in done.stderr
    assert not (tmp_path / "results").exists()  # no record without a device


def test_record_paths_are_named_by_device_and_date(tmp_path):
    txt, jsonl = gpu_record.record_paths("NVIDIA H200 (SXM) 141GB", "2026-12-03", tmp_path)
    assert txt == tmp_path / "nvidia-h200-sxm-141gb-2026-12-03-gpu-check.txt"
    assert jsonl == tmp_path / "nvidia-h200-sxm-141gb-2026-12-03-gpu-check.jsonl"
    assert gpu_record.slug("???") == "unknown-device"
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        gpu_record.record_paths("x", "03/12/2026")


def test_the_log_parser_reads_each_steps_figures():
    log = ("....ss.\n2 passed, 1 skipped, 1 error in 12.34s\n"
           "PASS adam_update float32 (max error 0)\ncheck: 41 of 44 kernel checks pass on the cupy backend\n"
           "training step: layered (the cupy backend has no whole-step kernel)\n"
           "test loss: 0.3312 - test accuracy: 0.8931 (89.31%) - wall time 21.5s\n")
    assert gpu_record.parse_log(log) == {
        "pytest": {"passed": 2, "skipped": 1, "error": 1}, "kernel_checks_passed": 41, "kernel_checks": 44,
        "step_path": "layered (the cupy backend has no whole-step kernel)", "test_accuracy": 0.8931,
        "train_wall_s": 21.5}
    assert gpu_record.parse_log("nothing to see") == {}


def test_the_log_parser_reads_the_real_outputs():
    """The lines the parser looks for are the ones the commands print (NumPy backend here)."""
    check = subprocess.run([sys.executable, "-m", "tensornet", "info", "--check", "--backend", "numpy"],
                           capture_output=True, text=True, cwd=BENCH.parent, timeout=300)
    found = gpu_record.parse_log(check.stdout)
    assert found["kernel_checks"] > 0 and found["kernel_checks_passed"] == found["kernel_checks"], check.stdout


def test_records_append_and_summarise(tmp_path):
    jsonl = tmp_path / "r.jsonl"
    gpu_record.append(jsonl, {"step": "versions", "rc": 0, "seconds": 1.5, "cupy": "13.6"})
    gpu_record.append(jsonl, {"step": "train", "rc": 124, "seconds": 90.0, "timed_out": True})
    records = gpu_record.read(jsonl)
    assert [r["step"] for r in records] == ["versions", "train"]
    lines, ok = gpu_record.summary(records)
    assert not ok and "FAIL (exit 124)" in lines[1] and '"cupy": "13.6"' in lines[0]


def _stand_in_python(folder):
    """An interpreter that is this one, except for the commands that need a GPU: the device's
    name, PyTorch's CUDA check, ``versions``, pytest, ``tensornet info --check`` / ``train`` and
    the benchmark answer as they do on a GPU (canned output), the train step failing."""
    script = folder / "python"
    script.write_text(f"""#!{sys.executable}
import os, sys
args = sys.argv[1:]
joined = " ".join(args)
def say(text, code=0):
    print(text)
    sys.exit(code)
if args[:1] == ["-c"] and "torch.cuda.is_available" in joined:
    sys.exit(0)
if args[:2] == ["{BENCH / 'gpu_record.py'}", "device"]:
    say("Stand-in GPU 9000")
if args[:2] == ["{BENCH / 'gpu_record.py'}", "versions"]:
    import json
    with open(args[3], "a") as f:
        f.write(json.dumps({{"step": "versions", "cupy": "0+stand-in"}}) + "\\n")
    say("cupy: 0+stand-in")
if args[:2] == ["-m", "pytest"]:
    say("3 passed, 2 skipped in 1.00s")
if args[:3] == ["-m", "tensornet", "info"]:
    say("check: 44 of 44 kernel checks pass on the cupy backend")
if args[:3] == ["-m", "tensornet", "train"]:
    say("training step: layered\\ntest loss: 0.9 - test accuracy: 0.1000 (10.00%) - wall time 2.0s", 1)
if args[:1] == ["{BENCH / 'gpu_compare.py'}"]:
    say("mlp-512 done")
os.execv("{sys.executable}", ["{sys.executable}", *args])
""")
    script.chmod(0o755)
    return script


def test_the_whole_script_records_every_step(tmp_path):
    python = _stand_in_python(tmp_path)
    results = tmp_path / "results"
    done = run_script(fake_data(tmp_path / "data"), env={"PYTHON": str(python), "GPU_CHECK_RESULTS": str(results)})
    assert done.returncode == 1, done.stdout + done.stderr  # the train step failed
    records = sorted(results.iterdir())
    assert len(records) == 2, records
    jsonl = next(p for p in records if p.suffix == ".jsonl")
    txt = next(p for p in records if p.suffix == ".txt")
    assert jsonl.name.startswith("stand-in-gpu-9000-") and jsonl.name.endswith("-gpu-check.jsonl")
    steps = [r for r in gpu_record.read(jsonl) if "rc" in r]
    assert [r["step"] for r in steps] == ["versions", "gpu-tests", "kernels", "train", "benchmark"]
    by_name = {r["step"]: r for r in steps}
    assert by_name["gpu-tests"]["pytest"] == {"passed": 3, "skipped": 2}
    assert by_name["kernels"]["kernel_checks_passed"] == 44
    assert by_name["train"]["rc"] == 1 and by_name["train"]["test_accuracy"] == 0.1
    text = txt.read_text()
    assert "=== summary" in text and "FAIL (exit 1)" in text and "gpu_check: a step failed" in text
    assert "Stand-in GPU 9000" in text


@needs_data
def test_gpu_compare_without_a_gpu_exits_with_the_reason():
    from tensornet.backend import cupy_status

    if cupy_status()[0]:
        pytest.skip("CuPy sees a GPU here")
    with pytest.raises(SystemExit) as caught:
        gpu_compare.main(["--data", str(DATA)])
    assert isinstance(caught.value, gpu_compare.SetupError) and "needs CuPy and a GPU" in str(caught.value)
    done = subprocess.run([sys.executable, str(BENCH / "gpu_compare.py"), "--data", str(DATA)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 3 and "gpu_compare: --device cuda needs CuPy and a GPU" in done.stderr


def test_gpu_compare_names_a_missing_data_directory(tmp_path):
    with pytest.raises(SystemExit, match="no such directory"):
        gpu_compare.main(["--data", str(tmp_path / "nowhere"), "--device", "cpu"])


@needs_data
def test_gpu_compare_runs_its_cases_on_the_cpu(tmp_path):
    """The benchmark's own code (models, steppers, the same-trajectory check, the epoch loops,
    the table and the JSON lines) on the NumPy backend against PyTorch CPU, tiny counts."""
    pytest.importorskip("torch")
    jsonl = tmp_path / "bench.jsonl"
    results = gpu_compare.main(["--device", "cpu", "--quick", "--no-compile", "--data", str(DATA),
                                "--cases", "mlp-512,fmnist-epoch", "--limit", "640", "--jsonl", str(jsonl)])
    assert [r["case"] for r in results] == ["mlp-512", "fmnist-epoch"]
    step, epoch = results
    assert step["max_weight_diff_after_3_steps"] < 1e-3 and set(step["ratios"]) == {"torch"}
    assert epoch["samples"] == 640 and epoch["ratios"]["torch"] > 0
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [line["case"] for line in lines] == ["mlp-512", "fmnist-epoch"]
    assert all(line["step"] == "benchmark" for line in lines)
    assert "tn/torch" in gpu_compare.format_table(results)


def test_gpu_compare_refuses_an_unknown_case(tmp_path):
    with pytest.raises(SystemExit):
        gpu_compare.main(["--device", "cpu", "--data", str(tmp_path), "--cases", "mlp-9"])


def test_the_docker_image_carries_what_the_check_needs():
    dockerfile = (BENCH.parent / "Dockerfile").read_text()
    for needed in ("COPY bench ./bench", "COPY tests ./tests", "COPY conftest.py", " torch", "dev]"):
        assert needed in dockerfile, needed
    assert shutil.which("bash")
