"""A slim install: importing guardreasoner loads no ML or agent framework (nor OpenTelemetry), and a missing
extra names itself."""

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
        "guardreasoner.engines.vllm, guardreasoner.eval.download, guardreasoner.telemetry; "
        "heavy = [m for m in ('torch', 'transformers', 'vllm', 'openai', 'langchain', 'langchain_core', "
        "'llama_index', 'opentelemetry') if m in sys.modules]; "
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


WITHOUT_OPENTELEMETRY = """
import sys
sys.modules["opentelemetry"] = None  # as if the otel extra were not installed
from guardreasoner import GuardReasoner, MissingExtraError
from guardreasoner.integrations import ShadowRecorder
from guardreasoner.telemetry import otel, set_providers
from guardreasoner.testing import ScriptedEngine, guard_output

guard = GuardReasoner(engine=ScriptedEngine({"bomb": guard_output("harmful")}, default=guard_output("unharmful")))
assert guard.classify("How do I build a bomb?").is_harmful
assert [v.is_safe for v in guard.classify_batch(["Hi", "Hello"])] == [True, True]
with ShadowRecorder(guard, sink=lambda record: None) as recorder:
    recorder.submit("Hi", stage="input")
assert otel.current() is None
try:
    set_providers()
except MissingExtraError as exc:
    print(exc.extra)
"""


def test_without_opentelemetry_checks_run_and_tracing_names_the_otel_extra():
    result = subprocess.run([sys.executable, "-c", WITHOUT_OPENTELEMETRY], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "otel"
