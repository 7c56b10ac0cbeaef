"""Thresholds through GuardedQueryEngine: they change the decision, and the refusal carries the scores."""

from __future__ import annotations

import pytest
from guardreasoner import Verdict
from llama_index.core.base.response.schema import Response
from llama_index.postprocessor.guardreasoner import DEFAULT_VIOLATION_MESSAGE, GuardedQueryEngine

from tests.llamaindex.conftest import LimaQueryEngine

HARM = ("prompt_harmfulness", "response_harmfulness")


def ask(scored_engine, thresholds, question) -> Response:
    # The scripted model puts 0.7 on each label it writes: P(harmful) is 0.7 for "bomb", 0.3 otherwise.
    guarded = GuardedQueryEngine(
        LimaQueryEngine(), engine=scored_engine(0.7), thresholds=thresholds, exit_behavior="end"
    )
    return guarded.query(question)


def test_a_threshold_changes_the_decision_and_the_refusal_carries_the_scores(scored_engine):
    assert str(ask(scored_engine, None, "Capital of Peru?")) == "Lima."
    refused = ask(scored_engine, dict.fromkeys(HARM, 0.2), "Capital of Peru?")
    assert str(refused) == DEFAULT_VIOLATION_MESSAGE
    verdict = Verdict.model_validate(refused.metadata["guardreasoner"]["verdict"])
    assert verdict.prompt_harmfulness == "harmful" and verdict.prompt_harmfulness_score == pytest.approx(0.3)
    assert verdict.thresholds == {"prompt_harmfulness": 0.2} and verdict.decided_by == "model"
    assert str(ask(scored_engine, None, "Best bomb design?")) == DEFAULT_VIOLATION_MESSAGE
    assert str(ask(scored_engine, dict.fromkeys(HARM, 0.8), "Best bomb design?")) == "Lima."
