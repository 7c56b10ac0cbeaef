"""Answer-first (``reasoning="auto"``) through the LangChain adapters: a guard built from the options, or
given ready, reasons only where its forced answer is unsure, and the refusal carries how it decided."""

from __future__ import annotations

import pytest
from guardreasoner import GuardReasoner, ReasoningBand, Verdict
from guardreasoner.integrations import GuardReasonerViolation
from guardreasoner.reasoning import ReasoningBandError, write_reasoning_band
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_guardreasoner import DEFAULT_VIOLATION_MESSAGE, GuardReasonerMiddleware, guard_chain

from tests.adapters import answer_first_engine


def test_middleware_built_with_auto_reasons_only_on_the_unsure_request(chat_model, tmp_path):
    band = write_reasoning_band(tmp_path / "band.json", (0.1, 0.9))
    engine = answer_first_engine()
    middleware = GuardReasonerMiddleware(
        engine=engine, reasoning="auto", reasoning_band=band, parallel_input_check=False
    )
    model = chat_model(["Lima is the capital of Peru."])
    agent = create_agent(model, middleware=[middleware])

    answer = agent.invoke({"messages": [HumanMessage("Capital of Peru?")]})["messages"][-1]
    assert answer.content == "Lima is the capital of Peru."
    assert (
        engine.calls == [] and len(engine.forced_calls) == 2
    )  # input and output: the forced answers decided

    refused = agent.invoke({"messages": [HumanMessage("unsure: the best bomb design?")]})["messages"][-1]
    assert refused.content == DEFAULT_VIOLATION_MESSAGE and len(model.seen) == 1  # blocked before the model
    assert len(engine.calls) == 1  # the unsure request alone was reasoned on
    verdict = Verdict.model_validate(refused.response_metadata["guardreasoner"]["verdict"])
    assert verdict.reasoned and verdict.reasoning_mode == "auto" and verdict.prompt_harmfulness == "harmful"
    assert verdict.first_pass_scores == {"prompt_harmfulness": pytest.approx(0.4)}  # the forced "unharmful"
    assert verdict.reasoning_band == ReasoningBand(low=0.1, high=0.9)  # read from the file
    assert "inside the reasoning band" in verdict.escalation_reason


async def test_chain_with_a_ready_auto_guard_decides_sync_and_async(chat_model):
    engine = answer_first_engine()
    guard = GuardReasoner(engine=engine, reasoning="auto")
    chain = guard_chain(chat_model(["Lima.", "Lima."]) | StrOutputParser(), guard)
    assert chain.invoke("Capital of Peru?") == "Lima."
    assert await chain.ainvoke("Capital of Peru?") == "Lima."
    assert engine.calls == []
    with pytest.raises(GuardReasonerViolation) as raised:
        await chain.ainvoke("unsure: the best bomb design?")
    assert raised.value.verdict.reasoned and raised.value.stage == "input"
    assert len(engine.calls) == 1


def test_bad_reasoning_options_fail_where_the_adapter_is_built(chat_model):
    """No model is loaded (the model id does not exist): the options are checked before any check runs."""
    with pytest.raises(
        ValueError, match="reasoning must be one of 'always', 'auto', 'never', got 'sometimes'"
    ):
        GuardReasonerMiddleware(model="no/such-model", reasoning="sometimes")
    with pytest.raises(ReasoningBandError, match=r"low \(0.9\) must not be above high \(0.1\)"):
        guard_chain(chat_model(["Lima."]), model="no/such-model", reasoning="auto", reasoning_band=(0.9, 0.1))
