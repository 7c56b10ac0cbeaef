#!/usr/bin/env bash
# Set up a fresh virtual environment with every package the tests need, then run the whole suite.
# Also runs the slim-install check: the core with no extras imports, parses and guards without torch.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
pip_quiet=(--quiet --disable-pip-version-check)

echo "== slim install (guardreasoner, no extras)"
rm -rf .venv-slim && "$python" -m venv .venv-slim
.venv-slim/bin/pip install "${pip_quiet[@]}" ./packages/core -r .ci/requirements-test.txt
.venv-slim/bin/python -m pytest -p no:cacheprovider tests/core/test_prompt.py tests/core/test_parsing.py \
  tests/core/test_guard.py tests/core/test_imports.py

echo "== full install"
[ -x .venv/bin/python ] || "$python" -m venv .venv
# torch first and pinned: 2.13.0 is the CPU build on this machine's disk (no CUDA download).
.venv/bin/pip install "${pip_quiet[@]}" torch==2.13.0
.venv/bin/pip install "${pip_quiet[@]}" -c .ci/constraints.txt -r .ci/requirements-test.txt \
  -e "./packages/core[hf,openai,eval,langchain,llamaindex]" \
  -e ./packages/langchain_guard -e ./packages/llamaindex_guard -e ./training -r .ci/requirements-full.txt
.venv/bin/python -m pytest "$@"
