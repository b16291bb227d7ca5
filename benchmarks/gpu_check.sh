#!/usr/bin/env bash
# The GPU check, sized for about 10 minutes on one GPU machine without network access (CUDA 13,
# Python 3.12 with JAX and PyTorch preinstalled, no TensorFlow). Two steps:
#
# 1. Here (CPU, network to PyPI): python benchmarks/gpu_prepare.py
#    -> .gpu-check/wheels/ + requirements.txt (Keras and what the machine lacks) and .gpu-check/dsb2018-128.tar.gz
#    (the prepared 128x128 DSB2018 PNGs). .gpu-check/ is ignored by git: never commit it.
# 2. There, from the repository root (.gpu-check/ carried along):
#    bash benchmarks/gpu_check.sh [gpu_check.py options]   (GPU_CHECK_IMPORTS_ONLY=1: install and imports only)
#
# Prints (a) images/s of effunet-b0 and resnet50-unet at 128 and 512, fp32 and mixed, Keras on JAX
# against segmentation_models_pytorch on the same GPU, with peak GPU memory; (b) one DSB2018
# effunet-b0 training run to early stopping with epochs, seconds per epoch and test metrics.
set -euo pipefail
cd "$(dirname "$0")/.."
pack="${GPU_CHECK_DIR:-.gpu-check}"
site="${TMPDIR:-/tmp}/effunet-gpu-check-site"
# pip picks, among the carried wheels, the ones that fit this Python (binary ones come for several).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
    --find-links "$pack/wheels" -r "$pack/requirements.txt"
export PYTHONPATH="$site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
# Every module the check imports, before anything long (tests/test_gpu_check.py runs the steps up to here).
python3 benchmarks/gpu_check.py --check-imports
if [ "${GPU_CHECK_IMPORTS_ONLY:-0}" = 1 ]; then exit 0; fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "nvidia-smi: no GPU listed"
python3 -c "import jax; print('jax', jax.__version__, jax.devices())"
python3 benchmarks/gpu_check.py --data "$pack/dsb2018-128.tar.gz" "$@"
