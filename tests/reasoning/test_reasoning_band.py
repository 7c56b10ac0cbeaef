"""The reasoning band and its file, the guard's reasoning options, and the verdict's reasoning fields."""

from __future__ import annotations

import json

import guardreasoner
import pytest
from guardreasoner import GuardReasoner, ReasoningBand, ReasoningMode, Verdict
from guardreasoner.reasoning import (
    DEFAULT_REASONING_BAND,
    ReasoningBandError,
    load_reasoning_band,
    write_reasoning_band,
)
from guardreasoner.testing import ScriptedEngine, forced_answer, guard_output


def test_the_band_is_a_closed_interval_and_empty_when_its_ends_meet():
    everything = ReasoningBand(low=0, high=1)
    assert everything.contains(0.0) and everything.contains(1.0) and everything.contains(0.5)
    nothing = ReasoningBand(low=0.5, high=0.5)
    assert not any(nothing.contains(s) for s in (0.0, 0.4999, 0.5, 0.5001, 1.0))
    band = ReasoningBand(low=0.05, high=0.95)
    assert band.contains(0.05) and band.contains(0.95) and band.contains(0.3)
    assert not band.contains(0.0499) and not band.contains(0.9501)
    assert str(band) == "[0.05, 0.95]"
    assert band == DEFAULT_REASONING_BAND


@pytest.mark.parametrize("source", [(0.1, 0.9), [0.1, 0.9], ReasoningBand(low=0.1, high=0.9)])
def test_a_band_is_read_from_a_pair_or_a_band(source):
    assert load_reasoning_band(source) == ReasoningBand(low=0.1, high=0.9)


def test_none_is_the_default_band():
    assert load_reasoning_band(None) is DEFAULT_REASONING_BAND


@pytest.mark.parametrize(
    "source, message",
    [
        ((0.9, 0.1), r"low \(0.9\) must not be above high \(0.1\)"),
        ((0, 1.5), r"high must be a number in \[0, 1\], not 1.5"),
        ((-0.1, 0.5), r"low must be a number in \[0, 1\]"),
        ((float("nan"), 0.5), "low must be a number in"),
        (("0.1", 0.9), r"low: input should be a valid number, not '0.1'"),
        ((True, 0.9), "low: input should be a valid number, not True"),
        ((0.1,), r"must be two numbers \(low, high\)"),
        ((0.1, 0.5, 0.9), r"must be two numbers \(low, high\)"),
        (0.5, "must be a \\(low, high\\) pair, a ReasoningBand or a band file's path, not float"),
        ({"low": 0.1, "high": 0.9}, "not dict"),
    ],
)
def test_a_bad_band_says_what_is_wrong(source, message):
    with pytest.raises(ReasoningBandError, match=message) as caught:
        load_reasoning_band(source)
    assert isinstance(caught.value, ValueError)
    with pytest.raises(ReasoningBandError, match=message):
        GuardReasoner(engine=ScriptedEngine({}), reasoning_band=source)


def test_the_band_file_round_trips_and_its_calibration_is_not_read(tmp_path):
    path = write_reasoning_band(tmp_path / "out" / "band.json", (0.03, 0.97), {"target_agreement": 0.99})
    content = json.loads(path.read_text())
    assert content == {
        "reasoning_band": {"low": 0.03, "high": 0.97},
        "calibration": {"target_agreement": 0.99},
    }
    assert load_reasoning_band(path) == load_reasoning_band(str(path)) == ReasoningBand(low=0.03, high=0.97)
    guard = GuardReasoner(engine=ScriptedEngine({}), reasoning_band=path)
    assert guard.reasoning_band == ReasoningBand(low=0.03, high=0.97)
    assert "calibration" not in json.loads(write_reasoning_band(tmp_path / "b.json", (0, 1)).read_text())


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "is not valid JSON"),
        (json.dumps({"low": 0.1, "high": 0.9}), 'must hold a JSON object {"reasoning_band"'),
        (json.dumps({"reasoning_band": {"low": 0.1, "high": 0.9}, "extra": 1}), r"unknown keys \['extra'\]"),
        (json.dumps({"reasoning_band": [0.1, 0.9]}), "must be an object"),
        (json.dumps({"reasoning_band": {"low": 0.1}}), "high: field required"),
        (json.dumps({"reasoning_band": {"low": 0.1, "high": 0.9, "mid": 0.5}}), "mid: extra inputs"),
        (json.dumps({"reasoning_band": {"low": 0.6, "high": 0.4}}), "must not be above high"),
    ],
)
def test_a_bad_band_file_says_what_is_wrong_and_where(tmp_path, content, message):
    path = tmp_path / "band.json"
    path.write_text(content)
    with pytest.raises(ReasoningBandError, match=message) as caught:
        load_reasoning_band(path)
    assert str(path) in str(caught.value)
    with pytest.raises(ReasoningBandError, match="Cannot read the reasoning band file"):
        load_reasoning_band(tmp_path / "missing.json")
    with pytest.raises(ReasoningBandError, match="needs a band"):
        write_reasoning_band(tmp_path / "x.json", None)


def test_the_guard_takes_a_mode_by_name_or_member_and_refuses_others():
    engine = ScriptedEngine({}, forced={})
    assert GuardReasoner(engine=engine).reasoning is ReasoningMode.ALWAYS
    assert GuardReasoner(engine=engine, reasoning="auto").reasoning is ReasoningMode.AUTO
    assert GuardReasoner(engine=engine, reasoning=ReasoningMode.NEVER).reasoning is ReasoningMode.NEVER
    with pytest.raises(
        ValueError, match="reasoning must be one of 'always', 'auto', 'never', got 'sometimes'"
    ):
        GuardReasoner(engine=engine, reasoning="sometimes")


def test_the_public_names():
    assert guardreasoner.ReasoningMode is ReasoningMode and guardreasoner.ReasoningBand is ReasoningBand
    assert {"ReasoningMode", "ReasoningBand", "EngineCapabilityError"} <= set(guardreasoner.__all__)
    assert [mode.value for mode in ReasoningMode] == ["always", "auto", "never"]


def test_a_verdict_with_its_reasoning_fields_round_trips_through_json():
    engine = ScriptedEngine(
        lambda p: guard_output("unharmful"), forced=lambda p: forced_answer("unharmful", probability=0.7)
    )
    verdict = GuardReasoner(engine=engine, reasoning="auto").classify("Hello there")
    assert verdict.reasoning_mode is ReasoningMode.AUTO and verdict.reasoned
    assert verdict.reasoning_band == DEFAULT_REASONING_BAND and verdict.escalation_reason
    assert Verdict.model_validate_json(verdict.model_dump_json()) == verdict
    dumped = json.loads(verdict.model_dump_json())
    assert dumped["reasoning_mode"] == "auto" and dumped["reasoning_band"] == {"low": 0.05, "high": 0.95}
    assert dumped["first_pass_scores"] == {"prompt_harmfulness": pytest.approx(0.3)}
    assert Verdict().reasoned is True and Verdict().reasoning_mode is ReasoningMode.ALWAYS
