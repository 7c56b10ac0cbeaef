"""A slim install: importing guardreasoner loads no ML or agent framework, and a missing extra names itself."""

from __future__ import annotations

import subprocess
import sys

import pytest
from guardreasoner import MissingExtraError


def test_import_loads_no_heavy_dependency():
    """The one slim-import check: the core, its CLI and every engine module import without their frameworks."""
    code = (
        "import sys, guardreasoner, guardreasoner.guard, guardreasoner.cli, guardreasoner.testing, "
        "guardreasoner.integrations, guardreasoner.engines.hf, guardreasoner.engines.openai, "
        "guardreasoner.engines.vllm, guardreasoner.eval.download; "
        "heavy = [m for m in ('torch', 'transformers', 'vllm', 'openai', 'langchain', 'langchain_core', "
        "'llama_index') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_missing_torch_names_the_hf_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    from guardreasoner.engines.hf import HFEngine

    with pytest.raises(MissingExtraError, match=r'pip install "guardreasoner\[hf\]"') as caught:
        HFEngine("some/path")
    assert caught.value.extra == "hf"
    assert isinstance(caught.value, ImportError)
