#!/usr/bin/env bash
# Set up a fresh virtual environment with every package the tests need, then run the whole suite.
# Also runs the slim-install check: the core with no extras imports, parses, guards and runs its CLI without torch,
# answers first on the scripted engine (reasoning="auto"/"never") and summarizes checks for traces without OpenTelemetry.
# Nothing here depends on the terminal's width or the checkout's path: the CLI's errors are plain unwrapped lines
# and the tests run the CLI with COLUMNS=60 under long paths themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
pip_quiet=(--quiet --disable-pip-version-check)

# The paper's data sits beside the checkout (CI lays out shared/ next to the clone) or where the variable says.
data=${GUARDREASONER_SHARED_DATA:-$(cd .. && pwd)/shared/data}
if [ ! -d "$data/guardreasoner" ]; then
  echo "error: the reference data is missing: expected $data/guardreasoner (set GUARDREASONER_SHARED_DATA)" >&2
  exit 2
fi
export GUARDREASONER_SHARED_DATA=$data

echo "== slim install (guardreasoner, no extras)"
rm -rf .venv-slim && "$python" -m venv .venv-slim
.venv-slim/bin/pip install "${pip_quiet[@]}" ./packages/core -r .ci/requirements-test.txt
.venv-slim/bin/python -m pytest -p no:cacheprovider tests/core/test_prompt.py tests/core/test_parsing.py \
  tests/core/test_guard.py tests/core/test_imports.py tests/cli/test_classify_cli.py \
  tests/reasoning/test_modes_scripted.py tests/core/test_integrations_trace.py

echo "== full install"
[ -x .venv/bin/python ] || "$python" -m venv .venv
# torch first and pinned: 2.13.0 is the CPU build on this machine's disk (no CUDA download).
.venv/bin/pip install "${pip_quiet[@]}" torch==2.13.0
.venv/bin/pip install "${pip_quiet[@]}" -c .ci/constraints.txt -r .ci/requirements-test.txt \
  -e "./packages/core[hf,openai,eval,langchain,llamaindex,otel]" \
  -e ./packages/langchain_guard -e ./packages/llamaindex_guard -e ./training -r .ci/requirements-full.txt
.venv/bin/python -m pytest "$@"
