#!/usr/bin/env bash
# Session 3, last device call (a fresh nvidia-h200 after staging .vllm/part1 and .vllm/part2), carrying
# .vllm/part3, .vllm/assets and .whl/serve (the one package `vllm serve` needs beyond the bundle):
#   bash benchmarks/gpu/session_gpu_scores.sh
# Issue 12 on real vLLM, side by side on one GPU (each engine takes 0.3 of it):
#   vllm_scores_check.py: the vllm engine's label scores against hf's (float32, sync and async), and their cost;
#   openai_scores_check.py --server vllm: the openai engine's scores from a real `vllm serve` against hf's.
set -uo pipefail
source .vllm/part3/install.sh || exit 3
mkdir -p /tmp/site-packages
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site-packages .whl/serve/*.whl || exit 3
export PYTHONPATH=/tmp/site-packages:$PWD/packages/core/src:$PYTHONPATH PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
R=/tmp/gs; mkdir -p $R
(timeout ${CHECK_S:-200} python3 benchmarks/gpu/vllm_scores_check.py --model-dir .vllm/assets/tiny_guard \
   --out $R/vllm_scores_check.json > $R/vllm_scores.log 2>&1; echo "vllm scores exit $?" >> $R/vllm_scores.log) &
(timeout ${CHECK_S:-200} python3 benchmarks/gpu/openai_scores_check.py --server vllm --model-dir .vllm/assets/tiny_guard \
   --out $R/openai_scores_check.json > $R/openai_scores.log 2>&1; echo "openai scores exit $?" >> $R/openai_scores.log) &
wait
cp /tmp/openai-scores-*/vllm-serve-*.log $R/ 2>/dev/null
tar -czf "$OUT/scores.tar.gz" -C $R .
grep -E '"max_abs_difference"|scores_over_no_scores|median_s|failures' -A1 $R/*.json | head -30
tail -n 4 $R/vllm_scores.log $R/openai_scores.log
