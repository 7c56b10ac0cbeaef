#!/usr/bin/env bash
# Session 3, device call R2 on nvidia-h200-x2 (after R1 on the same warm machine: the stand-in is at
# /tmp/standin), carrying .vllm/part3 and .vllm/assets:   bash benchmarks/gpu/session_gpu_r2.sh
#   1. issue 14: the vllm engine change by change on the stand-in, in two halves side by side, one GPU each;
#      each half runs its own `direct` (plain vLLM) first, and its legs compare with that one only. Each half
#      has its own vLLM compile cache, so that the two never write the same cache files.
#   2. issue 17: `guardreasoner audit --runner ray` on 10,000 conversations, one GPU actor against two.
set -uo pipefail
source benchmarks/gpu/session_env.sh || exit 3
R=/tmp/g2; mkdir -p $R
half() {  # gpu name legs
  CUDA_VISIBLE_DEVICES=$1 VLLM_CACHE_ROOT=/tmp/vllm-cache-$2 timeout ${PERF_S:-350} python3 benchmarks/gpu/vllm_perf.py \
    --model /tmp/standin/model --assets /tmp/standin-assets/standin --out $R/perf_$2 \
    --budget-s $(( ${PERF_S:-350} - 20 )) --legs "$3" > $R/perf_$2.log 2>&1
  echo "perf $2 exit $?" >> $R/perf_$2.log
}
half 0 A ${LEGS_A:-direct,engine,engine_noscores,suffix,suffix_k8,fp32_tokens} &
half 1 B ${LEGS_B:-direct,ngram_gpu,suffix_k4,engine_async,fp8,batch_invariant} &
wait
echo "== audit ($(date +%T))"
timeout ${AUDIT_S:-215} python3 benchmarks/gpu/audit_bench.py --assets .vllm/assets --out $R/audit --gpus 2 \
  --count 10000 --budget-s $(( ${AUDIT_S:-215} - 10 )) --leg-timeout-s 150 > $R/audit.log 2>&1
echo "audit exit $?" >> $R/audit.log
tar -czf "$OUT/r2.tar.gz" -C $R . && ls -la "$OUT"
for f in $R/perf_A.log $R/perf_B.log; do echo "--- $f"; tail -n 16 "$f"; done
tail -n 8 $R/audit.log
