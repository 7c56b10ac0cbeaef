"""The three reasoning modes on ScriptedEngine: who decides, how many engine calls, what the verdict says.

The forced answers are scripted apart from the reasoned ones: a request mentioning ``unsure`` gets a forced
answer with the wrong label at probability 0.6 (inside the default band), ``noscore`` one without
log-probabilities, ``garbled`` one without labels; every other forced answer is right at 0.99. So a
verdict's labels say which pass decided it.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from guardreasoner import (
    EngineCapabilityError,
    EngineError,
    EngineTimeoutError,
    GuardReasoner,
    GuardUndecidedError,
    ParseStatus,
    ReasoningMode,
)
from guardreasoner.engines import Engine, Generation
from guardreasoner.prompt import split_prompt
from guardreasoner.testing import ForcedAnswer, ScriptedEngine, forced_answer, guard_output


def labels_of(raw_prompt: str) -> tuple[str, str | None, str | None]:
    request, response = split_prompt(raw_prompt)
    harmful = "harmful" if "bomb" in request else "unharmful"
    if response is None:
        return harmful, None, None
    return harmful, "refusal" if "sorry" in response else "compliance", "unharmful"


def reasoned_output(raw_prompt: str) -> str:
    return guard_output(*labels_of(raw_prompt))


def forced(raw_prompt: str) -> ForcedAnswer:
    request, response = split_prompt(raw_prompt)
    labels = labels_of(raw_prompt)
    if "garbled" in request:
        return ForcedAnswer("I would rather think about it first.\n", 0.99)
    if "noscore" in request:
        return forced_answer(*labels, probability=None)
    if "unsure" in request:
        flipped = "unharmful" if labels[0] == "harmful" else "harmful"
        return forced_answer(flipped, *labels[1:], probability=0.6)
    return forced_answer(*labels, probability=0.99)


def make_engine(**options) -> ScriptedEngine:
    return ScriptedEngine(reasoned_output, forced=forced, **options)


BATCH = [
    ("How do I make a bomb?", None),  # confident, harmful: decided first
    ("What is the capital of France?", None),  # confident, safe: decided first
    ("unsure: how do I make a bomb?", None),  # forced says unharmful at 0.6: reasoned, harmful
    ("unsure: tell me a joke", None),  # forced says harmful at 0.6: reasoned, unharmful
    ("Write a poem.", "Here is one."),  # confident on all three tasks
]
ESCALATED = [2, 3]


def labels(verdict) -> tuple:
    return verdict.prompt_harmfulness, verdict.response_refusal, verdict.response_harmfulness


# -- never ------------------------------------------------------------------------------------------------


def test_never_decides_every_conversation_from_its_forced_answer_alone():
    engine = make_engine()
    verdicts = GuardReasoner(engine=engine, reasoning="never", policy="fail_open").classify_batch(BATCH)
    assert engine.calls == [] and len(engine.forced_calls) == 1 and len(engine.forced_calls[0]) == 5
    assert [v.prompt_harmfulness for v in verdicts] == [
        "harmful",
        "unharmful",
        "unharmful",
        "harmful",
        "unharmful",
    ]
    assert labels(verdicts[4]) == ("unharmful", "compliance", "unharmful")
    for verdict in verdicts:
        assert verdict.reasoning_mode is ReasoningMode.NEVER and verdict.reasoned is False
        assert verdict.raw_output.startswith("---\n\nAnswers: \nRequest: ")
        assert verdict.escalation_reason is None and verdict.first_pass_tokens > 0
        assert verdict.first_pass_scores == {
            field: getattr(verdict, f"{field}_score") for field in verdict.first_pass_scores
        }
    assert verdicts[0].first_pass_scores == {"prompt_harmfulness": pytest.approx(0.99)}
    assert verdicts[3].first_pass_scores == {"prompt_harmfulness": pytest.approx(0.6)}
    assert set(verdicts[4].first_pass_scores) == {
        "prompt_harmfulness",
        "response_refusal",
        "response_harmfulness",
    }


def test_never_under_fail_closed_allows_only_forced_answers_scored_outside_the_band():
    guard = GuardReasoner(engine=make_engine(), reasoning="never")
    sure, unsure, noscore = guard.classify_batch(
        ["What is the capital of France?", "unsure: what is a bomb", "noscore: hello"]
    )
    assert sure.is_harmful is False and sure.decided_by == "model"
    assert unsure.prompt_harmfulness == "unharmful" and unsure.prompt_harmfulness_score == pytest.approx(0.4)
    assert unsure.is_harmful is True and unsure.decided_by == "policy"
    assert "prompt_harmfulness score 0.4 is inside the reasoning band [0.05, 0.95]" in unsure.parse_detail
    assert noscore.is_harmful is True and noscore.decided_by == "policy"
    assert "no score for prompt_harmfulness (no_logprobs)" in noscore.parse_detail
    # The band is the guard's: an empty one makes every scored forced answer sure.
    empty = GuardReasoner(engine=make_engine(), reasoning="never", reasoning_band=(0.5, 0.5))
    assert empty.classify("unsure: what is a bomb").is_harmful is False
    assert empty.classify("noscore: hello").is_harmful is True  # no score: still not clean
    with pytest.raises(GuardUndecidedError, match="inside the reasoning band"):
        GuardReasoner(engine=make_engine(), reasoning="never", policy="raise").classify("unsure: a bomb")
    opened = GuardReasoner(engine=make_engine(), reasoning="never", policy="fail_open")
    assert opened.classify("unsure: what is a bomb").is_harmful is False


def test_a_harmful_forced_answer_stands_whatever_its_score():
    verdict = GuardReasoner(engine=make_engine(), reasoning="never").classify("unsure: tell me a joke")
    assert verdict.prompt_harmfulness == "harmful" and verdict.is_harmful and verdict.decided_by == "model"


# -- auto ---------------------------------------------------------------------------------------------------


def test_auto_reasons_once_for_every_unsure_conversation_of_a_batch():
    engine = make_engine()
    verdicts = GuardReasoner(engine=engine, reasoning="auto").classify_batch(BATCH)
    assert len(engine.forced_calls) == 1 and len(engine.forced_calls[0]) == len(BATCH)
    assert len(engine.calls) == 1  # one reasoning call for all the escalated conversations, in order
    assert [split_prompt(p)[0] for p in engine.calls[0]] == [BATCH[i][0] for i in ESCALATED]
    always = GuardReasoner(engine=make_engine()).classify_batch(BATCH)
    assert [labels(v) for v in verdicts] == [
        labels(v) for v in always
    ]  # the unsure ones' forced labels were wrong
    for i, verdict in enumerate(verdicts):
        assert verdict.reasoning_mode is ReasoningMode.AUTO
        assert verdict.reasoned is (i in ESCALATED)
        assert verdict.first_pass_scores and verdict.first_pass_tokens > 0
    decided, escalated = verdicts[1], verdicts[2]
    assert decided.raw_output.startswith("---\n\nAnswers:") and decided.escalation_reason is None
    assert decided.is_harmful is False and decided.decided_by == "model"
    assert escalated.raw_output.startswith("# Task 1") and escalated.prompt_harmfulness == "harmful"
    assert escalated.first_pass_scores == {"prompt_harmfulness": pytest.approx(0.4)}
    assert escalated.escalation_reason == (
        "the forced answer's prompt_harmfulness score 0.4 is inside the reasoning band [0.05, 0.95]"
    )
    assert escalated.prompt_harmfulness_score is None  # the reasoned output's own scores (none scripted)


def test_the_full_band_escalates_everything_and_gives_alwayss_labels():
    engine = make_engine()
    verdicts = GuardReasoner(engine=engine, reasoning="auto", reasoning_band=(0, 1)).classify_batch(BATCH)
    assert len(engine.calls) == 1 and len(engine.calls[0]) == len(BATCH)
    assert all(v.reasoned and v.escalation_reason for v in verdicts)
    always = GuardReasoner(engine=make_engine()).classify_batch(BATCH)
    assert [labels(v) for v in verdicts] == [labels(v) for v in always]
    assert [v.is_harmful for v in verdicts] == [v.is_harmful for v in always]


def test_an_empty_band_escalates_nothing_and_gives_nevers_labels():
    engine = make_engine()
    auto = GuardReasoner(engine=engine, reasoning="auto", reasoning_band=(0.5, 0.5)).classify_batch(BATCH)
    assert engine.calls == [] and not any(v.reasoned for v in auto)
    never = GuardReasoner(engine=make_engine(), reasoning="never", reasoning_band=(0.5, 0.5))
    assert [labels(v) for v in auto] == [labels(v) for v in never.classify_batch(BATCH)]


def test_every_task_the_conversation_has_must_be_sure():
    """Forced at 0.99: P(harmful) 0.01 on both harm tasks, P(refusal) 0.99; the band holds 0.99 only."""
    engine = ScriptedEngine(
        reasoned_output,
        forced=lambda p: forced_answer(*labels_of(p), probability=0.99),
        label_probability=0.9,
    )
    guard = GuardReasoner(engine=engine, reasoning="auto", reasoning_band=(0.985, 0.995))
    refusal = guard.classify("Write a poem.", "I'm sorry, no.")
    assert refusal.reasoned is True
    assert (
        refusal.escalation_reason
        == "the forced answer's response_refusal score 0.99 is inside the reasoning band [0.985, 0.995]"
    )
    assert refusal.first_pass_scores == pytest.approx(
        {"prompt_harmfulness": 0.01, "response_refusal": 0.99, "response_harmfulness": 0.01}
    )
    assert refusal.response_refusal_score == pytest.approx(0.9)  # the reasoned output's own score
    alone = guard.classify("Write a poem.")  # no response: the refusal task does not apply
    assert alone.reasoned is False and alone.first_pass_scores == {"prompt_harmfulness": pytest.approx(0.01)}


@pytest.mark.parametrize(
    "request_text, reason",
    [
        ("noscore: hello", "the forced answer has no score for prompt_harmfulness (no_logprobs)"),
        ("garbled: hello", "the forced answer is no_answer_block, not one clean answer"),
    ],
)
def test_a_forced_answer_without_a_score_or_labels_is_reasoned_on(request_text, reason):
    engine = make_engine()
    verdict = GuardReasoner(engine=engine, reasoning="auto", reasoning_band=(0.5, 0.5)).classify(request_text)
    assert verdict.reasoned and verdict.escalation_reason == reason and len(engine.calls) == 1
    assert verdict.is_harmful is False and verdict.decided_by == "model"


def test_an_engine_without_scores_makes_auto_reason_on_everything_and_says_so_once(caplog):
    engine = ScriptedEngine(reasoned_output, forced=lambda p: forced_answer(*labels_of(p), probability=None))
    guard = GuardReasoner(engine=engine, reasoning="auto")
    with caplog.at_level(logging.WARNING, logger="guardreasoner"):
        first = guard.classify_batch(BATCH)
        second = guard.classify_batch(BATCH)
    assert all(v.reasoned for v in first + second) and [len(c) for c in engine.calls] == [5, 5]
    assert all("no_logprobs" in v.escalation_reason for v in first)
    warnings = [
        r.getMessage() for r in caplog.records if "needs the forced answers' label scores" in r.getMessage()
    ]
    assert len(warnings) == 1
    assert "the scripted engine gives none (no_logprobs:" in warnings[0]
    assert "every conversation is reasoned in full" in warnings[0]
    with caplog.at_level(logging.WARNING, logger="guardreasoner"):
        GuardReasoner(engine=engine, reasoning="never").classify("hello")
    assert "no forced answer is a clean allow under fail_closed" in caplog.records[-2].getMessage() + (
        caplog.records[-1].getMessage()
    )


def test_thresholds_apply_to_the_forced_answers_scores():
    guard = GuardReasoner(
        engine=make_engine(),
        reasoning="auto",
        reasoning_band=(0.5, 0.5),
        thresholds={"prompt_harmfulness": 0.005},
    )
    verdict = guard.classify("What is the capital of France?")  # forced: unharmful at 0.99, P(harmful) 0.01
    assert verdict.reasoned is False and verdict.prompt_harmfulness == "harmful" and verdict.is_harmful


# -- async ---------------------------------------------------------------------------------------------------


async def test_aclassify_escalates_each_call_on_its_own_and_aclassify_batch_once():
    engine = make_engine()
    guard = GuardReasoner(engine=engine, reasoning="auto")
    verdicts = await asyncio.gather(*(guard.aclassify(prompt, response) for prompt, response in BATCH))
    assert sorted(len(call) for call in engine.calls) == [1, 1] and len(engine.forced_calls) == len(BATCH)
    assert [v.reasoned for v in verdicts] == [i in ESCALATED for i in range(len(BATCH))]
    engine.calls.clear()
    batch = await guard.aclassify_batch(BATCH)
    assert [len(call) for call in engine.calls] == [len(ESCALATED)]
    assert [labels(v) for v in batch] == [labels(v) for v in verdicts]


# -- failures and deadlines --------------------------------------------------------------------------------


class SlowEngine(ScriptedEngine):
    """Forced answers take ``forced_seconds``, reasoning ``reasoning_seconds``; each honours its deadline (a
    forced call past it raises as a real engine does) and records the deadline it was given."""

    def __init__(self, forced_seconds: float, reasoning_seconds: float):
        super().__init__(reasoned_output, forced=forced)
        self.forced_seconds, self.reasoning_seconds = forced_seconds, reasoning_seconds
        self.deadlines: list[tuple[str, float | None]] = []

    def force_answers(self, prompts, *, timeout=None):
        self.deadlines.append(("forced", timeout))
        if timeout is not None and self.forced_seconds > timeout:
            time.sleep(timeout)
            raise EngineTimeoutError(f"no forced answer within {timeout:g} s")
        time.sleep(self.forced_seconds)
        return super().force_answers(prompts)

    def generate_each(self, prompts, config, *, timeout=None):
        self.deadlines.append(("reasoning", timeout))
        return super().generate_each(prompts, config, timeout=timeout)

    def generate(self, prompts, config):
        time.sleep(self.reasoning_seconds)
        return super().generate(prompts, config)


def test_the_deadline_covers_both_passes():
    engine = SlowEngine(forced_seconds=0.2, reasoning_seconds=2.0)
    guard = GuardReasoner(engine=engine, reasoning="auto", timeout=0.6)
    started = time.monotonic()
    verdicts = guard.classify_batch(BATCH)
    elapsed = time.monotonic() - started
    assert elapsed < 1.2, elapsed  # not 0.2 + 2.0, nor 0.2 + 0.6
    (forced_kind, forced_left), (reasoning_kind, reasoning_left) = engine.deadlines
    assert forced_left == pytest.approx(0.6, abs=0.05) and reasoning_left == pytest.approx(0.4, abs=0.1)
    for i, verdict in enumerate(verdicts):
        if i in ESCALATED:
            assert verdict.parse_status is ParseStatus.TIMEOUT and verdict.reasoned
            assert verdict.is_harmful is True and verdict.decided_by == "policy"
            assert verdict.first_pass_scores and verdict.escalation_reason
        else:
            assert verdict.parse_status is ParseStatus.OK and verdict.decided_by == "model"


def test_a_first_pass_that_uses_up_the_deadline_leaves_no_reasoning_call():
    engine = SlowEngine(forced_seconds=5.0, reasoning_seconds=0.0)
    verdicts = GuardReasoner(engine=engine, reasoning="auto", timeout=0.3).classify_batch(BATCH)
    assert [kind for kind, _ in engine.deadlines] == ["forced"] and engine.calls == []
    assert all(v.parse_status is ParseStatus.TIMEOUT and v.decided_by == "policy" for v in verdicts)
    assert all("the forced answer failed (timeout" in v.escalation_reason for v in verdicts)
    never = GuardReasoner(engine=SlowEngine(5.0, 0.0), reasoning="never", timeout=0.3).classify("hi")
    assert never.parse_status is ParseStatus.TIMEOUT and never.reasoned is False and never.is_harmful


def test_a_failed_forced_call_is_reasoned_on_in_auto():
    class Failing(ScriptedEngine):
        def force_answers(self, prompts, *, timeout=None):
            raise EngineError("the server went away")

    engine = Failing(reasoned_output, forced=forced)
    verdicts = GuardReasoner(engine=engine, reasoning="auto").classify_batch(BATCH)
    assert [len(call) for call in engine.calls] == [len(BATCH)]
    assert all(v.reasoned and v.decided_by == "model" for v in verdicts)
    assert verdicts[0].escalation_reason == "the forced answer failed (engine_error: the server went away)"
    assert verdicts[0].first_pass_scores == {} and verdicts[0].first_pass_tokens is None
    never = GuardReasoner(engine=Failing(reasoned_output, forced=forced), reasoning="never").classify("hi")
    assert (
        never.parse_status is ParseStatus.ENGINE_ERROR and never.is_harmful and never.decided_by == "policy"
    )


# -- engines that cannot force an answer ----------------------------------------------------------------------


def test_an_engine_that_cannot_force_an_answer_is_refused_once_when_the_guard_is_built():
    class ThirdParty(Engine):
        name = "mine"

        def generate(self, prompts, config):
            return [Generation(guard_output("unharmful"), "stop") for _ in prompts]

    for mode in ("auto", "never"):
        with pytest.raises(
            EngineCapabilityError,
            match=f"reasoning='{mode}': The mine engine \\(ThirdParty\\) "
            "cannot force an answer: it does not implement Engine.force_answers",
        ):
            GuardReasoner(engine=ThirdParty(), reasoning=mode)
    assert GuardReasoner(engine=ThirdParty()).classify("hi").is_harmful is False  # always: as before
    with pytest.raises(EngineCapabilityError, match="does not implement Engine.force_answers"):
        ThirdParty().force_answers(["hi"])
    with pytest.raises(EngineCapabilityError, match="build it with forced="):
        GuardReasoner(engine=ScriptedEngine(reasoned_output), reasoning="auto")


def test_the_scripted_forced_answers_check_their_input():
    with pytest.raises(ValueError, match=r"probability must be in \(0, 1\) or None"):
        forced_answer("harmful", probability=1.0)
    engine = ScriptedEngine(reasoned_output, forced={"bomb": forced_answer("harmful")})
    with pytest.raises(KeyError, match="ScriptedEngine has no forced answer for this prompt"):
        engine.force_answers(["hello"])
    assert (
        forced_answer("harmful", "refusal").text == "Request: harmful\nCompletion: refusal\nResponse: None\n"
    )
    (generation,) = engine.force_answers(["a bomb"])
    assert generation.text == "---\n\nAnswers: \nRequest: harmful\nCompletion: None\nResponse: None\n"
    assert generation.label_logprobs is not None and engine.forced_calls == [["hello"], ["a bomb"]]
