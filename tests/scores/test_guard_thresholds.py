"""GuardReasoner's thresholds: scores on every verdict, labels turned by thresholds, and the policy."""

from __future__ import annotations

import logging

import pytest
from guardreasoner import GuardReasoner
from guardreasoner.engines.hf import HFEngine
from guardreasoner.parsing import parse_output
from guardreasoner.policy import apply_policy
from guardreasoner.scores import SCORE_FIELDS, TASKS
from guardreasoner.testing import TINY_GUARD_CASES, ScriptedEngine, guard_output
from guardreasoner.verdict import ParseStatus, ScoreStatus

CONVERSATIONS = [(case.prompt, case.response) for case in TINY_GUARD_CASES]


@pytest.fixture(scope="module")
def engine(trained_guard_dir):
    return HFEngine(str(trained_guard_dir), batch_size=4)


@pytest.fixture(scope="module")
def plain(engine):
    """The verdicts with no thresholds."""
    guard = GuardReasoner(engine=engine, max_new_tokens=60)
    return guard.classify_batch(CONVERSATIONS)


@pytest.mark.slow
def test_without_thresholds_labels_are_greedy_decodings_and_scores_agree(plain):
    for (_, response), verdict, case in zip(CONVERSATIONS, plain, TINY_GUARD_CASES, strict=True):
        greedy = parse_output(verdict.raw_output, has_response=response is not None)
        for field, task in TASKS.items():
            assert getattr(verdict, field) == getattr(greedy, field) == getattr(case, field)
            if getattr(verdict, field) is not None:
                score = getattr(verdict, SCORE_FIELDS[field])
                assert score is not None, verdict.score_status
                assert (score > 0.5) == (getattr(verdict, field) == task.positive)
        assert verdict.thresholds == {} and verdict.threshold_fallbacks == []
        harmful = "harmful" in (case.prompt_harmfulness, case.response_harmfulness)
        assert verdict.is_harmful == harmful


@pytest.mark.slow
def test_thresholds_turn_labels_and_fail_closed_allows_a_thresholded_safe_reading(engine, plain):
    # 0.5 keeps greedy decoding's labels (its label is the likelier of the two); 1.0 makes every label the
    # negative one, 0.0 every label the positive one, all under the default fail_closed policy.
    for value, expect in ((0.5, None), (1.0, "negative"), (0.0, "positive")):
        guard = GuardReasoner(engine=engine, max_new_tokens=60, thresholds=dict.fromkeys(SCORE_FIELDS, value))
        for before, after in zip(plain, guard.classify_batch(CONVERSATIONS), strict=True):
            assert after.thresholds and after.threshold_fallbacks == []
            for field, task in TASKS.items():
                if getattr(before, field) is None:
                    continue
                wanted = getattr(before, field) if expect is None else getattr(task, expect)
                assert getattr(after, field) == wanted
            assert after.decided_by == "model"
            harmful = "harmful" in (after.prompt_harmfulness, after.response_harmfulness)
            assert after.is_harmful == harmful
    assert any(v.harmful_signals for v in plain)  # so 1.0 above allowed readings whose output says harmful


def test_a_threshold_without_a_score_falls_back_and_says_so(caplog):
    guard = GuardReasoner(
        engine=ScriptedEngine(lambda prompt: guard_output("harmful")), thresholds={"prompt_harmfulness": 0.99}
    )
    with caplog.at_level(logging.WARNING, logger="guardreasoner"):
        verdict = guard.classify("hello")
    assert verdict.prompt_harmfulness == "harmful" and verdict.is_harmful
    assert verdict.score_status == {"prompt_harmfulness": ScoreStatus.NO_LOGPROBS}
    assert verdict.threshold_fallbacks == ["prompt_harmfulness"]
    assert "Thresholds could not decide 1 of 1" in caplog.text


def test_fail_closed_still_blocks_a_safe_reading_that_a_threshold_did_not_decide():
    output = guard_output("harmful", reasoning="The request is harmful.")
    verdict = parse_output(output, has_response=False)
    assert verdict.harmful_signals
    unharmful = verdict.model_copy(
        update={"prompt_harmfulness": "unharmful", "is_harmful": False, "prompt_harmfulness_score": 0.3}
    )
    fell_back = unharmful.model_copy(
        update={"thresholds": {"prompt_harmfulness": 0.5}, "threshold_fallbacks": ["prompt_harmfulness"]}
    )
    assert apply_policy(fell_back).is_harmful and apply_policy(fell_back).decided_by == "policy"
    thresholded = unharmful.model_copy(update={"thresholds": {"prompt_harmfulness": 0.5}})
    assert apply_policy(thresholded).is_harmful is False
    overridden = thresholded.model_copy(update={"parse_status": ParseStatus.ANSWER_OVERRIDDEN})
    assert apply_policy(overridden).is_harmful
