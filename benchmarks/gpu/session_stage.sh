#!/usr/bin/env bash
# Staging on a fresh device machine, one call each, each within 30 s of the last (the machine is kept that long).
# A call carries at most 64 MiB, so the vLLM bundle, the Ray wheel (split in three, .gpu/s1..s4) and the
# training wheels travel in four calls:
#   1. carry .vllm/part1 .gpu/s1:      bash benchmarks/gpu/session_stage.sh .vllm/part1 .gpu/s1
#   2. carry .vllm/part2 .gpu/s2:      bash benchmarks/gpu/session_stage.sh .vllm/part2 .gpu/s2
#   3. carry .whl/train .whl/arctic:   bash benchmarks/gpu/gpu_setup.sh     (trl, datasets; builds arctic-inference)
#   4. carry .gpu/s4:                  bash benchmarks/gpu/session_stage.sh .gpu/s4
# Built here: ../shared/tools/vllm-device-bundle build; .gpu/s1,s2,s4 = `split -n 3 -d` of Ray 2.60.0's cp312
# manylinux wheel (pip download --no-deps --only-binary=:all: --python-version 3.12 ray==2.60.0).
set -euo pipefail
for part in "$@"; do
  case $part in
    .vllm/part*) bash "$part/stage.sh" ;;
    *) mkdir -p "$HOME/ray-stage" && cp "$part"/* "$HOME/ray-stage/" ;;
  esac
done
ls -l "$HOME"/vllm-stage "$HOME"/ray-stage 2>/dev/null || true
nvidia-smi --query-gpu=index,name,memory.used,memory.total --format=csv,noheader
