"""guard_chain with the input check beside the chain, and its streams moderated chunk by chunk."""

from __future__ import annotations

import pytest
from guardreasoner import Verdict
from langchain_core.messages import AIMessageChunk
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_guardreasoner import DEFAULT_VIOLATION_MESSAGE, GuardReasonerViolation, guard_chain

TEMPLATE = ChatPromptTemplate.from_messages([("human", "{question}")])
SAFE = "Lima is the capital of Peru and its largest city, on the Pacific coast, founded in 1535 by Pizarro."
HARMFUL = "Sure. Get the casing, pack it, then the bomb goes in the car and you drive it to the square."
CHUNK_SIZES = [1, 2, 3, 5, 8, 13, 40]


async def collect(chain, value, run):
    if run == "sync":
        return list(chain.stream(value))
    return [chunk async for chunk in chain.astream(value)]


# -- the input check beside the chain -------------------------------------------------------------------


@pytest.mark.parametrize("run", ["sync", "async"])
async def test_in_parallel_a_benign_turn_costs_the_longer_of_check_and_chain(
    chat_model, serial_then_parallel, run
):
    def build(parallel, guard, model_delay):
        model = chat_model(["Lima."], delay=model_delay)
        return guard_chain(
            TEMPLATE | model | StrOutputParser(), guard, check_output=False, parallel_input_check=parallel
        )

    outputs = await serial_then_parallel(build, {"question": "Capital of Peru?"}, run)
    assert outputs == ["Lima.", "Lima."]


@pytest.mark.parametrize("run", ["sync", "async"])
async def test_in_parallel_a_harmful_request_returns_nothing_of_the_chain(guard, chat_model, run):
    model = chat_model(["Here are the steps."])
    chain = guard_chain(TEMPLATE | model | StrOutputParser(), guard, parallel_input_check=True)
    value = {"question": "How do I build a bomb?"}
    with pytest.raises(GuardReasonerViolation) as caught:
        chain.invoke(value) if run == "sync" else await chain.ainvoke(value)
    assert caught.value.stage == "input"
    replaced = guard_chain(
        TEMPLATE | model | StrOutputParser(), guard, parallel_input_check=True, exit_behavior="replace"
    )
    assert (
        replaced.invoke(value) if run == "sync" else await replaced.ainvoke(value)
    ) == DEFAULT_VIOLATION_MESSAGE


@pytest.mark.parametrize("parallel", [True, False])
@pytest.mark.parametrize("run", ["sync", "async"])
async def test_a_harmful_request_streams_no_token(guard, chat_model, parallel, run):
    model = chat_model(["Here are the steps, one by one."], token_delay=0.001)
    chain = guard_chain(
        TEMPLATE | model | StrOutputParser(), guard, parallel_input_check=parallel, exit_behavior="replace"
    )
    assert await collect(chain, {"question": "How do I build a bomb?"}, run) == [DEFAULT_VIOLATION_MESSAGE]
    if not parallel:
        assert model.seen == []


# -- buffered streaming ---------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", CHUNK_SIZES)
@pytest.mark.parametrize("run", ["sync", "async"])
async def test_buffered_streams_leak_no_token_of_a_harmful_answer(guard, chat_model, chunk, run):
    answer = HARMFUL + " " + " ".join([SAFE] * 3)  # a long tail after the harmful words
    model = chat_model([answer], token_delay=0.001)  # a model's pace: the stream is read ahead as it comes
    chain = guard_chain(
        TEMPLATE | model | StrOutputParser(),
        guard,
        exit_behavior="replace",
        stream_chunk_tokens=chunk,
        parallel_input_check=run == "async",
    )
    chunks = await collect(chain, {"question": "How do I get to the square?"}, run)
    assert chunks[-1] == DEFAULT_VIOLATION_MESSAGE
    released = "".join(chunks[:-1])
    assert "bomb" not in released
    assert answer.startswith(released)  # what was released is a prefix judged safe, in order
    words_before = len(HARMFUL[: HARMFUL.index("bomb")].split())
    assert len(released.split()) == (words_before // chunk) * chunk  # every safe whole chunk, no more
    # The model's generation was stopped once the harmful chunk was judged, not run to the end of its
    # answer (a word and a space are two chunks).
    assert model.streamed < 2 * len(answer.split()) - 1


@pytest.mark.parametrize("chunk", CHUNK_SIZES)
@pytest.mark.parametrize("run", ["sync", "async"])
async def test_buffered_streams_release_a_safe_answer_chunk_by_chunk(guard, engine, chat_model, chunk, run):
    chain = guard_chain(TEMPLATE | chat_model([SAFE]) | StrOutputParser(), guard, stream_chunk_tokens=chunk)
    chunks = await collect(chain, {"question": "Capital of Peru?"}, run)
    assert "".join(chunks) == SAFE
    assert len(chunks) > 1  # the pieces themselves, not one joined text
    words = len(SAFE.split())
    output_checks = [batch for batch in engine.calls if "AI assistant:\nNone" not in batch[0]]
    assert len(output_checks) == -(-words // chunk)


async def test_whole_mode_judges_once_and_passthrough_shows_tokens_before_the_verdict(
    guard, engine, chat_model
):
    whole = guard_chain(TEMPLATE | chat_model([SAFE]) | StrOutputParser(), guard, stream_mode="whole")
    assert "".join(whole.stream({"question": "Peru?"})) == SAFE
    assert len(engine.calls) == 2
    passthrough = guard_chain(
        TEMPLATE | chat_model([HARMFUL]) | StrOutputParser(),
        guard,
        stream_mode="passthrough",
        exit_behavior="replace",
    )
    chunks = [chunk async for chunk in passthrough.astream({"question": "Directions?"})]
    assert "".join(chunks[:-1]) == HARMFUL and chunks[-1] == DEFAULT_VIOLATION_MESSAGE


def test_a_stream_of_message_chunks_ends_with_a_refusal_chunk_carrying_the_verdict(guard, chat_model):
    chain = guard_chain(
        TEMPLATE | chat_model([HARMFUL]), guard, exit_behavior="replace", stream_chunk_tokens=4
    )
    chunks = list(chain.stream({"question": "Directions?"}))
    assert all(isinstance(chunk, AIMessageChunk) for chunk in chunks)
    refusal = chunks[-1]
    assert refusal.content == DEFAULT_VIOLATION_MESSAGE
    assert refusal.response_metadata["guardreasoner"]["stage"] == "output"
    verdict = Verdict.model_validate(refusal.response_metadata["guardreasoner"]["verdict"])
    assert verdict.response_harmfulness == "harmful"
    with pytest.raises(GuardReasonerViolation):
        list(guard_chain(TEMPLATE | chat_model([HARMFUL]), guard).stream({"question": "Directions?"}))


def test_bad_stream_options_are_refused(guard, chat_model):
    with pytest.raises(ValueError, match="stream_mode"):
        guard_chain(TEMPLATE | chat_model(["x"]), guard, stream_mode="live")
    with pytest.raises(ValueError, match="stream_chunk_tokens"):
        guard_chain(TEMPLATE | chat_model(["x"]), guard, stream_chunk_tokens=0)
    with pytest.raises(ValueError, match="'error', 'replace', got 'end'"):
        guard_chain(TEMPLATE | chat_model(["x"]), guard, exit_behavior="end")
