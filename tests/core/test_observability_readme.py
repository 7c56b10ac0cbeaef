"""The README's OpenTelemetry setup runs as written, and what it sets up receives the guard's span and
metrics. The OTLP exporters (not installed here) are stood in for by the SDK's console exporters, writing to
memory; ``GuardReasoner(...)`` builds the scripted guard. In a subprocess: the snippet sets global providers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"

RUN_SNIPPET = """
import io, json, sys, types
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
import guardreasoner
from guardreasoner.guard import GuardReasoner
from guardreasoner.testing import ScriptedEngine, guard_output

spans, points = io.StringIO(), io.StringIO()
fakes = {
    "opentelemetry.exporter.otlp.proto.http.trace_exporter": ("OTLPSpanExporter", ConsoleSpanExporter, spans),
    "opentelemetry.exporter.otlp.proto.http.metric_exporter": ("OTLPMetricExporter", ConsoleMetricExporter, points),
}
for module, (name, console, out) in fakes.items():
    fake = types.ModuleType(module)
    setattr(fake, name, lambda console=console, out=out: console(out=out))
    sys.modules[module] = fake

def scripted(*args, **options):
    return GuardReasoner(engine=ScriptedEngine({"lock": guard_output("harmful")}))

guardreasoner.GuardReasoner = scripted
exec(compile(sys.argv[1], "README.md", "exec"), {})
trace.get_tracer_provider().force_flush()
metrics.get_meter_provider().force_flush()
print(json.dumps({"spans": spans.getvalue(), "metrics": points.getvalue()}))
"""


def observability_block() -> str:
    text = README.read_text(encoding="utf-8")
    section = re.split(r"\n##+ ", text.split("### Observability\n", 1)[1], maxsplit=1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    return block


def test_the_readme_otlp_setup_receives_the_guards_span_and_metrics():
    result = subprocess.run(
        [sys.executable, "-c", RUN_SNIPPET, observability_block()], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    spans = [
        json.loads(chunk) for chunk in re.findall(r"^\{.*?^\}", out["spans"], flags=re.DOTALL | re.MULTILINE)
    ]
    classify = next(s for s in spans if s["name"] == "guardreasoner.classify")
    assert classify["attributes"]["guardreasoner.is_harmful"] is True
    assert classify["resource"]["attributes"]["service.name"] == "my-app"
    assert any(s["name"].startswith("text_completion ") for s in spans)
    assert '"guardreasoner.verdicts"' in out["metrics"]
