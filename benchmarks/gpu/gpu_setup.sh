#!/usr/bin/env bash
# On the GPU machine, once per warm machine, carrying .whl/train, .whl/arctic and .whl/build
# (benchmarks/gpu/fetch_wheels.sh): install the training wheels and build arctic-inference (suffix
# decoding's C++ suffix tree; cmake + nanobind, no network) into /tmp/site-packages, which later commands on
# the same machine put on PYTHONPATH. Idempotent; about 1-2 minutes the first time.
set -euo pipefail
site=/tmp/site-packages   # a path containing "site-packages": datasets hashes those modules by reference
mkdir -p "$site"
pip_install=(python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site")
"${pip_install[@]}" .whl/train/*.whl
export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH} PATH=$site/bin:$PATH
if ! python3 -c "import arctic_inference.suffix_decoding" 2>/dev/null; then
    command -v cmake >/dev/null && python3 -c "import nanobind" 2>/dev/null || "${pip_install[@]}" .whl/build/*.whl
    ARCTIC_INFERENCE_PRECOMPILED_OPS=0 "${pip_install[@]}" --no-build-isolation .whl/arctic/arctic_inference-0.3.0*.tar.gz
fi
python3 -c "from arctic_inference.suffix_decoding import SuffixDecodingCache; SuffixDecodingCache(8, 4); print('arctic-inference suffix tree: ok')"
python3 -c "import trl, datasets, liger_kernel; print('trl', trl.__version__, 'datasets', datasets.__version__)"
