"""The vllm engine's label scores: find the label positions in an output, ask for the candidates there only."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from guardreasoner.engines.vllm import label_scores
from guardreasoner.parsing import parse_output
from guardreasoner.scores import LabelTokens, score_verdict
from guardreasoner.verdict import ScoreStatus

from tests.scores.test_scorer import WordTokenizer

ANSWERS = "Answers: \nRequest: harmful\nCompletion: refusal\nResponse: unharmful\n"
REASONING = "# Task 1\n## Reasoning Step 1: " + " ".join(f"word{i}" for i in range(120)) + "\n"
PROMPT_IDS = [900, 901, 902]


def output(text: str, tokenizer: WordTokenizer):
    """A vLLM ``RequestOutput`` without log-probabilities, as the engine now generates."""
    ids = tokenizer(text).input_ids
    return SimpleNamespace(
        prompt_token_ids=PROMPT_IDS, outputs=[SimpleNamespace(text=text, token_ids=ids, finish_reason="stop")]
    )


def answer(tokenizer: WordTokenizer, row: dict[str, float]):
    """The 1-token follow-up's output: ``logprob_token_ids`` = the candidates, each with its log-probability."""
    step = {
        tokenizer.vocab[t]: SimpleNamespace(logprob=lp, rank=None, decoded_token=None)
        for t, lp in row.items()
    }
    return SimpleNamespace(outputs=[SimpleNamespace(token_ids=[0], logprobs=[step])])


def rows_for(tokenizer, labels):
    """What the model says at each label: p(harmful) 0.7 vs p(un) 0.2; refusal 0.9 vs compliance 0.05; at the
    response label p(un) 0.5 vs p(harmful) 0.3 (every other candidate at a small value)."""
    small = {text: math.log(0.001) for text in labels.texts.values()}
    return {
        " harmful": {**small, " harmful": math.log(0.7), " un": math.log(0.2)},
        " refusal": {**small, " refusal": math.log(0.9), " compl": math.log(0.05)},
        " un": {**small, " un": math.log(0.5), " harmful": math.log(0.3)},
    }


@pytest.mark.parametrize("tails", [label_scores.TAILS, (4,), (4, 8)])
def test_one_request_per_label_whose_next_token_is_the_label_and_the_scores_they_give(tails, monkeypatch):
    # Tails shorter than the answer block make the engine decode longer ones, then the whole output.
    monkeypatch.setattr(label_scores, "TAILS", tails)
    tokenizer = WordTokenizer()
    labels = LabelTokens.from_tokenizer(tokenizer)
    text = REASONING + ANSWERS
    outputs = [output(text, tokenizer)]
    queries = label_scores.plan(outputs, tokenizer.decode, labels)
    requests = label_scores.requests(outputs, queries)
    ids = outputs[0].outputs[0].token_ids
    names = {i: p for p, i in tokenizer.vocab.items()}
    # Each request is the prompt and the output up to a label: the output's next token there is the label.
    next_tokens = []
    for request in requests:
        context = request["prompt_token_ids"]
        assert context[: len(PROMPT_IDS)] == PROMPT_IDS
        generated = context[len(PROMPT_IDS) :]
        assert generated == ids[: len(generated)]
        next_tokens.append(names[ids[len(generated)]])
    assert next_tokens == [" harmful", " refusal", " un"]
    rows = rows_for(tokenizer, labels)
    answers = [answer(tokenizer, rows[token]) for token in next_tokens]
    (found,) = label_scores.label_logprobs(1, queries, answers, labels)
    verdict = score_verdict(parse_output(text, has_response=True), found, has_response=True)
    assert verdict.prompt_harmfulness_score == pytest.approx(0.7 / 0.9)
    assert verdict.response_refusal_score == pytest.approx(0.9 / 0.95)
    assert verdict.response_harmfulness_score == pytest.approx(0.3 / 0.8)
    assert verdict.score_status == {}


def test_a_failed_request_leaves_its_label_unscored_and_a_failed_output_gets_nothing():
    tokenizer = WordTokenizer()
    labels = LabelTokens.from_tokenizer(tokenizer)
    text = REASONING + ANSWERS
    outputs = [RuntimeError("aborted"), output(text, tokenizer)]
    queries = label_scores.plan(outputs, tokenizer.decode, labels)
    assert [q.output for q in queries] == [1]
    rows = rows_for(tokenizer, labels)
    answers = [answer(tokenizer, rows[" harmful"]), RuntimeError("lost"), answer(tokenizer, rows[" un"])]
    assert len(label_scores.requests(outputs, queries)) == len(answers)
    failed, found = label_scores.label_logprobs(2, queries, answers, labels)
    assert failed is None
    verdict = score_verdict(parse_output(text, has_response=True), found, has_response=True)
    assert verdict.prompt_harmfulness_score == pytest.approx(0.7 / 0.9)
    assert verdict.response_refusal_score is None
    assert verdict.score_status == {"response_refusal": ScoreStatus.NO_LOGPROBS}


def test_an_output_without_an_answer_block_asks_nothing_and_says_why():
    tokenizer = WordTokenizer()
    labels = LabelTokens.from_tokenizer(tokenizer)
    text = REASONING
    outputs = [output(text, tokenizer)]
    queries = label_scores.plan(outputs, tokenizer.decode, labels)
    assert label_scores.requests(outputs, queries) == []
    (found,) = label_scores.label_logprobs(1, queries, [], labels)
    verdict = score_verdict(parse_output(text, has_response=False), found, has_response=False)
    assert verdict.prompt_harmfulness_score is None
    assert verdict.score_status == {"prompt_harmfulness": ScoreStatus.NO_LABEL}
