#!/usr/bin/env bash
# The one GPU runner: named legs in order, each with its own time limit, on a machine staged by stage.sh.
#
#   bash benchmarks/gpu/run.sh LEG[:SECONDS][=ARGS] [LEG ...]     # A+B runs A and B side by side
#   bash benchmarks/gpu/run.sh standin:300+pytest:240 perf:560=direct,engine,suffix
#
# Legs (the stand-in guard is trained once per machine into $HOME/standin and reused by later calls):
#   smoke          torch, triton and vLLM import; one greedy generation of a tiny random Llama on vLLM
#   standin        train the stand-in guard (standin_guard.py; ARGS: its training budget in seconds)
#   pytest         the GPU tests (tests/gpu; ARGS: a pytest -k expression)
#   perf           vllm_perf.py's legs on the stand-in (ARGS: the comma-separated legs; its docstring lists them)
#   suite          vllm_suite.py: float32 parity with transformers, classify_batch and aclassify (random 1B)
#   scores         vllm_scores_check.py and openai_scores_check.py on the tiny trained guard
#   train          train_throughput.py: R-SFT tokens/s of the 1B architecture
#   audit tp dp    audit_bench.py, vllm_tp_serving.py, vllm_dp_serving.py (two GPUs; the audit needs Ray:
#                  stage.sh build with STAGE_RAY=1)
# Each leg writes $R/<leg>.log and its files under $R/<leg>/; everything comes back as $OUT/results.tar.gz,
# and the logs' tails are printed last (the reply shows the end of the output).
set -uo pipefail
source "$(dirname "$0")/stage.sh" env || exit 3
R=/tmp/gpu-results/$(date +%H%M%S)  # this call's; $OUT is emptied before each call
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$R" "$OUT"
STANDIN=$HOME/standin

leg() {  # leg NAME[:SECONDS][=ARGS]: one leg under its own time limit
  local spec=$1 name limit args
  name=${spec%%[:=]*}
  limit=$(sed -n 's/^[^:=]*:\([0-9]*\).*/\1/p' <<< "$spec"); limit=${limit:-300}
  args=$(sed -n 's/^[^=]*=//p' <<< "$spec")
  mkdir -p "$R/$name"
  echo "== $name (limit ${limit}s${args:+, $args}) $(date +%T)"
  local cmd
  case $name in
    smoke) cmd=(python3 benchmarks/gpu/smoke.py --out "$R/$name") ;;
    standin) cmd=(python3 benchmarks/gpu/standin_guard.py --assets "$GPU_ASSETS/standin" --out "$STANDIN"
                  --budget-s "${args:-240}") ;;
    pytest) cmd=(python3 -m pytest -m gpu tests/gpu -ra -v -p no:cacheprovider ${args:+-k "$args"}) ;;
    perf) cmd=(python3 benchmarks/gpu/vllm_perf.py --model "$STANDIN/model" --assets "$GPU_ASSETS/standin"
               --out "$R/$name" --budget-s "$((limit - 20))" ${args:+--legs "$args"}) ;;
    suite) cmd=(python3 benchmarks/gpu/vllm_suite.py --assets "$GPU_ASSETS" --out "$R/$name"
                --budget-s "$((limit - 20))") ;;
    scores) cmd=(bash -c "python3 benchmarks/gpu/vllm_scores_check.py --model-dir $GPU_ASSETS/tiny_guard \
                 --out $R/$name/vllm_scores_check.json && python3 benchmarks/gpu/openai_scores_check.py \
                 --server vllm --model-dir $GPU_ASSETS/tiny_guard --out $R/$name/openai_scores_check.json") ;;
    train) cmd=(python3 benchmarks/gpu/train_throughput.py --out "$R/$name" ${args}) ;;
    audit) cmd=(python3 benchmarks/gpu/audit_bench.py --assets "$GPU_ASSETS" --out "$R/$name" --gpus 2
                --budget-s "$((limit - 20))") ;;
    tp) cmd=(python3 benchmarks/gpu/vllm_tp_serving.py --assets "$GPU_ASSETS" --out "$R/$name" --no-concurrent) ;;
    dp) cmd=(python3 benchmarks/gpu/vllm_dp_serving.py --assets "$GPU_ASSETS" --out "$R/$name") ;;
    *) echo "run.sh: unknown leg '$name' (see the header)" >&2; return 2 ;;
  esac
  if [ "$name" = standin ] && [ -f "$STANDIN/model/config.json" ]; then
    echo "standin: already trained on this machine ($STANDIN)" | tee "$R/$name.log"; return 0
  fi
  timeout "$limit" "${cmd[@]}" > "$R/$name.log" 2>&1
  local status=$?
  echo "$name exit $status ($(date +%T))" | tee -a "$R/$name.log"
  [ "$name" = standin ] && cp "$STANDIN"/train.json "$R/$name/" 2>/dev/null
  return $status
}

{ nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader
  python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
  python3 -c 'import vllm; print("vllm", vllm.__version__)' 2>&1 | tail -1; } > "$R/environment.txt" 2>&1
for group in "$@"; do
  IFS=+ read -ra together <<< "$group"
  for spec in "${together[@]}"; do leg "$spec" & done
  wait
  if [[ $group == smoke* ]] && ! grep -q "^smoke exit 0" "$R/smoke.log"; then
    echo "run.sh: the staged stack does not work here (smoke failed): no further legs" | tee -a "$R/smoke.log"
    break
  fi
done
tar -czf "$OUT/results.tar.gz" -C "$R" . && ls -la "$OUT"
cat "$R/environment.txt"
for log in "$R"/*.log; do echo "--- $log"; grep -v -e Warning -e 'warn(' "$log" | tail -n "${TAIL:-15}"; done
