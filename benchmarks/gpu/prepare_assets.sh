#!/usr/bin/env bash
# CPU step (this machine, which has the paper's data): build the stand-in guard's inputs and pack them as
# .vllm/assets/standin.tar.xz (~1.5 MiB), the form the GPU command carries (.vllm/part3 is 51 MiB of the
# 64 MiB a command may carry, so the 19 MiB of plain files would not fit).
#
#   source /work/wt/env.sh && bash benchmarks/gpu/prepare_assets.sh     # ~2 min on 2 loaded cores
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
: "${GUARDREASONER_SHARED_DATA:?source env.sh first, for the data of the paper}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python benchmarks/gpu/standin_assets.py --out "$work/standin"
mkdir -p .vllm/assets
tar -C "$work" -cJf .vllm/assets/standin.tar.xz standin
ls -la .vllm/assets/standin.tar.xz
