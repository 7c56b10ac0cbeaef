"""Score metrics and threshold calibration, against hand computations and a brute-force reference."""

from __future__ import annotations

import pytest
from guardreasoner.eval import EvaluationError
from guardreasoner.eval.calibrate import calibrate
from guardreasoner.eval.metrics import operating_point, recall_at_fpr, record_score, score_metrics
from guardreasoner.parsing import parse_output
from guardreasoner.scores import verdict_scores
from guardreasoner.testing import guard_output
from guardreasoner.thresholds import load_thresholds
from hypothesis import given, settings
from hypothesis import strategies as st

# 4 positives, 4 negatives, ranked: P N P P N N P N
SCORES = [0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1]
POSITIVE = [True, False, True, True, False, False, True, False]


def test_operating_points_by_hand():
    point = operating_point(POSITIVE, SCORES, 0.0)
    assert (point.threshold, point.fpr, point.recall) == (0.9, 0.0, 0.25)
    point = operating_point(POSITIVE, SCORES, 0.25)
    assert (point.threshold, point.fpr, point.recall) == (0.6, 0.25, 0.75)
    point = operating_point(POSITIVE, SCORES, 0.5)
    assert (point.threshold, point.fpr, point.recall) == (0.4, 0.5, 0.75)
    assert operating_point(POSITIVE, SCORES, 0.75).threshold == 0.2
    assert recall_at_fpr(POSITIVE, SCORES, 0.25) == 75.0


def test_tied_scores_are_flagged_together():
    # The top score is shared by a positive and a negative: no threshold flags the one without the other.
    assert operating_point([True, False, True, False], [0.9, 0.9, 0.5, 0.1], 0.0) is None
    assert recall_at_fpr([True, False, True, False], [0.9, 0.9, 0.5, 0.1], 0.0) == 0.0
    assert recall_at_fpr([True, True], [0.9, 0.1], 0.01) is None  # no negative: no false-positive rate


def test_score_metrics_by_hand_and_unscored_records_left_out():
    metrics = score_metrics([*POSITIVE, True], [*SCORES, None], fprs=(0.0, 0.25))
    # AP = sum over thresholds of (recall gain) x precision: .25x1 + .25x2/3 + .25x3/4 + .25x4/7
    assert metrics.pr_auc == pytest.approx(100 * (0.25 + 0.25 * 2 / 3 + 0.25 * 3 / 4 + 0.25 * 4 / 7))
    assert metrics.recall_at_fpr == {0.0: 25.0, 0.25: 75.0}
    assert (metrics.scored, metrics.unscored) == (8, 1)
    assert metrics.to_dict()["recall_at_0%_fpr"] == 25.0


def brute_force(is_positive, scores, max_fpr):
    """Every distinct score as a threshold; the lowest one within the limit."""
    positives = sum(is_positive)
    negatives = len(scores) - positives
    best = None
    for threshold in sorted(set(scores), reverse=True):
        flagged = [p for p, s in zip(is_positive, scores) if s >= threshold]
        fpr = (len(flagged) - sum(flagged)) / negatives
        if fpr <= max_fpr:
            best = (threshold, fpr, sum(flagged) / positives)
    return best


labelled = st.lists(
    st.tuples(st.booleans(), st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.5, 0.75, 0.9, 1.0])),
    min_size=2,
    max_size=40,
).filter(lambda rows: 0 < sum(p for p, _ in rows) < len(rows))


@settings(max_examples=200, deadline=None)
@given(labelled, st.sampled_from([0.0, 0.01, 0.05, 0.2, 0.5]))
def test_operating_point_matches_brute_force(rows, max_fpr):
    is_positive, scores = [p for p, _ in rows], [s for _, s in rows]
    point = operating_point(is_positive, scores, max_fpr)
    expected = brute_force(is_positive, scores, max_fpr)
    # The ranking walk stops at the first threshold over the limit; thresholds are visited in order, and the
    # FPR only grows as the threshold falls, so it finds the brute force's answer.
    assert (None if point is None else (point.threshold, point.fpr, point.recall)) == (
        None if expected is None else pytest.approx(expected)
    )


def test_against_scikit_learn_where_installed():
    metrics = pytest.importorskip("sklearn.metrics")
    import random

    rng = random.Random(0)
    is_positive = [rng.random() < 0.3 for _ in range(500)]
    scores = [round(rng.random() * 0.6 + 0.4 * p, 2) for p in is_positive]
    ours = score_metrics(is_positive, scores, fprs=(0.01, 0.05))
    assert ours.pr_auc == pytest.approx(100 * metrics.average_precision_score(is_positive, scores))
    fpr, tpr, _ = metrics.roc_curve(is_positive, scores, drop_intermediate=False)
    for limit in (0.01, 0.05):
        assert ours.recall_at_fpr[limit] == pytest.approx(
            100 * max(t for f, t in zip(fpr, tpr) if f <= limit)
        )


def test_calibrate_picks_the_lowest_threshold_within_the_target_and_writes_the_file(tmp_path):
    gold = ["harmful" if p else "unharmful" for p in POSITIVE]
    calibration = calibrate(
        {"prompt_harmfulness": [*SCORES, None], "response_refusal": [0.9, 0.2, 0.8, 0.1]},
        {
            "prompt_harmfulness": [*gold, "harmful"],
            "response_refusal": ["refusal", "compliance", "refusal", None],
        },
        target_fpr=0.25,
        path=tmp_path / "thresholds.json",
    )
    assert calibration.thresholds == {"prompt_harmfulness": 0.6, "response_refusal": 0.8}
    task = calibration.tasks["prompt_harmfulness"]
    assert (task.fpr, task.recall, task.positives, task.negatives, task.unscored) == (0.25, 0.75, 4, 4, 1)
    assert calibration.tasks["response_refusal"].unscored == 1
    assert load_thresholds(tmp_path / "thresholds.json") == calibration.thresholds


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        ([0.9, 0.1], ["harmful", "harmful"], "both classes"),
        ([0.9, 0.8], ["unharmful", "harmful"], "no threshold keeps"),
        ([0.9, 0.8], ["harmful", "safe"], "gold label 'safe'"),
        ([0.9], ["harmful", "unharmful"], "1 scores but 2 gold labels"),
    ],
)
def test_calibration_says_why_it_cannot(scores, labels, message):
    with pytest.raises(EvaluationError, match=message):
        calibrate({"prompt_harmfulness": scores}, {"prompt_harmfulness": labels}, target_fpr=0.01)


def test_calibration_refuses_unknown_fields_and_targets():
    with pytest.raises(EvaluationError, match="Unknown label field 'prompt'"):
        calibrate({"prompt": [0.1]}, {"prompt": ["harmful"]})
    with pytest.raises(EvaluationError, match=r"in \[0, 1\)"):
        calibrate({}, {}, target_fpr=1.0)


def test_prediction_records_carry_scores_per_task():
    verdict = parse_output(guard_output("harmful", "refusal", "unharmful"), has_response=True).model_copy(
        update={"prompt_harmfulness_score": 0.9, "response_harmfulness_score": 0.2}
    )
    record = {"predict": verdict.raw_output, "scores": verdict_scores(verdict)}
    assert record["scores"] == {"prompt_harmfulness": 0.9, "response_harmfulness": 0.2}
    assert record_score(record, "prompt_harmfulness") == 0.9
    assert record_score(record, "response_harmfulness") == 0.2
    assert record_score(record, "response_refusal") is None
    assert record_score({"predict": ""}, "prompt_harmfulness") is None
