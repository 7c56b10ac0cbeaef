#!/usr/bin/env bash
# Session 3, device call R1 on nvidia-h200-x2 (after session_stage.sh), carrying .vllm/part3 and .vllm/assets:
#   bash benchmarks/gpu/session_gpu_r1.sh
# Side by side, one GPU each:
#   GPU 0: the stand-in guard trained (standin_perf.sh, TRAIN_ONLY): kept at /tmp/standin for R2 (issue 14);
#   GPU 1: issue 12's check of the openai engine's scores against a real `vllm serve` (float32, tiny trained
#          guard), then the GPU tests (tests/gpu: vLLM against transformers, label logprobs included).
# Results come back as $OUT/r1.tar.gz, with the logs' tails printed.
set -uo pipefail
source benchmarks/gpu/session_env.sh || exit 3
R=/tmp/g1; mkdir -p $R/perf
(CUDA_VISIBLE_DEVICES=0 OUT=$R/perf TRAIN_ONLY=1 BUDGET_TRAIN=${BUDGET_TRAIN:-200} \
   timeout 330 bash benchmarks/gpu/standin_perf.sh > $R/train.log 2>&1; echo "train exit $?" >> $R/train.log) &
(export CUDA_VISIBLE_DEVICES=1
 timeout 150 python3 benchmarks/gpu/openai_scores_check.py --server vllm --model-dir .vllm/assets/tiny_guard \
   --out $R/openai_scores_check.json > $R/scores.log 2>&1; echo "scores exit $?" >> $R/scores.log
 timeout 260 python3 -m pytest -m gpu tests/gpu -ra -v -p no:cacheprovider > $R/pytest_gpu.txt 2>&1
 echo "pytest exit $?" >> $R/pytest_gpu.txt) &
wait
nvidia-smi --query-gpu=index,name,driver_version --format=csv,noheader > $R/gpus.txt
python3 -c 'import torch, vllm, transformers; print("torch", torch.__version__, "vllm", vllm.__version__, "transformers", transformers.__version__)' >> $R/gpus.txt 2>/dev/null
tar -czf "$OUT/r1.tar.gz" -C $R . && ls -la "$OUT"
tail -n 8 $R/train.log; tail -n 25 $R/scores.log; tail -n 15 $R/pytest_gpu.txt
