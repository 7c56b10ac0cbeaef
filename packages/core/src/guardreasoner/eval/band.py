"""Choosing the reasoning band on a set: the cheapest band whose labels still agree with ``always``'s.

With ``reasoning="auto"`` the guard forces an answer first and reasons in full only on a conversation with a
task scored inside the band (``guardreasoner.reasoning``). A wider band reasons on more conversations (cost)
and keeps more of ``always``'s labels (agreement). :func:`choose_band` takes, per conversation, the forced
answer's scores and how many of its labels agree with ``always``'s (:class:`FirstPass`), and picks the band
with the lowest escalation rate whose label agreement with ``always`` reaches the target;
:func:`calibrate_band` also writes it as the band file that ``GuardReasoner(reasoning_band=path)`` and
``guardreasoner classify --reasoning-band`` read. Pure Python, as ``eval/calibrate.py`` is for thresholds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from guardreasoner.errors import EvaluationError
from guardreasoner.reasoning import ReasoningBand, write_reasoning_band

EMPTY_BAND = ReasoningBand(low=0.5, high=0.5)
"""No score is unsure: ``auto`` reasons only where the forced answer cannot decide at all."""


@dataclass(frozen=True)
class FirstPass:
    """One conversation's forced answer, held against its reasoned (``always``) verdict."""

    scores: tuple[float, ...] | None
    """The forced answer's score on each task it answers; None when it cannot decide at any band (no clean
    answer, a task without a score), so ``auto`` always reasons on it."""
    labels: int
    """The labels the conversation has (1 for a request alone, 3 with a response)."""
    agreeing: int
    """Of those, how many the forced answer gives as ``always`` does."""

    def __post_init__(self) -> None:
        if not 0 <= self.agreeing <= self.labels or self.labels < 1:
            raise ValueError(f"A conversation has 1 label or more, and agrees on 0 to all of them: {self}.")
        if not all(0.0 <= score <= 1.0 for score in self.scores or ()):  # NaN fails too
            raise ValueError(f"Scores are probabilities in [0, 1]: {self}.")


@dataclass(frozen=True)
class BandOutcome:
    """What ``auto`` does at a band on a set of conversations."""

    band: ReasoningBand
    agreement: float
    """The fraction of labels ``auto`` gives as ``always`` does (an escalated conversation takes all of
    ``always``'s; a decided one, the forced answer's)."""
    escalation_rate: float
    """The fraction of conversations ``auto`` reasons on in full."""
    conversations: int
    labels: int

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "band": self.band.model_dump()}


def band_outcome(first_passes: Sequence[FirstPass], band: ReasoningBand) -> BandOutcome:
    """``auto``'s agreement and escalation at ``band``, escalating as the guard does
    (:meth:`ReasoningBand.contains`, the test ``guardreasoner.policy.first_pass_doubt`` applies)."""
    _check_nonempty(first_passes)
    escalated = agreeing = labels = 0
    for first in first_passes:
        labels += first.labels
        if first.scores is None or any(band.contains(score) for score in first.scores):
            escalated += 1
            agreeing += first.labels
        else:
            agreeing += first.agreeing
    return BandOutcome(band, agreeing / labels, escalated / len(first_passes), len(first_passes), labels)


def choose_band(first_passes: Sequence[FirstPass], target_agreement: float) -> BandOutcome:
    """The band with the lowest escalation rate whose agreement reaches ``target_agreement`` (a fraction).

    A band escalates the conversations with a score among a run of consecutive distinct scores, so every
    run is a candidate (and the empty band, which escalates only what cannot be decided); for each lowest
    score, the shortest run that reaches the target is the cheapest, and it only moves up as the lowest
    does (two pointers: one pass over the sorted scores). Ties go to the higher agreement, then to the band
    nearer 0.5 (where a forced answer is least sure), then to the narrower. A run's band has its bounds halfway between the run's outer scores and the next scores
    out (0 and 1 at the ends), so that a new score near the run is reasoned on too. ``(0, 1)`` reaches any
    target, so there is always an answer.
    """
    if not 0.0 <= target_agreement <= 1.0:
        raise EvaluationError(f"The target agreement must be a fraction in [0, 1], got {target_agreement}.")
    _check_nonempty(first_passes)
    values = sorted({score for first in first_passes for score in first.scores or ()})
    holders: dict[float, list[int]] = {value: [] for value in values}
    for index, first in enumerate(first_passes):
        for score in first.scores or ():
            holders[score].append(index)
    run = _Run(first_passes, target_agreement)
    best = run.outcome(EMPTY_BAND) if run.meets() else None
    end = -1  # the run is values[start : end + 1]
    for start in range(len(values)):
        while end < len(values) - 1 and not (end >= start and run.meets() and _band(values, start, end)):
            end += 1
            run.add(holders[values[end]])
        band = _band(values, start, end) if end >= start else None
        if band is not None and run.meets():
            candidate = run.outcome(band)
            if best is None or _cheaper(candidate, best):
                best = candidate
        run.remove(holders[values[start]])
    assert best is not None, "the run of every score reaches any target"
    return best


def calibrate_band(
    first_passes: Sequence[FirstPass],
    target_agreement: float = 0.99,
    *,
    path: str | os.PathLike | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> BandOutcome:
    """:func:`choose_band`, and (with ``path=``) the band file written: the band, and a ``calibration``
    section with the target, what the band reached, the forced answers' own agreement (``never``'s), and
    ``provenance`` (the data and model it was chosen on). Raises :class:`EvaluationError` when no forced
    answer can decide alone (every band then reasons on everything)."""
    if first_passes and all(first.scores is None for first in first_passes):
        raise EvaluationError(
            f"None of the {len(first_passes)} forced answers can decide alone (each lacks a clean answer or a "
            "score), so every band reasons on every conversation: there is nothing to calibrate. The forced "
            "answers need label scores: the hf and vllm engines give them; openai needs tokenizer= and a "
            "server that returns logprobs."
        )
    chosen = choose_band(first_passes, target_agreement)
    if path is not None:
        calibration = {
            "target_agreement": target_agreement,
            "agreement": chosen.agreement,
            "escalation_rate": chosen.escalation_rate,
            "never_agreement": sum(f.agreeing for f in first_passes) / chosen.labels,
            "conversations": chosen.conversations,
            "labels": chosen.labels,
            **(provenance or {}),
        }
        write_reasoning_band(path, chosen.band, calibration)
    return chosen


class _Run:
    """Counts for the conversations escalated by a run of scores: how many of each one's scores are in it."""

    def __init__(self, first_passes: Sequence[FirstPass], target: float):
        self.first_passes, self.target = first_passes, target
        self.inside = [0] * len(first_passes)
        self.labels = sum(first.labels for first in first_passes)
        self.escalated = sum(first.scores is None for first in first_passes)
        self.agreeing = sum(
            first.labels if first.scores is None else first.agreeing for first in first_passes
        )

    def add(self, indices: list[int]) -> None:
        for i in indices:
            self.inside[i] += 1
            if self.inside[i] == 1:
                self.escalated += 1
                self.agreeing += self.first_passes[i].labels - self.first_passes[i].agreeing

    def remove(self, indices: list[int]) -> None:
        for i in indices:
            self.inside[i] -= 1
            if self.inside[i] == 0:
                self.escalated -= 1
                self.agreeing -= self.first_passes[i].labels - self.first_passes[i].agreeing

    def meets(self) -> bool:
        return self.agreeing / self.labels >= self.target

    def outcome(self, band: ReasoningBand) -> BandOutcome:
        conversations = len(self.first_passes)
        return BandOutcome(
            band, self.agreeing / self.labels, self.escalated / conversations, conversations, self.labels
        )


def _band(values: list[float], start: int, end: int) -> ReasoningBand | None:
    """The band holding exactly ``values[start : end + 1]``; None when no band does (one score whose
    neighbours are the floats next to it: a band with ``low == high`` is empty)."""
    low = 0.0 if start == 0 else _between(values[start - 1], values[start], upper=True)
    high = 1.0 if end == len(values) - 1 else _between(values[end], values[end + 1], upper=False)
    return ReasoningBand(low=low, high=high) if low < high else None


def _between(below: float, above: float, *, upper: bool) -> float:
    """Halfway between two scores, on the side that keeps ``above`` (``upper``) or ``below`` in the band
    where rounding puts halfway on one of them."""
    middle = (below + above) / 2
    if upper:
        return middle if below < middle <= above else above
    return middle if below <= middle < above else below


def _cheaper(candidate: BandOutcome, best: BandOutcome) -> bool:
    def cost(outcome: BandOutcome) -> tuple[float, float, float, float]:
        band = outcome.band
        off_middle = max(band.low - 0.5, 0.5 - band.high, 0.0)
        return outcome.escalation_rate, -outcome.agreement, off_middle, band.high - band.low

    return cost(candidate) < cost(best)


def _check_nonempty(first_passes: Sequence[FirstPass]) -> None:
    if not first_passes:
        raise EvaluationError("No conversation to choose a reasoning band on.")
