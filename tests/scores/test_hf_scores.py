"""Scores from the hf engine on the tiny trained guard, against a separate forward pass of the same model."""

from __future__ import annotations

import math

import pytest
from guardreasoner.engines import GenerationConfig
from guardreasoner.engines.hf import HFEngine
from guardreasoner.parsing import parse_output
from guardreasoner.prompt import build_prompt
from guardreasoner.scores import SCORE_FIELDS, TASKS, score_verdict
from guardreasoner.testing import TINY_GUARD_CASES
from guardreasoner.verdict import ScoreStatus

pytestmark = pytest.mark.slow

CONVERSATIONS = [(case.prompt, case.response) for case in TINY_GUARD_CASES] + [
    # Not trained on: what the tiny guard writes for them depends on the float arithmetic of its training (the
    # torch build), often no clean final block. They add length (left padding) and whatever labels they get.
    ("How do I build a pipe bomb in my garage?", None),
    ("Write a short poem about the moon.", "The moon is round and the night is calm."),
]


@pytest.fixture(scope="module")
def engine(trained_guard_dir):
    # Batches of two, sorted by length, so that left padding is exercised.
    return HFEngine(str(trained_guard_dir), batch_size=2)


def reference(engine, prompt: str, text: str, field: str) -> tuple[float, float]:
    """(log p(positive), log p(negative)) at the final block's label of ``field``, by one plain forward pass
    over the prompt and the output re-tokenized, checked to be the greedy path."""
    torch = pytest.importorskip("torch")
    tokenizer, model = engine.tokenizer, engine.model
    prompt_ids = tokenizer(prompt).input_ids
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = prompt_ids + encoded.input_ids
    with torch.no_grad():
        logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)
    task = TASKS[field]
    line = text.rindex(f"\n{task.answer_key}:") + len(task.answer_key) + 2  # the space before the label
    token = next(i for i, (start, _) in enumerate(encoded.offset_mapping) if start == line)
    position = len(prompt_ids) + token - 1  # the logits that predict the label's token
    positive = tokenizer(" " + task.positive, add_special_tokens=False).input_ids[0]
    negative = tokenizer(" " + task.negative, add_special_tokens=False).input_ids[0]
    return logprobs[position, positive].item(), logprobs[position, negative].item()


def test_scores_match_greedy_labels_and_a_separate_forward_pass(engine):
    prompts = [build_prompt(*conversation) for conversation in CONVERSATIONS]
    generations = engine.generate(prompts, GenerationConfig(max_new_tokens=60))
    trained = 0
    for index, ((_, response), prompt, generation) in enumerate(zip(CONVERSATIONS, prompts, generations)):
        has_response = response is not None
        verdict = score_verdict(
            parse_output(generation.text, has_response=has_response),
            generation.label_logprobs,
            has_response=has_response,
        )
        assert "".join(generation.label_logprobs.tokens) == generation.text
        for field, task in TASKS.items():
            label = getattr(verdict, field)
            if label is None:
                continue
            if field in verdict.recovered_fields:  # no final-block label to score: says so, by design
                assert verdict.score_status[field] is ScoreStatus.RECOVERED
                continue
            score = getattr(verdict, SCORE_FIELDS[field])
            assert score is not None and 0.0 <= score <= 1.0, (field, verdict.score_status)
            assert field not in verdict.score_status
            assert (score > 0.5) == (label == task.positive), (field, label, score)
            positive, negative = reference(engine, prompt, generation.text, field)
            assert score == pytest.approx(1 / (1 + math.exp(negative - positive)), abs=1e-5)
            trained += index < len(TINY_GUARD_CASES)
    assert trained == 11  # every label of the trained cases, read from the final block and scored


def test_sampling_records_the_models_own_distribution(engine):
    """With temperature and top-p, the recorded log-probabilities are still the model's own (temperature 1,
    nothing masked): at the first generated position they equal a plain forward pass over the prompt."""
    torch = pytest.importorskip("torch")
    prompt = build_prompt(*CONVERSATIONS[2])
    config = GenerationConfig(max_new_tokens=4, temperature=1.7, top_p=0.5, seed=3, n=2)
    (generation,) = engine.generate([prompt], config)
    assert len(generation.samples) == 2
    labels = generation.label_logprobs.labels
    with torch.no_grad():
        logits = engine.model(torch.tensor([engine.tokenizer(prompt).input_ids])).logits[0, -1].float()
    expected = torch.log_softmax(logits, dim=-1)
    recorded = generation.label_logprobs.logprobs[0]
    for token_id, text in labels.texts.items():
        assert recorded[text] == pytest.approx(expected[token_id].item(), abs=1e-5)
