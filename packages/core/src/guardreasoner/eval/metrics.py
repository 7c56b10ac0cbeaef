"""Score metrics: how well a task's scores rank the positives, and what they catch at a fixed false-alarm rate.

A threshold ``t`` flags a conversation when its score is at least ``t``. ``operating_point`` finds the lowest
such threshold whose false-positive rate stays within a limit (the most recall that limit allows); PR-AUC is
:func:`average_precision`. Figures are in percent, as the F1 tables are. Plain
Python: no numpy or scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

REPORTED_FPRS = (0.01, 0.05)
"""The false-positive rates at which recall is reported."""


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float
    """Flag when score >= threshold."""
    fpr: float
    """The false-positive rate at the threshold, as a fraction."""
    recall: float
    """The recall (true-positive rate) at the threshold, as a fraction."""


@dataclass(frozen=True)
class ScoreMetrics:
    """One dataset's score metrics on one task; None where the data cannot give a figure."""

    scored: int
    """Records with a score (the rest are left out of these figures)."""
    unscored: int
    pr_auc: float | None
    recall_at_fpr: dict[float, float | None]
    """Max FPR (fraction) -> recall in percent."""

    def to_dict(self) -> dict:
        return {
            "scored": self.scored,
            "unscored": self.unscored,
            "pr_auc": self.pr_auc,
            **{f"recall_at_{fpr:.0%}_fpr": recall for fpr, recall in self.recall_at_fpr.items()},
        }


def average_precision(is_positive: Sequence[bool], scores: Sequence[float]) -> float | None:
    """PR-AUC in percent as average precision (scikit-learn's definition); None without any positive."""
    positives = sum(is_positive)
    if not positives:
        return None
    ranked = sorted(zip(scores, is_positive, strict=True), key=lambda pair: -pair[0])
    area, tp, seen, previous_recall = 0.0, 0, 0, 0.0
    for i, (score, positive) in enumerate(ranked):
        tp += positive
        seen += 1
        if i + 1 < len(ranked) and ranked[i + 1][0] == score:
            continue  # tied scores form one threshold
        recall = tp / positives
        area += (recall - previous_recall) * (tp / seen)
        previous_recall = recall
    return 100.0 * area


def operating_point(
    is_positive: Sequence[bool], scores: Sequence[float], max_fpr: float
) -> OperatingPoint | None:
    """The lowest threshold whose false-positive rate is at most ``max_fpr``; None without both classes, or
    when even the highest score flags too many negatives."""
    if len(is_positive) != len(scores):
        raise ValueError(f"{len(is_positive)} labels but {len(scores)} scores.")
    positives = sum(map(bool, is_positive))
    negatives = len(scores) - positives
    if not positives or not negatives:
        return None
    ranked = sorted(zip(scores, is_positive), key=lambda pair: -pair[0])
    best, tp, fp = None, 0, 0
    for i, (score, positive) in enumerate(ranked):
        tp += bool(positive)
        fp += not positive
        if i + 1 < len(ranked) and ranked[i + 1][0] == score:
            continue  # tied scores are flagged together
        if fp / negatives > max_fpr:
            break
        best = OperatingPoint(score, fp / negatives, tp / positives)
    return best


def recall_at_fpr(is_positive: Sequence[bool], scores: Sequence[float], max_fpr: float) -> float | None:
    """Recall in percent at the lowest threshold with a false-positive rate at most ``max_fpr``; 0 when no
    threshold keeps it; None without both classes."""
    if not any(is_positive) or all(is_positive):
        return None
    point = operating_point(is_positive, scores, max_fpr)
    return 100.0 * point.recall if point else 0.0


def score_metrics(
    is_positive: Sequence[bool], scores: Sequence[float | None], fprs: Sequence[float] = REPORTED_FPRS
) -> ScoreMetrics:
    """PR-AUC and recall at each FPR over the records that have a score."""
    kept = [
        (positive, score) for positive, score in zip(is_positive, scores, strict=True) if score is not None
    ]
    labels, values = [p for p, _ in kept], [s for _, s in kept]
    return ScoreMetrics(
        scored=len(kept),
        unscored=len(scores) - len(kept),
        pr_auc=average_precision(labels, values) if kept else None,
        recall_at_fpr={fpr: recall_at_fpr(labels, values, fpr) for fpr in fprs},
    )


def record_score(record: dict, field: str) -> float | None:
    """A prediction record's score for a label field: ``record["scores"][field]`` as the runner writes it
    (from :func:`guardreasoner.scores.verdict_scores`); None when it has none."""
    scores = record.get("scores")
    value = scores.get(field) if isinstance(scores, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
