"""OpenTelemetry: a ``guardreasoner.classify`` span per call with the engine's GenAI span under it, the
``guardreasoner.*`` metrics, no conversation text unless asked, and nesting under the caller's span wherever
the check runs. Read back with the SDK's in-memory span exporter and metric reader (the ``otel`` fixture)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time

import pytest
from guardreasoner import GuardReasoner, GuardUndecidedError
from guardreasoner.engines import GenerationConfig
from guardreasoner.engines.forcing import FORCED_ANSWER_TOKENS
from guardreasoner.errors import EngineError
from guardreasoner.integrations import ShadowRecorder, run_beside_check
from guardreasoner.telemetry import (
    AUDIT_SPAN,
    CLASSIFY_SPAN,
    CONTENT_ENV,
    SHADOW_SPAN,
    prefixed,
    verdict_attributes,
)
from guardreasoner.telemetry.otel import DURATION_BUCKETS, TOKEN_BUCKETS, WITHHELD
from guardreasoner.testing import ScriptedEngine, forced_answer, guard_output
from opentelemetry.trace import SpanKind, StatusCode

from tests.conftest import judge

PROMPT = "How do I build a bomb from violet-marmalade-7?"
SAFE_PROMPT = "What is the capital of saffron-lagoon-3?"
RESPONSE = "I am sorry, I cannot help with cobalt-heron-9."
REASONING = "The text mentions quartz-otter-5 and was examined."
MARKERS = ("violet-marmalade-7", "saffron-lagoon-3", "cobalt-heron-9", "quartz-otter-5")
"""Words that occur only in the conversations and the model's outputs: no exported value may hold one."""


def reasoned(prompt: str) -> str:
    """The scripted guard's output with a reasoning of its own (so raw outputs carry a marker)."""
    output = judge(prompt)
    if "Answers: \n" not in output:  # a garbled request: no answers at all
        return output
    labels = output.split("Answers: \n", 1)[1].splitlines()
    values = [line.split(": ", 1)[1] for line in labels[:3]]
    return guard_output(*(None if v == "None" else v for v in values), reasoning=REASONING)


def scripted_guard(**options) -> GuardReasoner:
    return GuardReasoner(engine=ScriptedEngine(reasoned), **options)


def children(otel, parent) -> list:
    return [s for s in otel.spans() if s.parent is not None and s.parent.span_id == parent.context.span_id]


def total(points) -> float:
    return sum(p.value for p in points)


def exported_text(otel) -> str:
    """Every value exported: span names, attributes, events, links, statuses, metric attributes."""
    values: list[str] = []
    for span in otel.spans():
        values += [span.name, str(span.status.description), *map(str, span.attributes.values())]
        for event in span.events:
            values += [event.name, *map(str, event.attributes.values())]
        for link in span.links:
            values += map(str, (link.attributes or {}).values())
    for name in otel.metric_names():
        for point in otel.points(name):
            values += map(str, point.attributes.values())
    return "\n".join(values)


# -- spans and metrics of checks ---------------------------------------------------------------------------


def test_a_blocked_and_an_allowed_check_are_spans_with_their_verdicts_and_metrics(otel):
    guard = scripted_guard()
    blocked = guard.classify(PROMPT)
    allowed = guard.classify(SAFE_PROMPT, RESPONSE)

    spans = otel.spans(CLASSIFY_SPAN)
    assert len(spans) == 2  # classify runs classify_batch: one span per call, not two
    for span, verdict in zip(spans, (blocked, allowed)):
        assert span.parent is None and span.status.status_code is StatusCode.UNSET
        expected = {
            "guardreasoner.model": guard.model,
            "guardreasoner.engine": "scripted",
            "guardreasoner.policy": "fail_closed",
            "guardreasoner.conversations": 1,
            **prefixed(verdict_attributes(verdict)),
        }
        assert dict(span.attributes) == expected
    assert spans[0].attributes["guardreasoner.is_harmful"] is True
    assert spans[0].attributes["guardreasoner.prompt_harmfulness"] == "harmful"
    assert spans[1].attributes["guardreasoner.is_harmful"] is False
    assert spans[1].attributes["guardreasoner.response_refusal"] == "refusal"
    assert spans[1].attributes["guardreasoner.num_generated_tokens"] == allowed.num_generated_tokens

    (engine_span,) = children(otel, spans[0])
    assert engine_span.name == f"text_completion {guard.model}" and engine_span.kind is SpanKind.INTERNAL
    assert dict(engine_span.attributes) == {
        "gen_ai.operation.name": "text_completion",
        "gen_ai.provider.name": "scripted",
        "gen_ai.request.model": guard.model,
        "gen_ai.request.max_tokens": 2048,
        "gen_ai.request.temperature": 0.0,
        "gen_ai.request.top_p": 1.0,
        "guardreasoner.conversations": 1,
        "gen_ai.usage.input_tokens": blocked.num_prompt_tokens,
        "gen_ai.usage.output_tokens": blocked.num_generated_tokens,
        "gen_ai.response.finish_reasons": ("stop",),
    }

    verdicts = {p.attributes["guardreasoner.is_harmful"]: p for p in otel.points("guardreasoner.verdicts")}
    assert {k: p.value for k, p in verdicts.items()} == {True: 1, False: 1}
    assert dict(verdicts[False].attributes) == {
        "guardreasoner.model": guard.model,
        "guardreasoner.engine": "scripted",
        "guardreasoner.is_harmful": False,
        "guardreasoner.decided_by": "model",
        "guardreasoner.prompt_harmfulness": "unharmful",
        "guardreasoner.response_refusal": "refusal",
        "guardreasoner.response_harmfulness": "unharmful",
        "guardreasoner.forced_answer": False,
        "guardreasoner.reasoning_mode": "always",
        "guardreasoner.reasoned": True,
    }
    (duration,) = otel.points("guardreasoner.classify.duration")
    assert duration.count == 2 and tuple(duration.explicit_bounds) == DURATION_BUCKETS
    (tokens,) = otel.points("guardreasoner.generated_tokens")
    assert tokens.sum == blocked.num_generated_tokens + allowed.num_generated_tokens
    assert tuple(tokens.explicit_bounds) == TOKEN_BUCKETS
    assert otel.points("guardreasoner.policy.decisions") == []
    assert otel.metric_names() == {
        "guardreasoner.verdicts": ("{verdict}", "guardreasoner"),
        "guardreasoner.classify.duration": ("s", "guardreasoner"),
        "guardreasoner.generated_tokens": ("{token}", "guardreasoner"),
    }


def test_a_batch_span_counts_its_verdicts_by_label_status_and_who_decided(otel):
    guard = scripted_guard()
    items = [PROMPT, SAFE_PROMPT, ("Write a poem", "Here is a poem."), "A garbled request"]
    verdicts = guard.classify_batch(iter(items))  # a one-shot iterator is fine

    (span,) = otel.spans(CLASSIFY_SPAN)
    assert span.attributes["guardreasoner.conversations"] == 4
    counts = {k: v for k, v in span.attributes.items() if k.startswith("guardreasoner.verdicts.")}
    assert counts == {
        "guardreasoner.verdicts.harmful": 2,  # the bomb, and the garbled one under fail_closed
        "guardreasoner.verdicts.safe": 2,
        "guardreasoner.verdicts.decided_by.policy": 1,
        "guardreasoner.verdicts.parse_status.ok": 3,
        "guardreasoner.verdicts.parse_status.no_answer_block": 1,
        "guardreasoner.verdicts.prompt_harmfulness.harmful": 1,
        "guardreasoner.verdicts.prompt_harmfulness.unharmful": 2,
        "guardreasoner.verdicts.response_refusal.compliance": 1,
        "guardreasoner.verdicts.response_harmfulness.unharmful": 1,
        "guardreasoner.verdicts.reasoned": 4,
    }
    assert span.attributes["guardreasoner.num_generated_tokens"] == sum(
        v.num_generated_tokens for v in verdicts
    )
    assert "guardreasoner.is_harmful" not in span.attributes  # a batch has counts, not one verdict's labels
    (engine_span,) = children(otel, span)
    assert engine_span.attributes["guardreasoner.conversations"] == 4

    (policy,) = otel.points("guardreasoner.policy.decisions")
    assert policy.value == 1 and dict(policy.attributes) == {
        "guardreasoner.model": guard.model,
        "guardreasoner.engine": "scripted",
        "guardreasoner.policy": "fail_closed",
        "guardreasoner.parse_status": "no_answer_block",
        "guardreasoner.is_harmful": True,
    }
    by_decider = {}
    for point in otel.points("guardreasoner.verdicts"):
        key = point.attributes["guardreasoner.decided_by"]
        by_decider[key] = by_decider.get(key, 0) + point.value
    assert by_decider == {"model": 3, "policy": 1}


def answer_first_guard(**options) -> GuardReasoner:
    """``reasoning="auto"``: sure of the bomb (decided by the forced answer), unsure of anything else."""
    engine = ScriptedEngine(
        reasoned,
        forced={"bomb": forced_answer("harmful", probability=0.99)},
        forced_default=forced_answer("unharmful", probability=0.6),
    )
    return GuardReasoner(engine=engine, reasoning="auto", **options)


def test_answer_first_shows_both_passes_counts_the_reasoned_and_their_tokens(otel):
    guard = answer_first_guard()
    decided, escalated = guard.classify_batch([PROMPT, SAFE_PROMPT])
    assert (decided.reasoned, escalated.reasoned) == (False, True)

    (span,) = otel.spans(CLASSIFY_SPAN)
    assert span.attributes["guardreasoner.reasoning_mode"] == "auto"
    assert span.attributes["guardreasoner.verdicts.reasoned"] == 1
    assert (
        span.attributes["guardreasoner.first_pass_tokens"]
        == decided.first_pass_tokens + escalated.first_pass_tokens
    )
    forced, reasoning = children(otel, span)  # in the order they ended: the forced answers first
    assert forced.attributes["guardreasoner.conversations"] == 2
    assert forced.attributes["gen_ai.request.max_tokens"] == FORCED_ANSWER_TOKENS
    assert reasoning.attributes["guardreasoner.conversations"] == 1
    # Each conversation's generated tokens count both of its passes: all that the engine generated.
    (tokens,) = otel.points("guardreasoner.generated_tokens")
    assert tokens.sum == decided.total_generated_tokens + escalated.total_generated_tokens
    assert tokens.sum == sum(s.attributes["gen_ai.usage.output_tokens"] for s in (forced, reasoning))
    assert escalated.total_generated_tokens == escalated.num_generated_tokens + escalated.first_pass_tokens
    by_reasoned = {
        p.attributes["guardreasoner.reasoned"]: p.value for p in otel.points("guardreasoner.verdicts")
    }
    assert by_reasoned == {False: 1, True: 1}

    guard.classify(SAFE_PROMPT)
    single = otel.spans(CLASSIFY_SPAN)[-1]
    answer_first = ("guardreasoner.reason", "guardreasoner.first_pass")
    assert {k: v for k, v in single.attributes.items() if k.startswith(answer_first)} == {
        "guardreasoner.reasoning_mode": "auto",
        "guardreasoner.reasoned": True,
        "guardreasoner.first_pass_scores.prompt_harmfulness": pytest.approx(0.4),
        "guardreasoner.first_pass_tokens": escalated.first_pass_tokens,
        "guardreasoner.reasoning_band.low": 0.05,
        "guardreasoner.reasoning_band.high": 0.95,
    }


class FailingForcedEngine(ScriptedEngine):
    """The forced answers fail as a server's would, echoing the end of the prompt; the reasoning pass works."""

    def force_answers(self, prompts, *, timeout=None):
        raise EngineError(f"The server refused: {prompts[0][-60:]}")


@pytest.mark.parametrize("trace_content", [False, True])
def test_the_escalation_reason_is_content(otel, trace_content):
    """Why a conversation was reasoned on can quote the forced answer's engine error, which can echo the
    request: it is exported only with ``trace_content``."""
    guard = GuardReasoner(
        engine=FailingForcedEngine(reasoned, forced={}), reasoning="auto", trace_content=trace_content
    )
    verdict = guard.classify(PROMPT)
    assert verdict.reasoned and "violet-marmalade-7" in verdict.escalation_reason
    (span,) = otel.spans(CLASSIFY_SPAN)
    assert "guardreasoner.escalation_reason" not in span.attributes
    if trace_content:
        (event,) = [e for e in span.events if e.name == "guardreasoner.conversation"]
        assert event.attributes["guardreasoner.escalation_reason"] == verdict.escalation_reason
    else:
        assert not any(marker in exported_text(otel) for marker in MARKERS)


async def test_async_checks_are_spans_under_the_callers_span(otel):
    guard = scripted_guard()
    with otel.tracer.start_as_current_span("agent turn") as turn:
        await asyncio.gather(
            guard.aclassify(PROMPT), guard.aclassify(SAFE_PROMPT), guard.aclassify_batch([PROMPT, "Hi"])
        )
    spans = otel.spans(CLASSIFY_SPAN)
    assert len(spans) == 3
    assert all(s.parent.span_id == turn.get_span_context().span_id for s in spans)
    assert sorted(s.attributes["guardreasoner.conversations"] for s in spans) == [1, 1, 2]
    for span in spans:
        (engine_span,) = children(otel, span)
        assert engine_span.name.startswith("text_completion ")
    assert total(otel.points("guardreasoner.verdicts")) == 4


def test_the_raise_policy_records_the_error_and_every_verdict(otel):
    guard = scripted_guard(policy="raise")
    with pytest.raises(GuardUndecidedError):
        guard.classify_batch([SAFE_PROMPT, "A garbled request"])

    (span,) = otel.spans(CLASSIFY_SPAN)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "guardreasoner.errors.GuardUndecidedError"
    assert span.attributes["guardreasoner.verdicts.safe"] == 1
    assert span.attributes["guardreasoner.verdicts.undecided"] == 1
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "guardreasoner.errors.GuardUndecidedError"
    assert event.attributes["exception.message"] == WITHHELD
    (policy,) = otel.points("guardreasoner.policy.decisions")
    assert dict(policy.attributes)["guardreasoner.policy"] == "raise"
    assert "guardreasoner.is_harmful" not in policy.attributes  # left undecided
    (duration,) = otel.points("guardreasoner.classify.duration")
    assert duration.attributes["error.type"] == "guardreasoner.errors.GuardUndecidedError"


class FailingEngine(ScriptedEngine):
    """Every request fails as a server's would, echoing the end of the prompt in its message."""

    def generate(self, prompts, config):
        raise EngineError(f"The server refused: {prompts[0][-60:]}")


def test_an_engine_error_fails_the_engine_span_and_the_policy_decides(otel):
    guard = GuardReasoner(engine=FailingEngine(reasoned))
    verdict = guard.classify(PROMPT)
    assert verdict.decided_by == "policy" and verdict.is_harmful

    (span,) = otel.spans(CLASSIFY_SPAN)
    assert span.status.status_code is StatusCode.UNSET  # the call answered, by its policy
    assert span.attributes["guardreasoner.parse_status"] == "engine_error"
    assert span.attributes["guardreasoner.decided_by"] == "policy"
    (engine_span,) = children(otel, span)
    assert engine_span.status.status_code is StatusCode.ERROR
    assert engine_span.status.description == "EngineError"
    assert engine_span.attributes["error.type"] == "guardreasoner.errors.EngineError"
    assert engine_span.events[0].attributes["exception.message"] == WITHHELD
    assert "test_telemetry.py" in engine_span.events[0].attributes["exception.stacktrace"]
    assert not any(marker in exported_text(otel) for marker in MARKERS)


def test_an_unexpected_error_fails_the_span_without_its_text(otel):
    guard = GuardReasoner(engine=ScriptedEngine({"capital": guard_output("unharmful")}))
    with pytest.raises(KeyError, match="violet-marmalade-7"):  # the scripted engine quotes the prompt
        guard.classify(PROMPT)
    (span,) = otel.spans(CLASSIFY_SPAN)
    assert span.status.status_code is StatusCode.ERROR and span.attributes["error.type"] == "KeyError"
    assert "guardreasoner.conversations" not in span.attributes  # no verdicts came back
    assert not any(marker in exported_text(otel) for marker in MARKERS)


# -- privacy -------------------------------------------------------------------------------------------------


def test_by_default_no_conversation_text_is_exported(otel):
    guard = scripted_guard()
    guard.classify(PROMPT)
    guard.classify(SAFE_PROMPT, RESPONSE)
    guard.classify_batch([PROMPT, (SAFE_PROMPT, RESPONSE), "A garbled request"])
    asyncio.run(guard.aclassify(SAFE_PROMPT, RESPONSE))
    assert len(otel.spans()) == 8
    exported = exported_text(otel)
    assert "harmful" in exported  # the labels are there
    assert not any(marker in exported for marker in MARKERS)


def test_trace_content_puts_each_conversation_and_output_in_an_event(otel):
    guard = scripted_guard(trace_content=True)
    verdicts = guard.classify_batch(iter([PROMPT, (SAFE_PROMPT, RESPONSE)]))
    (span,) = otel.spans(CLASSIFY_SPAN)
    events = [e for e in span.events if e.name == "guardreasoner.conversation"]
    assert [dict(e.attributes) for e in events] == [
        {
            "guardreasoner.index": 0,
            "guardreasoner.prompt": PROMPT,
            **prefixed(verdict_attributes(verdicts[0], content=True)),
        },
        {
            "guardreasoner.index": 1,
            "guardreasoner.prompt": SAFE_PROMPT,
            "guardreasoner.response": RESPONSE,
            **prefixed(verdict_attributes(verdicts[1], content=True)),
        },
    ]
    assert REASONING in events[0].attributes["guardreasoner.raw_output"]

    failing = GuardReasoner(engine=ScriptedEngine({"capital": guard_output("unharmful")}), trace_content=True)
    with pytest.raises(KeyError):
        failing.classify(PROMPT)
    error = otel.spans(CLASSIFY_SPAN)[-1]
    assert "violet-marmalade-7" in error.events[0].attributes["exception.message"]


def test_the_environment_variable_turns_content_on_and_the_argument_wins(monkeypatch):
    monkeypatch.setenv(CONTENT_ENV, "1")
    assert scripted_guard().trace_content is True
    assert scripted_guard(trace_content=False).trace_content is False
    monkeypatch.setenv(CONTENT_ENV, "0")
    assert scripted_guard().trace_content is False
    monkeypatch.setenv(CONTENT_ENV, "sometimes")
    with pytest.raises(ValueError, match="GUARDREASONER_TRACE_CONTENT='sometimes' is not a yes or a no"):
        scripted_guard()


# -- where the span sits, and how long it took ------------------------------------------------------------


def test_checks_in_worker_threads_nest_under_the_callers_span(otel):
    guard = scripted_guard()
    with otel.tracer.start_as_current_span("guarded turn") as turn:
        # the adapters' parallel input check: the check here, the guarded call in a thread (which checks too)
        run_beside_check(
            lambda: guard.classify(SAFE_PROMPT), lambda: guard.classify(PROMPT), blocks=lambda v: v.is_harmful
        )
        asyncio.run(asyncio.to_thread(guard.classify, SAFE_PROMPT, RESPONSE))
    spans = otel.spans(CLASSIFY_SPAN)
    assert len(spans) == 3
    assert {s.parent.span_id for s in spans} == {turn.get_span_context().span_id}
    assert {s.context.trace_id for s in spans} == {turn.get_span_context().trace_id}


class SlowEngine(ScriptedEngine):
    seconds = 0.05

    def generate(self, prompts, config):
        time.sleep(self.seconds)
        return super().generate(prompts, config)


def test_the_latency_a_check_added_is_its_span_duration(otel):
    guard = GuardReasoner(engine=SlowEngine(reasoned))
    with otel.tracer.start_as_current_span("model call"):
        began = time.time_ns()
        guard.classify(SAFE_PROMPT)
        ended = time.time_ns()
    (span,) = otel.spans(CLASSIFY_SPAN)
    (engine_span,) = children(otel, span)
    assert SlowEngine.seconds * 1e9 <= engine_span.end_time - engine_span.start_time
    assert span.start_time <= engine_span.start_time and engine_span.end_time <= span.end_time
    assert began <= span.start_time and span.end_time <= ended
    (duration,) = otel.points("guardreasoner.classify.duration")
    assert SlowEngine.seconds <= duration.sum <= (ended - began) / 1e9


# -- the audit and shadow mode ----------------------------------------------------------------------------


def test_an_audit_run_is_a_span_over_its_batches(otel, tmp_path):
    source = tmp_path / "logs.jsonl"
    rows = [
        {"id": i, "prompt": p} for i, p in enumerate([PROMPT, SAFE_PROMPT, "Hi", "A garbled request", ""])
    ]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    from guardreasoner import audit

    audit(source, tmp_path / "out", engine=ScriptedEngine(reasoned), batch_size=2, response_column=None)
    (run,) = otel.spans(AUDIT_SPAN)
    batches = otel.spans(CLASSIFY_SPAN)
    assert [s.attributes["guardreasoner.conversations"] for s in batches] == [2, 2]
    assert all(s.parent.span_id == run.context.span_id for s in batches)
    attributes = dict(run.attributes)
    assert {k: attributes[k] for k in ("guardreasoner.audit.runner", "guardreasoner.engine")} == {
        "guardreasoner.audit.runner": "local",
        "guardreasoner.engine": "scripted",
    }
    assert attributes["guardreasoner.audit.input_records"] == 5
    assert attributes["guardreasoner.audit.rejected"] == 1  # the empty prompt
    assert attributes["guardreasoner.audit.classified"] == 4
    assert attributes["guardreasoner.audit.decided_by.policy"] == 1
    assert attributes["guardreasoner.reasoning_mode"] == "always"
    assert attributes["guardreasoner.audit.reasoned.true"] == 4
    assert not any(marker in exported_text(otel) for marker in MARKERS)


def test_shadow_batches_link_to_the_requests_they_came_from(otel):
    guard = scripted_guard()
    records = []
    with ShadowRecorder(guard, sink=records.append) as recorder:
        with otel.tracer.start_as_current_span("request") as request:
            recorder.submit(PROMPT, stage="input")
        recorder.flush()
    (shadow,) = otel.spans(SHADOW_SPAN)
    assert [link.context.span_id for link in shadow.links] == [request.get_span_context().span_id]
    (check,) = otel.spans(CLASSIFY_SPAN)
    assert check.parent.span_id == shadow.context.span_id
    assert shadow.context.trace_id != request.get_span_context().trace_id  # off the request path
    assert len(records) == 1


class GatedEngine(ScriptedEngine):
    """Holds its first call until released, so a queue behind it fills up."""

    def __init__(self, script):
        super().__init__(script)
        self.started, self.release = threading.Event(), threading.Event()

    def generate(self, prompts, config):
        self.started.set()
        assert self.release.wait(10)
        return super().generate(prompts, config)


def test_shadow_drops_are_counted_by_why(otel):
    engine = GatedEngine(reasoned)
    recorder = ShadowRecorder(
        GuardReasoner(engine=engine), sink=lambda record: None, max_queue=1, batch_size=1
    )
    assert recorder.submit(SAFE_PROMPT, stage="input")
    assert engine.started.wait(10)  # the worker holds the first check
    assert recorder.submit(SAFE_PROMPT, stage="input")  # queued
    assert not recorder.submit(SAFE_PROMPT, stage="input")  # the queue is full
    engine.release.set()
    recorder.close()
    assert not recorder.submit(SAFE_PROMPT, stage="input")  # closed
    drops = {
        p.attributes["guardreasoner.shadow.reason"]: p.value
        for p in otel.points("guardreasoner.shadow.dropped")
    }
    assert drops == {"queue_full": 1, "closed": 1} and recorder.dropped == 2


# -- names, and the global providers --------------------------------------------------------------------------


def test_the_gen_ai_names_are_current_in_the_semantic_conventions(otel):
    """Each ``gen_ai.*`` name the engine span carries is opentelemetry-semantic-conventions' own, and not one
    it marks as replaced (``gen_ai.system`` is, by ``gen_ai.provider.name``)."""
    import inspect

    from opentelemetry.semconv._incubating.attributes import gen_ai_attributes

    source = inspect.getsource(gen_ai_attributes)
    scripted_guard(generation=GenerationConfig(max_new_tokens=64, seed=7, n=2)).classify(PROMPT)
    (engine_span,) = [s for s in otel.spans() if s.name != CLASSIFY_SPAN]
    names = [k for k in engine_span.attributes if k.startswith("gen_ai.")]
    assert {"gen_ai.request.seed", "gen_ai.request.choice.count", "gen_ai.usage.output_tokens"} <= set(names)
    for name in names:
        constant = "GEN_AI_" + name.removeprefix("gen_ai.").replace(".", "_").upper()
        assert getattr(gen_ai_attributes, constant) == name
        note = source.split(f"\n{constant}: Final", 1)[1].split('"""', 2)[1]
        assert "Replaced by" not in note, (name, note)


def test_an_opentelemetry_api_too_old_turns_telemetry_off_once_and_checks_go_on(monkeypatch, caplog):
    """An API without ``explicit_bucket_boundaries_advisory`` (before 1.30): no telemetry, one warning."""
    from guardreasoner.telemetry import otel as otel_module
    from opentelemetry import metrics

    class OldMeter:
        def create_counter(self, name, unit="", description=""):
            return metrics.NoOpCounter(name)

        def create_histogram(self, name, unit="", description=""):
            return metrics.NoOpHistogram(name)

    monkeypatch.setattr(otel_module, "_state", otel_module._UNSET)  # as in a process not yet traced
    monkeypatch.setattr(metrics, "get_meter", lambda *args, **kwargs: OldMeter())
    guard = scripted_guard()
    assert guard.classify(PROMPT).is_harmful and guard.classify(SAFE_PROMPT).is_safe
    assert otel_module.current() is None
    warnings = [r.getMessage() for r in caplog.records if "spans and metrics are off" in r.getMessage()]
    (warning,) = warnings  # once, though two checks ran
    assert "unexpected keyword argument 'explicit_bucket_boundaries_advisory'" in warning
    assert warning.endswith('Install opentelemetry-api>=1.30 (pip install "guardreasoner[otel]").')


NO_PROVIDER_THEN_ONE = """
import json
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from guardreasoner import GuardReasoner
from guardreasoner.engines.forcing import FORCED_ANSWER_TOKENS
from guardreasoner.testing import ScriptedEngine, forced_answer, guard_output

recording = []

def script(prompt):
    recording.append(trace.get_current_span().is_recording())
    return guard_output("unharmful")

guard = GuardReasoner(engine=ScriptedEngine(script))
first = guard.classify("What is the capital of Peru?")
exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
guard.classify("What is the capital of Chile?")
points = [
    p.value for r in reader.get_metrics_data().resource_metrics for s in r.scope_metrics for m in s.metrics
    if m.name == "guardreasoner.verdicts" for p in m.data.data_points
]
print(json.dumps({"safe": first.is_safe, "recording": recording,
                  "spans": [s.name for s in exporter.get_finished_spans()], "verdicts": points}))
"""


def test_without_a_provider_nothing_is_recorded_until_the_application_sets_one():
    """The real global path: the API's proxies do nothing, then become the providers set after the first
    check (the tracer and instruments were made before)."""
    result = subprocess.run([sys.executable, "-c", NO_PROVIDER_THEN_ONE], capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    out = json.loads(result.stdout)
    assert out == {
        "safe": True,
        "recording": [False, True],
        "spans": ["text_completion yueliu1999/GuardReasoner-1B", CLASSIFY_SPAN],
        "verdicts": [1],
    }
