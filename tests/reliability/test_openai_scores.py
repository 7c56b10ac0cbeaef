"""Scores from the openai engine: parsed from the Completions API's logprobs, with thresholds applied."""

from __future__ import annotations

import pytest
from guardreasoner import GuardReasoner
from guardreasoner.verdict import ScoreStatus


def test_scores_come_from_the_returned_logprobs_and_thresholds_use_them(server, tokenizer, nonce):
    server.tokenizer, server.label_probability = tokenizer, 0.8
    harmful, benign = server.guard(tokenizer).classify_batch([f"bad-request {nonce()}", f"hello {nonce()}"])
    assert harmful.prompt_harmfulness == "harmful" and harmful.score_status == {}
    assert harmful.prompt_harmfulness_score == pytest.approx(0.8)
    assert benign.prompt_harmfulness == "unharmful" and benign.score_status == {}
    assert benign.prompt_harmfulness_score == pytest.approx(0.2)

    strict_guard = server.guard(tokenizer, thresholds={"prompt_harmfulness": 0.9})
    strict = strict_guard.classify(f"bad-request {nonce()}")
    assert strict.prompt_harmfulness == "unharmful" and strict.is_harmful is False
    assert strict.thresholds == {"prompt_harmfulness": 0.9} and strict.threshold_fallbacks == []
    eager = server.guard(tokenizer, thresholds={"prompt_harmfulness": 0.1}).classify(f"hello {nonce()}")
    assert eager.prompt_harmfulness == "harmful" and eager.is_harmful is True


def test_no_logprobs_no_tokenizer_and_the_chat_api_say_why_there_is_no_score(server, tokenizer, nonce):
    verdict = server.guard(tokenizer).classify(f"hello {nonce()}")  # server.tokenizer unset: none returned
    assert verdict.score_status == {"prompt_harmfulness": ScoreStatus.NO_LOGPROBS}
    server.tokenizer = tokenizer
    plain = GuardReasoner("fake-model", engine="openai", base_url=server.base_url)
    verdict = plain.classify(f"hello {nonce()}")
    assert verdict.score_status == {"prompt_harmfulness": ScoreStatus.NO_TOKENIZER}
    verdict = server.guard(tokenizer, prompt_format="chat").classify(f"hello {nonce()}")
    assert verdict.score_status == {"prompt_harmfulness": ScoreStatus.NO_LOGPROBS}
    assert verdict.prompt_harmfulness_score is None
