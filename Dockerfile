# tensornet on an NVIDIA GPU: CUDA 12 runtime, CuPy for CUDA 12, Fashion-MNIST from the distribution.
#   docker build -t tensornet .
#   docker run --rm --gpus all tensornet              # tensornet train --backend cupy
#   docker run --rm --gpus all tensornet info
#   docker run --rm --gpus all -v "$PWD/bench/results:/opt/tensornet/bench/results" \
#       --entrypoint bench/gpu_check.sh tensornet /usr/share/datasets/fashion-mnist   # the GPU check
FROM nvidia/cuda:12.6.3-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv dataset-fashion-mnist \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/tensornet
COPY pyproject.toml README.md ./
COPY tensornet ./tensornet
COPY kernels ./kernels
# bench/gpu_check.sh runs the gpu tests (pytest, the dev extra) and benchmarks against PyTorch CUDA.
COPY conftest.py ./
COPY tests ./tests
COPY bench ./bench
# Editable install: the CuPy backend reads kernels/*.cu from this checkout at run time.
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir -e '.[cuda12,dev]' torch

ENV PATH=/opt/venv/bin:$PATH TENSORNET_BACKEND=cupy
ENTRYPOINT ["tensornet"]
CMD ["train"]
