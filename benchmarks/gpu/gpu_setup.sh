#!/usr/bin/env bash
# On the GPU machine, once per warm machine (benchmarks/gpu/fetch_wheels.sh fills .whl/ here): install the
# training wheels and build arctic-inference (suffix decoding's C++ suffix tree; cmake + nanobind, no network)
# into /tmp/site-packages, which later commands on the same machine put on PYTHONPATH. Idempotent.
#
# A command carries at most 64 MiB, so this takes two calls when the image lacks cmake or nanobind:
#   call A, carrying .whl/train and .whl/arctic (56 MiB): installs the wheels; builds arctic if it can
#   call B, only if A said so, carrying .whl/build and .whl/arctic (30 MiB): builds arctic
set -euo pipefail
site=/tmp/site-packages   # a path containing "site-packages": datasets hashes those modules by reference
mkdir -p "$site"
pip_install=(python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site")
export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH} PATH=$site/bin:$PATH
shopt -s nullglob
train=(.whl/train/*.whl) build=(.whl/build/*.whl) sdist=(.whl/arctic/arctic_inference-0.3.0*.tar.gz)
if [ ${#train[@]} -gt 0 ]; then
    "${pip_install[@]}" "${train[@]}"
fi
if ! python3 -c "import arctic_inference.suffix_decoding" 2>/dev/null; then
    if ! { command -v cmake && python3 -c "import nanobind"; } >/dev/null 2>&1; then
        if [ ${#build[@]} -eq 0 ]; then
            echo "no cmake/nanobind here: run this again carrying .whl/build and .whl/arctic" >&2
            exit 4
        fi
        "${pip_install[@]}" "${build[@]}"
    fi
    [ ${#sdist[@]} -gt 0 ] || { echo "carry .whl/arctic (the arctic-inference sdist)" >&2; exit 4; }
    ARCTIC_INFERENCE_PRECOMPILED_OPS=0 "${pip_install[@]}" --no-build-isolation "${sdist[0]}"
fi
python3 -c "from arctic_inference.suffix_decoding import SuffixDecodingCache; SuffixDecodingCache(8, 4); print('arctic-inference suffix tree: ok')"
python3 -c "import trl, datasets, liger_kernel; print('trl', trl.__version__, 'datasets', datasets.__version__)"
