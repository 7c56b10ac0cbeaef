"""The reasoning modes on the hf engine, with a tiny guard trained to answer both ways (reasoning first, and
right after the forced answer opening): real generation, exact scores from the logits."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from guardreasoner import GuardReasoner, build_prompt  # noqa: E402
from guardreasoner.engines.forcing import FORCED_ANSWER_TOKENS, PROMPT_ANSWER_OPENING  # noqa: E402
from guardreasoner.testing import TINY_GUARD_CASES, train_tiny_guard  # noqa: E402

CASES = TINY_GUARD_CASES[1:4]  # a safe request alone; a refused harmful request; a safe compliance
CONVERSATIONS = [(case.prompt, case.response) for case in CASES]


@pytest.fixture(scope="module")
def guard_dir(tmp_path_factory):
    return train_tiny_guard(tmp_path_factory.mktemp("answer-first-guard"), cases=CASES, answer_first=True)


@pytest.fixture(scope="module")
def always(guard_dir):
    guard = GuardReasoner(str(guard_dir), engine="hf", max_new_tokens=96)
    verdicts = guard.classify_batch(CONVERSATIONS)
    guard.close()
    return verdicts


def make_guard(guard_dir, **options) -> tuple[GuardReasoner, list[list[str]]]:
    """A guard on the tiny model, and the prompts of each reasoning call its engine makes."""
    guard = GuardReasoner(str(guard_dir), engine="hf", max_new_tokens=96, **options)
    calls: list[list[str]] = []
    generate = guard.engine.generate

    def counted(prompts, config):
        calls.append(list(prompts))
        return generate(prompts, config)

    guard.engine.generate = counted
    return guard, calls


def labels(verdict) -> tuple:
    return verdict.prompt_harmfulness, verdict.response_refusal, verdict.response_harmfulness


def test_never_reads_each_trained_answer_right_after_the_prompt(guard_dir):
    guard, calls = make_guard(guard_dir, reasoning="never")
    verdicts = guard.classify_batch(CONVERSATIONS)
    assert len(calls) == 1 and all(PROMPT_ANSWER_OPENING in p for p in calls[0])  # the forced answers only
    opening = len(guard.engine.tokenizer(PROMPT_ANSWER_OPENING, add_special_tokens=False).input_ids)
    for case, (prompt, response), verdict in zip(CASES, CONVERSATIONS, verdicts):
        assert labels(verdict) == (case.prompt_harmfulness, case.response_refusal, case.response_harmfulness)
        assert verdict.raw_output == PROMPT_ANSWER_OPENING + case.forced_output
        assert verdict.reasoned is False and verdict.decided_by == "model" and verdict.finish_reason == "stop"
        assert verdict.num_generated_tokens == verdict.first_pass_tokens <= FORCED_ANSWER_TOKENS
        assert verdict.num_prompt_tokens == len(guard.engine.encode(build_prompt(prompt, response))) + opening
        scored = {"prompt_harmfulness", *(("response_refusal", "response_harmfulness") if response else ())}
        assert set(verdict.first_pass_scores) == scored and not verdict.score_status
        for field, score in verdict.first_pass_scores.items():
            assert score == getattr(verdict, f"{field}_score")
            assert (score > 0.5) == (getattr(verdict, field) in ("harmful", "refusal"))
            assert not 0.05 <= score <= 0.95  # trained: sure, so fail_closed allows the safe ones
    assert [v.is_harmful for v in verdicts] == [
        case.prompt_harmfulness == "harmful" or case.response_harmfulness == "harmful" for case in CASES
    ]


def test_the_forced_answers_scores_are_the_models_probabilities_at_the_label(guard_dir):
    """Recomputed apart: one full forward pass over the prompt, the opening and the answer up to the
    request's label, the two labels' probabilities at their first differing token, renormalised."""
    guard, _ = make_guard(guard_dir, reasoning="never")
    engine, tokenize, decode = guard.engine, guard.engine.tokenizer, guard.engine.tokenizer.decode
    opening = tokenize(PROMPT_ANSWER_OPENING, add_special_tokens=False).input_ids
    for case, (prompt, response) in zip(CASES, CONVERSATIONS):
        verdict = guard.classify(prompt, response)
        answer = tokenize(
            verdict.raw_output.removeprefix(PROMPT_ANSWER_OPENING), add_special_tokens=False
        ).input_ids
        at = next(k for k in range(len(answer)) if decode(answer[:k]).endswith("Request:"))
        lead = " " if decode(answer[at:]).startswith(" ") else ""
        positive = tokenize(lead + "harmful", add_special_tokens=False).input_ids
        negative = tokenize(lead + "unharmful", add_special_tokens=False).input_ids
        split = next(i for i, (a, b) in enumerate(zip(positive, negative)) if a != b)
        context = [*engine.encode(build_prompt(prompt, response)), *opening, *answer[:at], *positive[:split]]
        with torch.inference_mode():
            probabilities = engine.model(torch.tensor([context])).logits[0, -1].float().softmax(-1)
        p, q = probabilities[positive[split]].item(), probabilities[negative[split]].item()
        assert verdict.prompt_harmfulness == case.prompt_harmfulness
        assert verdict.prompt_harmfulness_score == pytest.approx(p / (p + q), abs=1e-5)


def test_auto_decides_the_sure_ones_and_reasons_once_on_the_rest(guard_dir, always):
    never, _ = make_guard(guard_dir, reasoning="never")
    scores = [v.prompt_harmfulness_score for v in never.classify_batch(CONVERSATIONS)]
    pick = 1
    assert scores.count(scores[pick]) == 1
    band = (scores[pick] - 1e-9, scores[pick] + 1e-9)  # holds that one conversation's score alone
    guard, calls = make_guard(guard_dir, reasoning="auto", reasoning_band=band)
    verdicts = guard.classify_batch(CONVERSATIONS)
    forced, reasoning = calls  # the forced answers, then one reasoning call for the one unsure conversation
    assert len(forced) == len(CONVERSATIONS) and len(reasoning) == 1
    assert PROMPT_ANSWER_OPENING not in reasoning[0] and CONVERSATIONS[pick][0] in reasoning[0]
    assert [v.reasoned for v in verdicts] == [i == pick for i in range(len(CONVERSATIONS))]
    assert verdicts[pick].raw_output == always[pick].raw_output
    assert verdicts[pick].first_pass_scores["prompt_harmfulness"] == scores[pick]
    assert "is inside the reasoning band" in verdicts[pick].escalation_reason
    assert [labels(v) for v in verdicts] == [labels(v) for v in always]


def test_the_full_band_reasons_on_everything_in_one_call_and_gives_alwayss_verdicts(guard_dir, always):
    guard, calls = make_guard(guard_dir, reasoning="auto", reasoning_band=(0, 1))
    verdicts = guard.classify_batch(CONVERSATIONS)
    assert len(calls) == 2 and len(calls[1]) == len(CONVERSATIONS)
    assert [v.raw_output for v in verdicts] == [v.raw_output for v in always]
    assert [labels(v) for v in verdicts] == [labels(v) for v in always] and all(v.reasoned for v in verdicts)


def test_an_empty_band_reasons_on_nothing_and_gives_nevers_labels(guard_dir):
    guard, calls = make_guard(guard_dir, reasoning="auto", reasoning_band=(0.5, 0.5))
    verdicts = guard.classify_batch(CONVERSATIONS)
    never, _ = make_guard(guard_dir, reasoning="never")
    assert len(calls) == 1 and not any(v.reasoned for v in verdicts)
    assert [labels(v) for v in verdicts] == [labels(v) for v in never.classify_batch(CONVERSATIONS)]


async def test_aclassify_reasons_on_its_own_conversation(guard_dir, always):
    guard, calls = make_guard(guard_dir, reasoning="auto", reasoning_band=(0, 1))
    verdict = await guard.aclassify(*CONVERSATIONS[2])
    assert verdict.reasoned and labels(verdict) == labels(always[2]) and [len(c) for c in calls] == [1, 1]
