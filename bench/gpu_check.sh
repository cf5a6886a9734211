#!/usr/bin/env bash
# bench/gpu_check.sh -- everything tensornet can prove on a GPU, in one command, offline.
#
#   bench/gpu_check.sh FASHION_MNIST_DIR        # e.g. /usr/share/datasets/fashion-mnist
#
# Needs a machine with an NVIDIA GPU where CuPy, PyTorch (CUDA) and NumPy are installed (pytest
# for the gpu tests); installs and downloads nothing. FASHION_MNIST_DIR holds the four IDX
# files (gzipped or not). Steps, each under a time limit (7.5 minutes in all at most):
#   1. versions   device, driver, CUDA runtime and driver, CuPy, PyTorch, NumPy
#   2. gpu-tests  python -m pytest -m gpu on the test files that hold gpu tests
#   3. kernels    tensornet info --check --backend cupy: every kernel against its NumPy reference
#   4. train      tensornet train --backend cupy: test accuracy, wall time, training step path
#   5. benchmark  bench/gpu_compare.py: the step against PyTorch CUDA eager and torch.compile
#                 (784-512-512-10 @128, 784-2048-2048-10 @256) and a Fashion-MNIST epoch with both
#                 sides' data on the GPU
# Everything printed goes to bench/results/<device>-<date>-gpu-check.txt, one JSON object per
# step to the .jsonl beside it ($GPU_CHECK_RESULTS: another directory). Exit status: 0 when every
# step passed, 1 when one failed, 2 for a usage error or missing data, 3 when CuPy, a GPU or
# PyTorch is missing. $PYTHON: the interpreter (default python3).
#
# In the Docker image (see Dockerfile):
#   docker run --rm --gpus all -v "$PWD/bench/results:/opt/tensornet/bench/results" \
#       --entrypoint bench/gpu_check.sh tensornet /usr/share/datasets/fashion-mnist
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
PY=${PYTHON:-python3}

if [ $# -ne 1 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    echo "usage: bench/gpu_check.sh FASHION_MNIST_DIR   (a directory holding the four Fashion-MNIST IDX files)" >&2
    exit 2
fi
data=$1
if [ ! -d "$data" ]; then
    echo "gpu_check: $data: no such directory (it must hold the four Fashion-MNIST IDX files)" >&2
    exit 2
fi
for file in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    if [ ! -f "$data/$file" ] && [ ! -f "$data/$file.gz" ]; then
        echo "gpu_check: $data holds no $file (nor $file.gz): pass the directory of the Fashion-MNIST IDX files" >&2
        exit 2
    fi
done
data=$(cd "$data" && pwd)
if ! command -v "$PY" >/dev/null 2>&1; then
    echo "gpu_check: no Python interpreter '$PY' (set \$PYTHON)" >&2
    exit 3
fi
cd "$root" || exit 2
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export TENSORNET_DATA="$data"  # what loads Fashion-MNIST without a path finds it here: nothing is downloaded

device=$("$PY" "$here/gpu_record.py" device) || exit 3
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu_check: PyTorch is missing or sees no CUDA device: the benchmark needs PyTorch with CUDA" >&2
    exit 3
fi
results=${GPU_CHECK_RESULTS:-$here/results}
mkdir -p "$results"
{ read -r txt; read -r jsonl; } < <("$PY" "$here/gpu_record.py" paths --device "$device" --results "$results")
: > "$txt"
: > "$jsonl"
exec > >(tee -a "$txt") 2>&1

echo "gpu_check: $device, $(date -u '+%Y-%m-%d %H:%M:%S UTC'), data $data"
echo "record: $txt, $jsonl"

# run_step NAME SECONDS COMMAND...: run COMMAND under a time limit, show and record its output.
run_step() {
    local name=$1 limit=$2 log start stop rc elapsed
    shift 2
    log=$(mktemp)
    echo
    echo "=== $name (limit ${limit}s): $*"
    start=$(date +%s%N)
    timeout "$limit" "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    stop=$(date +%s%N)
    elapsed=$(( (stop - start) / 1000000 ))
    [ "$rc" = 124 ] && echo "gpu_check: $name ran past ${limit}s and was stopped"
    "$PY" "$here/gpu_record.py" step --jsonl "$jsonl" --name "$name" --rc "$rc" \
        --seconds "$(printf '%d.%03d' $((elapsed / 1000)) $((elapsed % 1000)))" --log "$log"
    rm -f "$log"
}

run_step versions 30 "$PY" "$here/gpu_record.py" versions --jsonl "$jsonl"

if "$PY" -c "import pytest" 2>/dev/null; then
    mapfile -t gpu_files < <(grep -l "mark\.gpu" tests/test_*.py)
    run_step gpu-tests 120 "$PY" -m pytest -q -m gpu -p no:cacheprovider --continue-on-collection-errors \
        "${gpu_files[@]}"
else
    run_step gpu-tests 10 sh -c 'echo "pytest is not installed: the gpu tests cannot run here"; exit 3'
fi

run_step kernels 60 "$PY" -m tensornet info --check --backend cupy
run_step train 60 "$PY" -m tensornet train --backend cupy --data "$data" --verbose 2
run_step benchmark 180 "$PY" "$here/gpu_compare.py" --device cuda --data "$data" --jsonl "$jsonl"

echo
echo "=== summary ($txt)"
"$PY" "$here/gpu_record.py" summary --jsonl "$jsonl"
status=$?
[ "$status" = 0 ] && echo "gpu_check: every step passed" || echo "gpu_check: a step failed (see above)"
exit "$status"
