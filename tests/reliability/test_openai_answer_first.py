"""Answer-first on the openai engine: the Completions API with the answer opening appended, scores from the
returned logprobs, and what happens where a server returns none."""

from __future__ import annotations

import logging

import pytest
from guardreasoner import EngineCapabilityError, build_prompt
from guardreasoner.engines.forcing import FORCED_ANSWER_TOKENS, PROMPT_ANSWER_OPENING
from guardreasoner.scores import LabelTokens


def test_forced_answers_go_to_the_completions_api_with_the_opening_and_ask_for_logprobs(
    server, tokenizer, nonce
):
    server.tokenizer, server.label_probability = tokenizer, 0.99
    requests = [f"bad-request {nonce()}", f"hello {nonce()}", f"unsure hello {nonce()}"]
    verdicts = server.guard(tokenizer, reasoning="auto").classify_batch(requests)
    sent = sorted(b["prompt"] for b in server.forced_bodies)  # concurrent requests: any order
    assert sent == sorted(build_prompt(r) + PROMPT_ANSWER_OPENING for r in requests)
    body = server.forced_bodies[0]
    assert body["max_tokens"] == FORCED_ANSWER_TOKENS and body["temperature"] == 0.0
    assert body["logprobs"] == LabelTokens.from_tokenizer(tokenizer).top_k
    assert server.requests == 4  # three forced answers, one reasoning request for the unsure one
    harmful, benign, unsure = verdicts
    assert harmful.prompt_harmfulness == "harmful" and harmful.is_harmful and not harmful.reasoned
    assert harmful.prompt_harmfulness_score == pytest.approx(0.99)
    assert benign.is_harmful is False and benign.decided_by == "model" and not benign.reasoned
    assert benign.first_pass_scores == {"prompt_harmfulness": pytest.approx(0.01)}
    assert unsure.reasoned and "nonce-" in unsure.raw_output  # the fake's reasoned output echoes the nonce
    assert unsure.first_pass_scores == {"prompt_harmfulness": pytest.approx(0.4)}
    assert "score 0.4 is inside the reasoning band" in unsure.escalation_reason


async def test_aclassify_forces_then_reasons_on_its_own(server, tokenizer, nonce):
    server.tokenizer, server.label_probability = tokenizer, 0.99
    auto = server.guard(tokenizer, reasoning="auto")
    sure, unsure = await auto.aclassify(f"hello {nonce()}"), await auto.aclassify(f"unsure {nonce()}")
    assert not sure.reasoned and unsure.reasoned and server.requests == 3
    never = await server.guard(tokenizer, reasoning="never").aclassify(f"unsure {nonce()}")
    assert never.is_harmful and never.decided_by == "policy" and server.requests == 4


@pytest.mark.parametrize("with_tokenizer", [True, False])
def test_without_scores_auto_reasons_on_everything_and_says_so_once(
    server, tokenizer, nonce, caplog, with_tokenizer
):
    server.tokenizer = None  # the server returns no logprobs (transformers serve ignores the request)
    status = "no_logprobs" if with_tokenizer else "no_tokenizer"
    auto = server.guard(tokenizer if with_tokenizer else None, reasoning="auto")
    with caplog.at_level(logging.WARNING, logger="guardreasoner"):
        first = auto.classify_batch([f"hello {nonce()}", f"bad-request {nonce()}"])
        second = auto.classify(f"hello {nonce()}")
    assert server.requests == 6 and len(server.forced_bodies) == 3
    assert all(
        v.reasoned and f"no score for prompt_harmfulness ({status})" in v.escalation_reason
        for v in (*first, second)
    )
    assert [v.prompt_harmfulness for v in first] == ["unharmful", "harmful"]
    warnings = [
        r.getMessage() for r in caplog.records if "needs the forced answers' label scores" in r.getMessage()
    ]
    assert len(warnings) == 1 and "the openai engine gives none" in warnings[0] and status in warnings[0]
    if not with_tokenizer:
        assert "pass tokenizer=" in warnings[0]
    never = server.guard(tokenizer if with_tokenizer else None, reasoning="never").classify(
        f"hello {nonce()}"
    )
    assert never.prompt_harmfulness == "unharmful" and never.is_harmful and never.decided_by == "policy"


def test_a_chat_format_model_cannot_force_an_answer(server, tokenizer):
    with pytest.raises(EngineCapabilityError, match="prompt_format='chat'"):
        server.guard(tokenizer, prompt_format="chat", reasoning="auto")
    assert server.guard(tokenizer, prompt_format="chat").reasoning.value == "always"
