#!/usr/bin/env bash
# Device call R1 on nvidia-h200-x2 (after session_stage.sh), carrying .vllm/part3 and .vllm/assets (~59 MiB):
#   bash benchmarks/gpu/session_r1.sh
# Two independent one-GPU jobs side by side, one per GPU:
#   GPU 0: the stand-in guard trained, then the vllm engine change by change (standin_perf.sh, issue 14);
#   GPU 1: guardreasoner.audit in-process against Ray Data with one GPU actor (audit_bench.py, issue 13).
# Results go to /tmp/r1 and come back as $OUT/r1.tar.gz with the logs' tails printed.
set -uo pipefail
source benchmarks/gpu/session_env.sh || exit 3
R=/tmp/r1; mkdir -p $R/perf $R/audit
(CUDA_VISIBLE_DEVICES=0 OUT=$R/perf BUDGET_TRAIN=${BUDGET_TRAIN:-200} BUDGET_PERF=${BUDGET_PERF:-230} \
   timeout 560 bash benchmarks/gpu/standin_perf.sh > $R/perf.log 2>&1; echo "perf exit $?" >> $R/perf.log) &
(CUDA_VISIBLE_DEVICES=1 timeout 540 python3 benchmarks/gpu/audit_bench.py --assets .vllm/assets --out $R/audit \
   > $R/audit.log 2>&1; echo "audit exit $?" >> $R/audit.log) &
wait
nvidia-smi --query-gpu=index,name,driver_version --format=csv,noheader > $R/gpus.txt
python3 -c 'import torch, vllm, transformers; print("torch", torch.__version__, "vllm", vllm.__version__, "transformers", transformers.__version__)' >> $R/gpus.txt 2>/dev/null
tar -czf "$OUT/r1.tar.gz" -C $R . && ls -la "$OUT"
tail -n 25 $R/audit.log; tail -n 40 $R/perf.log
