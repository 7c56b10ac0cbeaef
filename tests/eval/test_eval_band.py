"""Choosing the reasoning band: by hand, and properties against every band a brute force can build."""

from __future__ import annotations

import json
import math

import pytest
from guardreasoner.eval import EvaluationError
from guardreasoner.eval.band import EMPTY_BAND, FirstPass, band_outcome, calibrate_band, choose_band
from guardreasoner.reasoning import ReasoningBand, load_reasoning_band
from hypothesis import given, settings
from hypothesis import strategies as st

# Requests alone (one label each). The forced answer is wrong on the conversations scored 0.45 and 0.8.
BY_HAND = [
    FirstPass((0.01,), 1, 1),
    FirstPass((0.02,), 1, 1),
    FirstPass((0.45,), 1, 0),
    FirstPass((0.6,), 1, 1),
    FirstPass((0.8,), 1, 0),
    FirstPass((0.99,), 1, 1),
    FirstPass(None, 1, 0),  # no clean forced answer: reasoned on at every band
    FirstPass((0.97,), 1, 1),
]


def test_the_cheapest_band_by_hand():
    # Reasoning on the undecidable one alone agrees on 6 of 8 labels.
    assert band_outcome(BY_HAND, EMPTY_BAND).agreement == 6 / 8
    # 7/8 needs one of the two wrong answers reasoned on: 0.45 alone is the cheapest, halfway to its neighbours.
    chosen = choose_band(BY_HAND, 7 / 8)
    assert chosen.band == ReasoningBand(low=(0.02 + 0.45) / 2, high=(0.45 + 0.6) / 2)
    assert (chosen.agreement, chosen.escalation_rate) == (7 / 8, 2 / 8)
    # Everything right needs 0.45 to 0.8 (0.6 comes along): four of eight reasoned on.
    chosen = choose_band(BY_HAND, 1.0)
    assert chosen.band == ReasoningBand(low=(0.02 + 0.45) / 2, high=(0.8 + 0.97) / 2)
    assert (chosen.agreement, chosen.escalation_rate) == (1.0, 4 / 8)
    assert choose_band(BY_HAND, 0.5).band == EMPTY_BAND


def test_a_conversation_with_several_tasks_is_reasoned_on_when_any_score_is_unsure():
    three_tasks = [FirstPass((0.01, 0.5, 0.99), 3, 2), FirstPass((0.01, 0.02, 0.99), 3, 3)]
    assert band_outcome(three_tasks, ReasoningBand(low=0.4, high=0.6)).escalation_rate == 0.5
    chosen = choose_band(three_tasks, 1.0)
    assert chosen.escalation_rate == 0.5 and chosen.band.contains(0.5) and not chosen.band.contains(0.02)


def test_calibrate_band_writes_the_band_file_the_guard_reads(tmp_path):
    path = tmp_path / "band.json"
    chosen = calibrate_band(BY_HAND, 0.99, path=path, provenance={"model": "m", "data": {"predictions": "p"}})
    assert load_reasoning_band(path) == chosen.band
    calibration = json.loads(path.read_text())["calibration"]
    assert calibration == {
        "target_agreement": 0.99,
        "agreement": 1.0,
        "escalation_rate": 0.5,
        "never_agreement": 5 / 8,  # the undecidable conversation's forced answer disagrees too
        "conversations": 8,
        "labels": 8,
        "model": "m",
        "data": {"predictions": "p"},
    }


def test_bad_input_is_refused():
    with pytest.raises(EvaluationError, match="target agreement must be a fraction"):
        choose_band(BY_HAND, 1.5)
    with pytest.raises(EvaluationError, match="No conversation"):
        choose_band([], 0.99)
    with pytest.raises(EvaluationError, match="None of the 2 forced answers can decide alone"):
        calibrate_band([FirstPass(None, 1, 1), FirstPass(None, 3, 0)], 0.99)
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        FirstPass((math.nan,), 1, 1)
    with pytest.raises(ValueError, match="agrees on 0 to all"):
        FirstPass((0.5,), 1, 2)


# -- properties ------------------------------------------------------------------------------------------

SCORE = st.sampled_from([0.0, 0.01, 0.3, 0.5, 0.7, 0.99, 1.0]) | st.floats(0.0, 1.0)


@st.composite
def first_pass(draw) -> FirstPass:
    tasks = draw(st.sampled_from([1, 3]))
    scores = draw(st.none() | st.tuples(*[SCORE] * tasks))
    return FirstPass(scores, tasks, draw(st.integers(0, tasks)))


FIRST_PASSES = st.lists(first_pass(), min_size=1, max_size=10)
TARGET = st.floats(0.0, 1.0)


def every_band(first_passes: list[FirstPass]) -> list[ReasoningBand]:
    """Bands between any two of: the scores, 0, 1 and the points halfway between neighbouring scores (which
    covers every set of conversations a band can escalate), and the empty band."""
    values = sorted({s for f in first_passes for s in f.scores or ()} | {0.0, 1.0})
    points = sorted(set(values) | {(a + b) / 2 for a, b in zip(values, values[1:])})
    return [EMPTY_BAND] + [
        ReasoningBand(low=low, high=high) for i, low in enumerate(points) for high in points[i + 1 :]
    ]


@settings(max_examples=150, deadline=None)
@given(FIRST_PASSES, TARGET)
def test_the_chosen_band_meets_the_target_and_no_cheaper_band_does(first_passes, target):
    chosen = choose_band(first_passes, target)
    assert band_outcome(first_passes, chosen.band) == chosen  # what it says it reaches, on this data
    assert chosen.agreement >= target
    for band in every_band(first_passes):
        outcome = band_outcome(first_passes, band)
        if outcome.escalation_rate < chosen.escalation_rate:
            assert outcome.agreement < target, band


@settings(max_examples=50, deadline=None)
@given(FIRST_PASSES, TARGET)
def test_the_full_band_meets_any_target(first_passes, target):
    outcome = band_outcome(first_passes, ReasoningBand(low=0.0, high=1.0))
    assert outcome.agreement == 1.0 >= target and outcome.escalation_rate == 1.0


@settings(max_examples=50, deadline=None)
@given(st.lists(first_pass().filter(lambda f: f.scores is not None), min_size=1, max_size=10))
def test_the_empty_band_agrees_as_the_forced_answers_alone(first_passes):
    outcome = band_outcome(first_passes, ReasoningBand(low=0.5, high=0.5))
    never = sum(f.agreeing for f in first_passes) / sum(f.labels for f in first_passes)
    assert outcome.agreement == never and outcome.escalation_rate == 0.0
