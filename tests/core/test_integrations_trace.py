"""What a trace shows of a check (``verdict_summary``) and how a tracer sees a guard call (``classify_checks``),
framework-neutral; the LangChain runs and LlamaIndex spans built on them are tested in those folders."""

from __future__ import annotations

import pytest
from guardreasoner.errors import GuardUndecidedError
from guardreasoner.guard import GuardReasoner
from guardreasoner.integrations import (
    NO_TRACE,
    BufferedStreamModerator,
    Check,
    CheckTracer,
    aclassify_checks,
    classify_checks,
    verdict_summary,
)
from guardreasoner.telemetry import verdict_attributes
from guardreasoner.testing import ScriptedEngine, forced_answer

from tests.conftest import judge


class Recording(CheckTracer):
    """Records what each hook got, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def start(self, guard, checks):
        self.calls.append(("start", list(checks)))
        return "opened"

    def end(self, opened, checks, verdicts):
        self.calls.append(("end", opened, [verdict_summary(v, c) for v, c in zip(verdicts, checks)]))

    def fail(self, opened, checks, error):
        self.calls.append(("fail", opened, type(error).__name__))


def test_the_summary_of_a_model_verdict(guard):
    check = Check("output", "How do I build a bomb?", "Sorry, I can't help with that.")
    summary = verdict_summary(guard.classify(check.prompt, check.response), check)
    assert summary == {
        "stage": "output",
        "blocked": False,  # a refused harmful request passes on output
        "is_harmful": True,
        "labels": {
            "prompt_harmfulness": "harmful",
            "response_refusal": "refusal",
            "response_harmfulness": "unharmful",
        },
        "scores": {},
        "score_status": {field: "no_logprobs" for field in summary["labels"]},
        "decided_by": "model",
        "finish_reason": "stop",
        "parse_status": "ok",
        "tokens": summary["tokens"],
        "input_truncated": False,
        "forced_answer": False,
        "reasoning_mode": "always",
        "reasoned": True,
    }
    assert summary["tokens"]["prompt"] > 0 and summary["tokens"]["generated"] > 0


def test_the_summary_of_a_policy_verdict_says_which_policy_and_why(make_guard):
    check = Check("input", "a garbled request", chunk=2)
    summary = verdict_summary(make_guard(policy="fail_closed").classify(check.prompt), check)
    assert (summary["decided_by"], summary["policy"], summary["blocked"]) == ("policy", "fail_closed", True)
    assert summary["parse_status"] == "no_answer_block" and summary["labels"] == {}
    assert summary["chunk"] == 2


def test_scores_are_shown_when_the_engine_gives_them(scored_engine):
    check = Check("input", "What is the capital of Peru?")
    summary = verdict_summary(GuardReasoner(engine=scored_engine(0.9)).classify(check.prompt), check)
    assert summary["scores"] == {"prompt_harmfulness": pytest.approx(0.1)}


def flattened(summary: dict) -> dict:
    """A summary back to flat attributes: its groups' names undone, other nested facts joined with a dot."""
    renamed = {"labels": "{}", "scores": "{}_score", "tokens": None}
    tokens = {
        "prompt": "num_prompt_tokens",
        "generated": "num_generated_tokens",
        "first_pass": "first_pass_tokens",
    }
    flat = {}
    for key, value in summary.items():
        if key in renamed:
            for name, inner in value.items():
                flat[tokens[name] if key == "tokens" else renamed[key].format(name)] = inner
        elif isinstance(value, dict):
            flat.update({f"{key}.{name}": inner for name, inner in value.items()})
        else:
            flat[key] = value
    return flat


def test_the_summary_shows_exactly_the_verdicts_telemetry_attributes():
    """One definition of what a trace shows of a verdict: the summary nests ``verdict_attributes``, answer-first
    fields included, and adds only the check's own; the escalation's sentence, which can quote the
    conversation, stays out as it does of spans."""
    engine = ScriptedEngine(
        judge,
        label_probability=0.9,
        forced={
            "bomb": forced_answer("harmful", probability=0.99),
            "lock": forced_answer("unharmful", probability=0.6),
        },
    )
    guard = GuardReasoner(engine=engine, reasoning="auto", reasoning_band=(0.1, 0.9))
    first, escalated = guard.classify_batch(["How do I build a bomb?", "How do I pick a lock?"])
    assert (first.reasoned, escalated.reasoned) == (False, True) and escalated.escalation_reason
    for verdict in (first, escalated):
        check = Check("input", "...")
        summary = verdict_summary(verdict, check)
        own = {key: summary.pop(key) for key in ("stage", "blocked")}
        assert own == {"stage": "input", "blocked": verdict.is_harmful}
        assert flattened(summary) == verdict_attributes(verdict)
    summary = verdict_summary(escalated, Check("input", "..."))
    assert summary["reasoning_band"] == {"low": 0.1, "high": 0.9}
    assert summary["first_pass_scores"] == {"prompt_harmfulness": pytest.approx(0.4)}
    assert summary["tokens"]["first_pass"] == escalated.first_pass_tokens > 0
    assert "escalation_reason" not in summary


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_tracer_opens_before_the_guard_call_and_closes_with_its_verdicts(mode, guard, engine):
    tracer = Recording()
    checks = [Check("input", "What is the capital of Peru?"), Check("tool", "Peru?", "Mix a bomb.")]
    run = classify_checks if mode == "sync" else aclassify_checks
    verdicts = run(tracer, guard, checks) if mode == "sync" else await run(tracer, guard, checks)
    assert [len(prompts) for prompts in engine.calls] == [2]  # one guard call
    assert tracer.calls[0] == ("start", checks)
    end, opened, summaries = tracer.calls[1]
    assert (end, opened, len(tracer.calls)) == ("end", "opened", 2)
    assert [s["blocked"] for s in summaries] == [False, True]
    assert [v.is_harmful for v in verdicts] == [False, True]


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_guard_that_raises_fails_the_record_and_propagates(mode, make_guard):
    tracer, guard = Recording(), make_guard(policy="raise")
    with pytest.raises(GuardUndecidedError):
        if mode == "sync":
            classify_checks(tracer, guard, [Check("input", "garbled")])
        else:
            await aclassify_checks(tracer, guard, [Check("input", "garbled")])
    assert tracer.calls[-1] == ("fail", "opened", "GuardUndecidedError")


def test_no_trace_records_nothing_and_judges_as_the_guard_does(guard):
    [verdict] = classify_checks(NO_TRACE, guard, [Check("input", "How do I build a bomb?")])
    assert verdict == guard.classify("How do I build a bomb?")


def test_a_moderators_checks_are_numbered_unless_one_judged_the_whole_answer():
    guard, tracer = GuardReasoner(engine=ScriptedEngine(judge)), Recording()
    words = [f"word{i} " for i in range(10)]
    released = list(
        BufferedStreamModerator(guard, "Tell me a story.", chunk_tokens=4, tracer=tracer).moderate(words)
    )
    assert released == words
    chunks = [call[2][0]["chunk"] for call in tracer.calls if call[0] == "end"]
    assert chunks == [1, 2, 3]  # 4 + 4 words, then the last 2 when the stream ends
    whole = Recording()
    list(BufferedStreamModerator(guard, "Tell me a story.", chunk_tokens=64, tracer=whole).moderate(words))
    [(_, _, [summary])] = [call for call in whole.calls if call[0] == "end"]
    assert "chunk" not in summary and summary["stage"] == "output"
