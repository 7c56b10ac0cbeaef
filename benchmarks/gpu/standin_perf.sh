#!/usr/bin/env bash
# The GPU run (one command, ~9 minutes): train the stand-in guard (<= BUDGET_TRAIN s of training), then measure
# the vllm engine change by change on it (vllm_perf.py, <= BUDGET_PERF s). Carry .vllm/part3 and .vllm/assets;
# parts 1 and 2 staged and gpu_setup.sh run earlier on the same warm machine. TRAIN_ONLY=1 stops after training.
set -uo pipefail
BUDGET_TRAIN=${BUDGET_TRAIN:-220}
BUDGET_PERF=${BUDGET_PERF:-240}
source .vllm/part3/install.sh || exit 3
export PYTHONPATH=/tmp/site-packages:$PWD/packages/core/src:$PWD/training/src:$PYTHONPATH
export PYTHONUNBUFFERED=1 HF_DATASETS_DISABLE_PROGRESS_BARS=1 TQDM_DISABLE=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /tmp/standin-assets
tar -C /tmp/standin-assets -xJf .vllm/assets/standin.tar.xz
assets=/tmp/standin-assets/standin
standin=/tmp/standin   # the model (4 GB) stays on the machine; only figures and logs go to $OUT
if [ ! -f $standin/model/config.json ]; then
    python3 benchmarks/gpu/standin_guard.py --assets $assets --out $standin --budget-s "$BUDGET_TRAIN" \
        2>&1 | grep -v -e 'Warning' -e 'warn(' | tee "$OUT/standin_log.txt"
    rm -rf $standin/init
fi
cp $standin/train.json "$OUT/standin_train.json"
[ -n "${TRAIN_ONLY:-}" ] && exit 0   # the model stays at /tmp/standin for later calls on this warm machine
python3 benchmarks/gpu/vllm_perf.py --model $standin/model --assets $assets --out "$OUT/perf" \
    --budget-s "$BUDGET_PERF" ${LEGS:+--legs $LEGS} 2>&1 | tee "$OUT/perf_log.txt"
rm -rf "$OUT/perf/llama-8b-config"
du -sh "$OUT"/* 2>/dev/null
