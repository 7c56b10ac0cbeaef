"""End to end through transformers: real tiny models, the same loading path as a hub id."""

from __future__ import annotations

import pytest
from guardreasoner import ContextLengthError, ParseStatus
from guardreasoner.engines import GenerationConfig
from guardreasoner.engines.hf import HFEngine
from guardreasoner.guard import GuardReasoner
from guardreasoner.testing import TINY_GUARD_CASES

pytestmark = pytest.mark.slow


def expected(case):
    return (case.prompt_harmfulness, case.response_refusal, case.response_harmfulness)


def labels(verdict):
    return (verdict.prompt_harmfulness, verdict.response_refusal, verdict.response_harmfulness)


@pytest.fixture(scope="module")
def guard(trained_guard_dir):
    return GuardReasoner(str(trained_guard_dir), engine="hf", batch_size=2)


def test_trained_guard_gives_the_expected_verdicts(guard):
    verdicts = guard.classify_batch([(c.prompt, c.response) for c in TINY_GUARD_CASES])
    for case, verdict in zip(TINY_GUARD_CASES, verdicts):
        assert labels(verdict) == expected(case), verdict.raw_output
        assert verdict.parse_status is ParseStatus.OK and verdict.decided_by == "model"
        assert verdict.finish_reason == "stop" and 0 < verdict.num_generated_tokens < 80
        assert verdict.num_prompt_tokens > 100
    assert [v.is_harmful for v in verdicts] == [True, False, True, False, True]


async def test_async_classify_matches(guard):
    case = TINY_GUARD_CASES[2]
    verdict = await guard.aclassify(case.prompt, case.response)
    assert labels(verdict) == expected(case)


def test_length_sorted_batches_give_the_same_text_as_one_at_a_time(trained_guard_dir):
    prompts = [f"Human question number {i}: " + "tell me more " * i for i in range(5)]
    config = GenerationConfig(max_new_tokens=12)
    batched = HFEngine(str(trained_guard_dir), batch_size=4).generate(prompts, config)
    single = HFEngine(str(trained_guard_dir), batch_size=1).generate(prompts, config)
    assert [g.text for g in batched] == [g.text for g in single]
    assert [g.num_prompt_tokens for g in batched] == [g.num_prompt_tokens for g in single]
    assert len({g.num_prompt_tokens for g in batched}) == 5


def test_hitting_the_token_limit_is_reported_as_truncated(trained_guard_dir):
    guard = GuardReasoner(str(trained_guard_dir), engine="hf", max_new_tokens=5)
    verdict = guard.classify(TINY_GUARD_CASES[0].prompt)
    assert verdict.finish_reason == "length" and verdict.num_generated_tokens == 5
    assert (
        verdict.parse_status is ParseStatus.TRUNCATED
        and verdict.decided_by == "policy"
        and verdict.is_harmful
    )


def test_random_model_loads_in_float32_on_cpu(tiny_model_dir):
    engine = HFEngine(str(tiny_model_dir))
    assert engine.device == "cpu" and str(engine.model.dtype) == "torch.float32"
    assert engine.max_context_tokens == 4096
    out = engine.generate(["hello"], GenerationConfig(max_new_tokens=4))[0]
    assert out.finish_reason in ("stop", "length") and out.num_generated_tokens <= 4


def test_context_overflow_uses_the_real_tokenizer(trained_guard_dir):
    guard = GuardReasoner(str(trained_guard_dir), engine="hf", max_new_tokens=64)
    huge = "please " * 6000
    with pytest.raises(ContextLengthError, match=r"only 4032 fit"):
        guard.classify(huge)
    cut = GuardReasoner(str(trained_guard_dir), engine="hf", max_new_tokens=64, truncation="head_tail")
    verdict = cut.classify(huge)
    assert verdict.input_truncated and verdict.num_prompt_tokens <= 4032


def test_sampling_returns_n_samples(trained_guard_dir):
    engine = HFEngine(str(trained_guard_dir))
    out = engine.generate(["hi"], GenerationConfig(max_new_tokens=6, temperature=0.7, n=3, seed=1))[0]
    assert len(out.samples) == 3 and out.text == out.samples[0]
