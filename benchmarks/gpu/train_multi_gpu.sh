#!/usr/bin/env bash
# R-SFT throughput on 1 and N GPUs of one host (issue 5): tokens/s per GPU, scaling efficiency vs 1 GPU, peak
# memory per GPU. Runs benchmarks/gpu/train_multi_gpu.py under accelerate with the shipped FSDP2 or ZeRO-3
# config, once on 1 GPU and once on all of them, then writes summary.json.
#
#   BACKEND=fsdp  bash benchmarks/gpu/train_multi_gpu.sh            # FSDP2 (default)
#   BACKEND=zero3 bash benchmarks/gpu/train_multi_gpu.sh            # DeepSpeed ZeRO-3 (needs deepspeed)
#   NGPUS=4 STEPS=300 OUT=/tmp/res bash benchmarks/gpu/train_multi_gpu.sh --variant varlen
#   DRY_RUN=1 bash benchmarks/gpu/train_multi_gpu.sh                # CPU: tiny model, 1 process (checks the wiring)
#
# On a device machine, first install the wheels the image lacks (trl, datasets, liger-kernel, pydantic, ...) into a
# folder whose path contains "site-packages" (datasets' hashing treats other paths as user code), e.g.
#   python3 -m pip install --no-index --no-deps --target /tmp/site-packages .whl/*.whl
#   export PYTHONPATH=/tmp/site-packages
set -euo pipefail

# NVLink multicast (NVLS) can take a shared host's GPUs out of service: keep it off.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export HF_DATASETS_DISABLE_PROGRESS_BARS=1 TQDM_DISABLE=1 PYTHONUNBUFFERED=1

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export PYTHONPATH="$ROOT/training/src:$ROOT/packages/core/src${PYTHONPATH:+:$PYTHONPATH}"
BACKEND=${BACKEND:-fsdp}
STEPS=${STEPS:-200}
OUT=${OUT:-$ROOT/benchmarks/results/train_multi_gpu}
CONFIG="$ROOT/training/configs/accelerate_${BACKEND}.yaml"
mkdir -p "$OUT"

if [[ "${DRY_RUN:-0}" == "1" ]]; then
    accelerate launch --config_file "$CONFIG" --num_processes 1 --cpu \
        "$ROOT/benchmarks/gpu/train_multi_gpu.py" --tiny --steps 2 --warmup 1 --per-device-batch 4 \
        --config-name "$(basename "$CONFIG")" --out "$OUT/${BACKEND}_1gpu.json" "$@"
    python3 "$ROOT/benchmarks/gpu/train_multi_gpu.py" --summarize "$OUT"
    exit 0
fi

NGPUS=${NGPUS:-$(python3 -c 'import torch; print(torch.cuda.device_count())')}
if [[ "$BACKEND" == "zero3" ]] && ! python3 -c 'import deepspeed' 2>/dev/null; then
    echo "BACKEND=zero3 needs deepspeed (pip install 'guardreasoner-training[deepspeed]', or carry its wheel)" >&2
    exit 2
fi
for n in 1 "$NGPUS"; do
    [[ "$n" == "1" && -f "$OUT/${BACKEND}_1gpu.json" && "${RERUN_1GPU:-0}" != "1" ]] && continue
    accelerate launch --config_file "$CONFIG" --num_processes "$n" --main_process_port $((29500 + n)) \
        "$ROOT/benchmarks/gpu/train_multi_gpu.py" --steps "$STEPS" --config-name "$(basename "$CONFIG")" \
        --out "$OUT/${BACKEND}_${n}gpu.json" "$@"
done
python3 "$ROOT/benchmarks/gpu/train_multi_gpu.py" --summarize "$OUT"
