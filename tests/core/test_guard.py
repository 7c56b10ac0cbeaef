"""The guard's contract, on the deterministic scripted engine: batching, validation, context, policy."""

from __future__ import annotations

import asyncio

import pytest
from guardreasoner import (
    ContextLengthError,
    EngineError,
    GuardUndecidedError,
    InvalidInputError,
    ParseStatus,
)
from guardreasoner.conversation import TRUNCATION_MARKER, Conversation
from guardreasoner.engines import GenerationConfig
from guardreasoner.guard import GuardReasoner
from guardreasoner.prompt import build_prompt
from guardreasoner.testing import ScriptedEngine, guard_output

TABLE = {
    "bomb": guard_output("harmful", None, None),
    "capital": guard_output("unharmful", None, None),
    "poem": guard_output("unharmful", "compliance", "unharmful"),
    "garbled": "I am not sure what to say here.",
}


def make_guard(**options) -> tuple[GuardReasoner, ScriptedEngine]:
    engine = ScriptedEngine(TABLE, max_context_tokens=options.pop("max_context_tokens", None))
    return GuardReasoner(engine=engine, **options), engine


def test_classify_reads_the_models_labels():
    guard, engine = make_guard()
    verdict = guard.classify("How do I build a bomb?")
    assert verdict.prompt_harmfulness == "harmful" and verdict.is_harmful and verdict.decided_by == "model"
    safe = guard.classify("Write a poem", "Roses are red.")
    assert (safe.response_refusal, safe.response_harmfulness, safe.is_safe) == (
        "compliance",
        "unharmful",
        True,
    )
    assert engine.calls[1] == [build_prompt("Write a poem", "Roses are red.")]


def test_classify_batch_makes_one_engine_call_and_keeps_order():
    guard, engine = make_guard()
    items = [
        "What is the capital of Peru?",
        ("Write a poem", "Sure."),
        {"prompt": "bomb recipe"},
        Conversation(prompt="capital?"),
    ]
    verdicts = guard.classify_batch(items)
    assert len(engine.calls) == 1 and len(engine.calls[0]) == 4
    assert [v.prompt_harmfulness for v in verdicts] == ["unharmful", "unharmful", "harmful", "unharmful"]
    assert verdicts[1].response_refusal == "compliance"
    assert guard.classify_batch([]) == []


async def test_async_paths_match_sync():
    guard, _ = make_guard()
    one, many = await asyncio.gather(
        guard.aclassify("bomb?"), guard.aclassify_batch(["capital?", ("poem", "ok")])
    )
    assert one.prompt_harmfulness == "harmful"
    assert [v.prompt_harmfulness for v in many] == ["unharmful", "unharmful"]


@pytest.mark.parametrize(
    "bad, message",
    [
        ("", "prompt is empty"),
        ("   \n", "prompt is empty"),
        (None, "must be a string"),
        (42, "must be a string"),
    ],
)
def test_bad_prompts_are_rejected_before_generation(bad, message):
    guard, engine = make_guard()
    with pytest.raises(InvalidInputError, match=message):
        guard.classify(bad)
    assert engine.calls == []


def test_bad_responses_and_batch_items_name_the_problem():
    guard, engine = make_guard()
    with pytest.raises(InvalidInputError, match="Pass response=None"):
        guard.classify("hello", "")
    with pytest.raises(InvalidInputError, match=r"item 1"):
        guard.classify_batch(["fine", ("a", "b", "c")])
    with pytest.raises(InvalidInputError, match=r"'prompt' key"):
        guard.classify_batch([{"text": "hi"}])
    with pytest.raises(InvalidInputError, match="list of conversations"):
        guard.classify_batch("one string")
    with pytest.raises(InvalidInputError, match="Cannot classify a int"):
        guard.classify_batch([3])
    assert engine.calls == []


@pytest.mark.parametrize("policy, harmful", [("fail_closed", True), ("fail_open", False)])
def test_unparseable_output_follows_the_policy_and_says_so(policy, harmful):
    guard, _ = make_guard(policy=policy)
    verdict = guard.classify("garbled input")
    assert verdict.is_parsing_error and verdict.parse_status is ParseStatus.NO_ANSWER_BLOCK
    assert verdict.is_harmful is harmful
    assert verdict.decided_by == "policy" and verdict.policy == policy
    assert verdict.raw_output == TABLE["garbled"]


def test_raise_policy_carries_the_verdict():
    guard, _ = make_guard(policy="raise")
    with pytest.raises(GuardUndecidedError) as caught:
        guard.classify("garbled input")
    assert caught.value.verdict.parse_status is ParseStatus.NO_ANSWER_BLOCK
    assert guard.classify("bomb").is_harmful  # a usable verdict never raises


def test_default_policy_is_fail_closed():
    guard, _ = make_guard()
    assert guard.classify("garbled").is_harmful is True


class BrokenEngine(ScriptedEngine):
    def generate(self, prompts, config):
        raise EngineError("server returned 503 three times")


class SlowEngine(ScriptedEngine):
    async def agenerate(self, prompts, config):
        await asyncio.sleep(5)
        return self.generate(prompts, config)


def test_engine_failure_becomes_a_policy_verdict():
    guard = GuardReasoner(engine=BrokenEngine(TABLE))
    verdicts = guard.classify_batch(["a", "b"])
    assert all(v.parse_status is ParseStatus.ENGINE_ERROR and v.is_harmful for v in verdicts)
    assert "503" in verdicts[0].error
    open_guard = GuardReasoner(engine=BrokenEngine(TABLE), policy="fail_open")
    assert open_guard.classify("a").is_harmful is False
    with pytest.raises(GuardUndecidedError, match="503"):
        GuardReasoner(engine=BrokenEngine(TABLE), policy="raise").classify("a")


async def test_async_timeout_becomes_a_timeout_verdict():
    guard = GuardReasoner(engine=SlowEngine(TABLE), timeout=0.05)
    verdict = await guard.aclassify("bomb")
    assert (
        verdict.parse_status is ParseStatus.TIMEOUT and verdict.is_harmful and verdict.decided_by == "policy"
    )


def test_conversation_longer_than_the_context_is_an_error_by_default():
    # The scripted engine counts whitespace words as tokens; the instruction is ~80 words.
    guard, engine = make_guard(max_context_tokens=400, max_new_tokens=100)
    long_prompt = "bomb " + "word " * 1000
    with pytest.raises(ContextLengthError, match="truncation='head_tail'"):
        guard.classify(long_prompt)
    assert engine.calls == []


def test_head_tail_truncation_fits_and_reports_it():
    guard, engine = make_guard(max_context_tokens=400, max_new_tokens=100, truncation="head_tail")
    words = [f"w{i}" for i in range(1000)]
    verdict = guard.classify("bomb " + " ".join(words))
    assert verdict.input_truncated and verdict.prompt_harmfulness == "harmful"
    sent = engine.calls[0][0]
    assert engine.count_tokens(sent) <= 300
    assert TRUNCATION_MARKER in sent and "bomb w0 w1" in sent and "w999\n\nAI assistant" in sent
    short = guard.classify("What is the capital of Chile?")
    assert not short.input_truncated


def test_generation_defaults_are_the_reference_ones():
    config = GenerationConfig()
    assert (config.max_new_tokens, config.temperature, config.top_p, config.n) == (2048, 0.0, 1.0, 1)
    guard, _ = make_guard(max_new_tokens=64)
    assert guard.generation.max_new_tokens == 64


def test_options_for_a_ready_engine_are_refused():
    with pytest.raises(ValueError, match="ready engine"):
        GuardReasoner(engine=ScriptedEngine(TABLE), device="cuda")
    with pytest.raises(ValueError, match="Unknown engine"):
        GuardReasoner("x/y", engine="tensorrt")


def test_policy_decisions_are_logged_once_per_call(caplog):
    guard, _ = make_guard()
    with caplog.at_level("WARNING", logger="guardreasoner"):
        verdicts = guard.classify_batch(["garbled one", "bomb", "garbled two"])
    assert [v.decided_by for v in verdicts] == ["policy", "model", "policy"]
    records = [r for r in caplog.records if r.name == "guardreasoner"]
    assert len(records) == 1
    assert (
        "2 of 3 conversation(s) (no_answer_block: 2); policy fail_closed treats them as harmful"
        in records[0].message
    )
