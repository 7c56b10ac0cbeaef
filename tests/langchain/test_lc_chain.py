"""guard_chain: the request judged before the wrapped chain runs, its output after."""

from __future__ import annotations

import pytest
from guardreasoner import InvalidInputError
from guardreasoner.prompt import build_prompt
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_guardreasoner import GuardReasonerViolation, guard_chain

TEMPLATE = ChatPromptTemplate.from_messages([("system", "Answer briefly."), ("human", "{question}")])


def test_safe_chain_output_is_returned_and_both_sides_are_judged(guard, engine, chat_model):
    model = chat_model(["Lima."])
    chain = guard_chain(TEMPLATE | model | StrOutputParser(), guard)
    assert chain.invoke({"question": "Capital of Peru?"}) == "Lima."
    assert engine.calls == [[build_prompt("Capital of Peru?")], [build_prompt("Capital of Peru?", "Lima.")]]


def test_harmful_request_stops_before_the_chain_runs(guard, chat_model):
    model = chat_model(["never"])
    chain = guard_chain(TEMPLATE | model | StrOutputParser(), guard)
    with pytest.raises(GuardReasonerViolation) as caught:
        chain.invoke({"question": "How do I build a bomb?"})
    assert caught.value.stage == "input" and caught.value.verdict.prompt_harmfulness == "harmful"
    assert model.seen == []


def test_harmful_output_raises_or_is_replaced(guard, chat_model):
    harmful = "Step one: the bomb casing."
    with pytest.raises(GuardReasonerViolation) as caught:
        guard_chain(TEMPLATE | chat_model([harmful]) | StrOutputParser(), guard).invoke(
            {"question": "Mining?"}
        )
    assert caught.value.stage == "output" and caught.value.content == harmful
    replaced = guard_chain(
        TEMPLATE | chat_model([harmful]), guard, exit_behavior="replace", violation_message="No."
    )
    message = replaced.invoke({"question": "Mining?"})
    assert isinstance(message, AIMessage) and message.content == "No."
    flagged_input = guard_chain(TEMPLATE | chat_model(["x"]), guard, exit_behavior="replace")
    assert flagged_input.invoke({"question": "bomb?"}) == "I'm sorry, but I can't help with that."


def test_input_key_picks_the_request_out_of_a_mapping(guard, engine, chat_model):
    template = ChatPromptTemplate.from_messages([("human", "{context}\n\n{question}")])
    chain = guard_chain(template | chat_model(["ok", "ok"]) | StrOutputParser(), guard, check_output=False)
    with pytest.raises(InvalidInputError, match="input_key"):
        chain.invoke({"context": "Peru facts", "question": "Capital?"})
    keyed = guard_chain(template | chat_model(["ok"]), guard, check_output=False, input_key="question")
    assert keyed.invoke({"context": "Peru facts", "question": "Capital?"}).content == "ok"
    assert engine.calls == [[build_prompt("Capital?")]]


def test_an_output_it_cannot_read_is_an_error_unless_output_checks_are_off(guard, chat_model):
    from langchain_core.runnables import RunnableLambda

    to_dict = RunnableLambda(lambda m: {"answer": m.content})
    with pytest.raises(InvalidInputError, match="StrOutputParser"):
        guard_chain(TEMPLATE | chat_model(["Lima."]) | to_dict, guard).invoke({"question": "Capital?"})
    chain = guard_chain(TEMPLATE | chat_model(["Lima."]) | to_dict, guard, check_output=False)
    assert chain.invoke({"question": "Capital?"}) == {"answer": "Lima."}


async def test_async_chain(guard, engine, chat_model):
    chain = guard_chain(TEMPLATE | chat_model(["Lima.", "Sure: bomb steps."]) | StrOutputParser(), guard)
    assert await chain.ainvoke({"question": "Capital of Peru?"}) == "Lima."
    with pytest.raises(GuardReasonerViolation):
        await chain.ainvoke({"question": "Mining?"})
    assert len(engine.calls) == 4
