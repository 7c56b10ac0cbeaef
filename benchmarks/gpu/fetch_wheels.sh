#!/usr/bin/env bash
# Download what the GPU machine (Python 3.12, x86_64, no network) lacks into .whl/ of this checkout:
#   .whl/train   trl, datasets, liger-kernel, pyarrow, dill, multiprocess (the stand-in's R-SFT; as the
#                training-throughput runs carried them)
#   .whl/arctic  arctic-inference 0.3.0's sdist (vLLM's suffix decoding; built there by gpu_setup.sh)
#   .whl/build   nanobind, ninja and cmake wheels, for that build if the image has no cmake
#   .whl/serve   what `vllm serve` imports beyond the vLLM bundle (session_gpu_scores.sh installs it)
#
#   source /work/wt/env.sh && bash benchmarks/gpu/fetch_wheels.sh      # ~60 MiB, mostly pyarrow
#
# pip reads the sdist's metadata by running its setup.py, which imports torch: run it with a Python that has
# torch (the project's venv) so that pip does not try to build torch in an isolated environment.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
python -c "import torch" || { echo "run with a Python that has torch (source env.sh)" >&2; exit 2; }
pip=(python -m pip download -q --no-deps --dest)
binary=(--only-binary=:all: --python-version 3.12 --implementation cp --abi cp312
        --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64)
mkdir -p .whl/train .whl/arctic .whl/build .whl/serve
"${pip[@]}" .whl/train "${binary[@]}" trl==1.16.0 datasets==5.2.0 liger-kernel==0.8.5 pyarrow==26.0.1 \
    dill==0.4.1 multiprocess==0.70.19
"${pip[@]}" .whl/arctic --no-binary=:all: --no-build-isolation arctic-inference==0.3.0
"${pip[@]}" .whl/build "${binary[@]}" nanobind==2.9.2 ninja cmake
"${pip[@]}" .whl/serve "${binary[@]}" model-hosting-container-standards==0.1.16 jmespath==1.1.0 supervisor==4.3.0
du -sh .whl/*
