#!/usr/bin/env bash
# Device call R2 on nvidia-h200-x2 (after R1 on the same warm machine), carrying .vllm/part3 and .vllm/assets:
#   bash benchmarks/gpu/session_r2.sh
# The two-GPU runs of the multi-GPU issue, each against one GPU of the same machine in the same run:
#   audit: Ray Data with two GPU actors against one (audit_bench.py --gpus 2);
#   serving: the 8B architecture at tensor_parallel_size 2 against 1 (vllm_tp_serving.py), then two one-GPU
#            engines side by side (vllm_dp_serving.py);
#   training: R-SFT of the 1B architecture with the shipped FSDP2 config on 2 GPUs against 1 (train_multi_gpu.sh).
# Each leg has its own time limit so that the call ends inside the device's 10 minutes.
set -uo pipefail
source benchmarks/gpu/session_env.sh || exit 3
R=/tmp/r2; mkdir -p $R
leg() { local name=$1 limit=$2; shift 2; echo "== $name ($(date +%T), limit ${limit}s)"; \
  timeout "$limit" "$@" > $R/$name.log 2>&1; echo "$name exit $?" | tee -a $R/$name.log; }
leg audit2 ${AUDIT_S:-170} python3 benchmarks/gpu/audit_bench.py --assets .vllm/assets --out $R/audit --gpus 2 --count ${AUDIT_COUNT:-6000}
leg tp ${TP_S:-200} python3 benchmarks/gpu/vllm_tp_serving.py --assets .vllm/assets --out $R/tp --no-concurrent
leg dp ${DP_S:-90} python3 benchmarks/gpu/vllm_dp_serving.py --assets .vllm/assets --out $R/tp
leg fsdp ${FSDP_S:-110} env NGPUS=2 STEPS=${FSDP_STEPS:-30} OUT=$R/fsdp RERUN_1GPU=1 bash benchmarks/gpu/train_multi_gpu.sh
tar -czf "$OUT/r2.tar.gz" -C $R . && ls -la "$OUT"
for f in $R/*.log; do echo "--- $f"; tail -n 12 "$f"; done
