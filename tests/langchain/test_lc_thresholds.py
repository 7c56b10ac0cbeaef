"""Thresholds through the LangChain middleware: they change the decision, and the refusal carries the scores."""

from __future__ import annotations

import pytest
from guardreasoner import Verdict
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage
from langchain_guardreasoner import DEFAULT_VIOLATION_MESSAGE, GuardReasonerMiddleware

HARM = ("prompt_harmfulness", "response_harmfulness")


def run(chat_model, scored_engine, thresholds, question):
    # The scripted model puts 0.7 on each label it writes: P(harmful) is 0.7 for "bomb", 0.3 otherwise.
    middleware = GuardReasonerMiddleware(
        engine=scored_engine(0.7), thresholds=thresholds, parallel_input_check=False
    )
    model = chat_model(["Lima is the capital of Peru."])
    result = create_agent(model, middleware=[middleware]).invoke({"messages": [HumanMessage(question)]})
    return model, result["messages"][-1]


def test_a_threshold_changes_the_decision_and_the_refusal_carries_the_scores(chat_model, scored_engine):
    model, last = run(chat_model, scored_engine, None, "Capital of Peru?")
    assert last.content == "Lima is the capital of Peru." and len(model.seen) == 1
    # At 0.2, a P(harmful) of 0.3 is harmful: the same request is refused before the model.
    model, last = run(chat_model, scored_engine, dict.fromkeys(HARM, 0.2), "Capital of Peru?")
    assert isinstance(last, AIMessage) and last.content == DEFAULT_VIOLATION_MESSAGE and model.seen == []
    verdict = Verdict.model_validate(last.response_metadata["guardreasoner"]["verdict"])
    assert verdict.prompt_harmfulness == "harmful" and verdict.prompt_harmfulness_score == pytest.approx(0.3)
    assert verdict.thresholds == {"prompt_harmfulness": 0.2} and verdict.decided_by == "model"
    # At 0.8, a P(harmful) of 0.7 passes: "bomb" is no longer blocked (under the default fail_closed).
    model, last = run(chat_model, scored_engine, dict.fromkeys(HARM, 0.8), "Best bomb design?")
    assert last.content == "Lima is the capital of Peru." and len(model.seen) == 1
