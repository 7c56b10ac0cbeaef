"""Thresholds: the file format, its validation, and labels decided by scores."""

from __future__ import annotations

import json
import re

import pytest
from guardreasoner.parsing import parse_output
from guardreasoner.policy import apply_policy
from guardreasoner.testing import guard_output
from guardreasoner.thresholds import ThresholdsError, apply_thresholds, load_thresholds, write_thresholds
from guardreasoner.verdict import ScoreStatus


def scored(prompt="unharmful", refusal="compliance", response="unharmful", **scores):
    verdict = parse_output(guard_output(prompt, refusal, response), has_response=True)
    return verdict.model_copy(update=scores)


def test_a_threshold_decides_the_label_from_the_score_and_is_harmful_follows():
    verdict = scored(prompt_harmfulness_score=0.3, response_harmfulness_score=0.1, response_refusal_score=0.2)
    assert verdict.is_harmful is False
    lowered = apply_thresholds(verdict, {"prompt_harmfulness": 0.25, "response_refusal": 0.5})
    assert lowered.prompt_harmfulness == "harmful" and lowered.is_harmful is True
    assert lowered.response_refusal == "compliance"
    assert lowered.response_harmfulness == "unharmful"  # no threshold: greedy's label
    assert lowered.thresholds == {"prompt_harmfulness": 0.25, "response_refusal": 0.5}
    assert lowered.threshold_fallbacks == []
    # At the score itself the label is the positive one (score >= threshold); above it, the negative.
    assert apply_thresholds(verdict, {"prompt_harmfulness": 0.3}).prompt_harmfulness == "harmful"
    raised = apply_thresholds(scored("harmful", prompt_harmfulness_score=0.8), {"prompt_harmfulness": 0.9})
    assert raised.prompt_harmfulness == "unharmful" and raised.is_harmful is False


def test_no_thresholds_leave_the_verdict_as_it_is():
    verdict = scored(prompt_harmfulness_score=0.3)
    assert apply_thresholds(verdict, {}) is verdict
    assert load_thresholds(None) == {}


def test_a_threshold_without_a_score_keeps_greedys_label_and_says_so():
    verdict = scored("harmful", score_status={"prompt_harmfulness": ScoreStatus.NO_LOGPROBS})
    kept = apply_thresholds(verdict, {"prompt_harmfulness": 0.99})
    assert kept.prompt_harmfulness == "harmful" and kept.is_harmful is True
    assert kept.threshold_fallbacks == ["prompt_harmfulness"]
    assert kept.score_status == {"prompt_harmfulness": ScoreStatus.NO_LOGPROBS}


def test_a_top_k_bound_decides_only_on_greedys_side_of_the_threshold():
    bound = {"prompt_harmfulness": ScoreStatus.TOP_K_BOUND}
    # Greedy said harmful; 0.97 is a lower bound on the true score.
    harmful = scored("harmful", prompt_harmfulness_score=0.97, score_status=bound)
    assert apply_thresholds(harmful, {"prompt_harmfulness": 0.9}).threshold_fallbacks == []
    unsure = apply_thresholds(harmful, {"prompt_harmfulness": 0.99})
    assert unsure.prompt_harmfulness == "harmful" and unsure.threshold_fallbacks == ["prompt_harmfulness"]
    # Greedy said unharmful; 0.04 is an upper bound.
    safe = scored("unharmful", prompt_harmfulness_score=0.04, score_status=bound)
    assert apply_thresholds(safe, {"prompt_harmfulness": 0.1}).prompt_harmfulness == "unharmful"
    unsure = apply_thresholds(safe, {"prompt_harmfulness": 0.02})
    assert unsure.prompt_harmfulness == "unharmful" and unsure.threshold_fallbacks == ["prompt_harmfulness"]


def test_thresholds_leave_an_undecided_verdict_to_the_policy():
    verdict = parse_output("No answer at all.", has_response=False)
    thresholded = apply_thresholds(verdict, {"prompt_harmfulness": 0.5})
    assert thresholded.thresholds == {} and thresholded.is_harmful is None
    assert apply_policy(thresholded).decided_by == "policy"


def test_the_thresholds_file_round_trips(tmp_path):
    path = write_thresholds(
        tmp_path / "t.json", {"response_refusal": 0.25, "prompt_harmfulness": 1}, {"target_fpr": 0.01}
    )
    assert load_thresholds(path) == {"response_refusal": 0.25, "prompt_harmfulness": 1.0}
    assert load_thresholds(str(path)) == load_thresholds(path)
    assert json.loads(path.read_text())["calibration"] == {"target_fpr": 0.01}


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        ({"prompt": 0.5}, "unknown tasks ['prompt']"),
        ({"thresholds": {"prompt_harmfulness": 0.5}}, "Pass the file's path"),
        ({"prompt_harmfulness": 1.5}, "in [0, 1]"),
        ({"prompt_harmfulness": float("nan")}, "in [0, 1]"),
        ({"prompt_harmfulness": True}, "in [0, 1]"),
        ({"prompt_harmfulness": "0.5"}, "in [0, 1]"),
        ([0.5], "mapping"),
    ],
)
def test_bad_thresholds_are_refused_with_what_to_do(thresholds, message):
    with pytest.raises(ThresholdsError, match=re.escape(message)):
        load_thresholds(thresholds)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"prompt_harmfulness": 0.5}', 'must hold a JSON object {"thresholds"'),
        ('{"thresholds": {"prompt_harmfulness": 0.5}, "note": 1}', "unknown keys ['note']"),
        ('{"thresholds": {"response_harmfulness": -0.1}}', "response_harmfulness must be a number"),
    ],
)
def test_bad_thresholds_files_are_refused_naming_the_file(tmp_path, content, message):
    path = tmp_path / "thresholds.json"
    path.write_text(content)
    with pytest.raises(ThresholdsError, match=re.escape(message)) as raised:
        load_thresholds(path)
    assert str(path) in str(raised.value)
    with pytest.raises(ThresholdsError, match="Cannot read"):
        load_thresholds(tmp_path / "missing.json")
