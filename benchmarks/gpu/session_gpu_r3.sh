#!/usr/bin/env bash
# Session 3, device call R3 on nvidia-h200-x2 (after R2 on the same warm machine), carrying .vllm/part3 and
# .vllm/assets:   bash benchmarks/gpu/session_gpu_r3.sh
# Issue 17's serving legs: the 8B architecture at tensor_parallel_size 1 against 2 (with FlashInfer's
# multicast all-reduce fusion off: vllm_tp_serving.py), then two one-GPU engines side by side (data parallel).
set -uo pipefail
source benchmarks/gpu/session_env.sh || exit 3
R=/tmp/g3; mkdir -p $R
timeout ${TP_S:-380} python3 benchmarks/gpu/vllm_tp_serving.py --assets .vllm/assets --out $R/tp --no-concurrent \
  > $R/tp.log 2>&1; echo "tp exit $?" >> $R/tp.log
timeout ${DP_S:-150} python3 benchmarks/gpu/vllm_dp_serving.py --assets .vllm/assets --out $R/tp > $R/dp.log 2>&1
echo "dp exit $?" >> $R/dp.log
tar -czf "$OUT/r3.tar.gz" -C $R . && ls -la "$OUT"
grep -E "^ *[12] |ERROR|verdicts" $R/tp.log | tail -n 8; tail -n 6 $R/tp.log; tail -n 10 $R/dp.log
