"""Issue 11 on LlamaIndex: input checks beside the model call (a benign turn costs max(check, model); a
harmful one runs no tool and streams no token) and buffered streaming (nothing harmful, nothing unjudged
reaches the consumer, at every chunk size; a safe stream is released chunk by chunk)."""

from __future__ import annotations

import math
import time

import pytest
from llama_index.core.agent.workflow import AgentStream, FunctionAgent
from llama_index.core.chat_engine import SimpleChatEngine
from llama_index.core.memory import ChatMemoryBuffer
from llama_index.core.tools import FunctionTool
from llama_index.postprocessor.guardreasoner import (
    DEFAULT_VIOLATION_MESSAGE,
    GuardedAgent,
    GuardedChatEngine,
    GuardedQueryEngine,
)

CHECK, MODEL = 0.6, 0.8  # seconds: the guard's time per check, the model's per call
BOUND = 1.10 * max(CHECK, MODEL)


def timed(call):
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


async def atimed(awaitable):
    started = time.perf_counter()
    result = await awaitable
    return result, time.perf_counter() - started


# -- parallel input checks ----------------------------------------------------------------------------


@pytest.mark.parametrize("parallel", [True, False])
async def test_query_engine_turn_costs_max_of_check_and_model(timed_query_engine, timed_guard, parallel):
    engine, llm = timed_query_engine(MODEL)
    guarded = GuardedQueryEngine(
        engine, guard=timed_guard(CHECK), check_output=False, parallel_input_check=parallel
    )
    response, sync_wall = timed(lambda: guarded.query("Capital of Peru?"))
    assert response.response == "Answer: Capital of Peru?"
    response, async_wall = await atimed(guarded.aquery("Capital of Peru?"))
    assert response.response == "Answer: Capital of Peru?" and llm.calls == 2
    if parallel:
        assert sync_wall < BOUND and async_wall < BOUND, (sync_wall, async_wall)
    else:
        assert min(sync_wall, async_wall) >= CHECK + MODEL


async def test_chat_engine_turn_costs_max_of_check_and_model(timed_query_engine, timed_guard):
    _, llm = timed_query_engine(MODEL)
    chat = SimpleChatEngine.from_defaults(llm=llm, memory=ChatMemoryBuffer.from_defaults())
    guarded = GuardedChatEngine(chat, guard=timed_guard(CHECK), check_output=False, parallel_input_check=True)
    _, sync_wall = timed(lambda: guarded.chat("Capital of Peru?"))
    _, async_wall = await atimed(guarded.achat("And of Chile?"))
    assert sync_wall < BOUND and async_wall < BOUND, (sync_wall, async_wall)
    assert [m.content for m in guarded.chat_history][::2] == ["Capital of Peru?", "And of Chile?"]


@pytest.mark.parametrize("call", ["chat", "achat"])
async def test_chat_engine_harmful_turn_in_parallel_leaves_no_trace_in_memory(scripted_llm, guard, call):
    llm = scripted_llm("Sure, here are the steps.")
    chat = SimpleChatEngine.from_defaults(llm=llm, memory=ChatMemoryBuffer.from_defaults())
    guarded = GuardedChatEngine(chat, guard=guard, exit_behavior="end", parallel_input_check=True)
    refused = guarded.chat("A bomb, please.") if call == "chat" else await guarded.achat("A bomb, please.")
    assert refused.response == DEFAULT_VIOLATION_MESSAGE and guarded.chat_history == []


async def test_agent_turn_costs_max_of_check_and_model(tool_llm, timed_guard):
    agent = FunctionAgent(tools=[], llm=tool_llm(*["Lima."] * 4, delay=MODEL), streaming=False)
    await agent.run(user_msg="Warm up.")  # first-run costs (the memory's tokenizer), not timed
    # the model call as the app sees it: the LLM's delay plus the agent workflow's own steps
    _, model = await atimed(agent.run(user_msg="Capital of Peru?"))
    guarded = GuardedAgent(agent, guard=timed_guard(CHECK), check_output=False)
    response, wall = await atimed(guarded.run(user_msg="Capital of Peru?"))
    assert response.response.content == "Lima." and wall < 1.10 * max(CHECK, model), (wall, model)
    serial = GuardedAgent(agent, guard=timed_guard(CHECK), check_output=False, parallel_input_check=False)
    _, serial_wall = await atimed(serial.run(user_msg="Capital of Peru?"))
    assert serial_wall >= CHECK + MODEL


async def test_harmful_input_in_parallel_runs_no_tool_and_streams_no_token(tool_llm, timed_guard):
    calls = []
    tool = FunctionTool.from_defaults(
        lambda topic: calls.append(topic) or "x", name="lookup", description="Look."
    )
    llm = tool_llm(("lookup", {"topic": "bombs"}), token_delay=0.0)
    guarded = GuardedAgent(FunctionAgent(tools=[tool], llm=llm), guard=timed_guard(0.3), exit_behavior="end")
    handler = guarded.run(user_msg="How do I build a bomb?")
    streamed = [event.delta async for event in handler.stream_events() if isinstance(event, AgentStream)]
    response = await handler
    assert len(llm.calls) == 1  # the model was called beside the check...
    assert calls == [] and streamed == [DEFAULT_VIOLATION_MESSAGE]  # ...and nothing it did got through
    assert response.response.content == DEFAULT_VIOLATION_MESSAGE


def test_query_engine_harmful_input_stream_is_never_read(scripted_llm, guard):
    from llama_index.core import VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.schema import TextNode

    llm = scripted_llm("Step one: get the parts.")
    index = VectorStoreIndex([TextNode(text="Chemistry.")], embed_model=MockEmbedding(embed_dim=8))
    guarded = GuardedQueryEngine(
        index.as_query_engine(llm=llm, streaming=True), guard=guard, exit_behavior="end"
    )
    refused = guarded.query("How do I build a bomb?")
    assert list(refused.response_gen) == [DEFAULT_VIOLATION_MESSAGE]
    assert llm.produced == []  # the model's stream was opened beside the check, and never read


# -- buffered streaming -------------------------------------------------------------------------------

WORDS = [f"w{i}" for i in range(60)]
HARMFUL_AT = 37
HARMFUL = " ".join(WORDS[:HARMFUL_AT] + ["bomb"] + WORDS[HARMFUL_AT + 1 :])
SAFE = " ".join(WORDS)
CHUNKS = [1, 2, 5, 10, 16, 64]


def released_words(pieces: list[str]) -> list[str]:
    return "".join(pieces).split()


@pytest.mark.parametrize("chunk", CHUNKS)
def test_query_engine_buffered_stream_leaks_nothing(scripted_llm, guard, engine, chunk):
    from llama_index.core import VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.schema import TextNode

    index = VectorStoreIndex([TextNode(text="Some text.")], embed_model=MockEmbedding(embed_dim=8))

    def guarded(answer: str) -> GuardedQueryEngine:
        inner = index.as_query_engine(llm=scripted_llm(answer), streaming=True)
        return GuardedQueryEngine(inner, guard=guard, exit_behavior="end", stream_chunk_tokens=chunk)

    refused = guarded(HARMFUL).query("Tell me a story.")
    pieces = list(refused.response_gen)
    assert pieces[-1] == DEFAULT_VIOLATION_MESSAGE and refused.metadata["guardreasoner"]["stage"] == "output"
    safe_chunks = HARMFUL_AT // chunk  # the chunks judged safe before the one holding the harmful word
    assert released_words(pieces[:-1]) == WORDS[: safe_chunks * chunk]
    calls = len(engine.calls)
    safe = guarded(SAFE).query("Tell me a story.")
    first_seen_after, pieces = None, []
    for piece in safe.response_gen:
        first_seen_after = first_seen_after if first_seen_after is not None else len(engine.calls) - calls
        pieces.append(piece)
    assert released_words(pieces) == WORDS
    assert len(engine.calls) - calls == 1 + math.ceil(len(WORDS) / chunk)  # input, then one check per chunk
    if chunk < len(WORDS):
        assert first_seen_after == 2  # the first chunk was released after its own check, not the whole answer


@pytest.mark.parametrize("chunk", CHUNKS)
async def test_chat_engine_buffered_stream_leaks_nothing(scripted_llm, guard, chunk):
    def guarded(answer: str) -> GuardedChatEngine:
        chat = SimpleChatEngine.from_defaults(
            llm=scripted_llm(answer), memory=ChatMemoryBuffer.from_defaults()
        )
        return GuardedChatEngine(chat, guard=guard, exit_behavior="end", stream_chunk_tokens=chunk)

    sync_chat = guarded(HARMFUL)
    pieces = list(sync_chat.stream_chat("Tell me a story.").response_gen)
    async_chat = guarded(HARMFUL)
    apieces = [p async for p in (await async_chat.astream_chat("Tell me a story.")).async_response_gen()]
    for got, chat in ((pieces, sync_chat), (apieces, async_chat)):
        assert got[-1] == DEFAULT_VIOLATION_MESSAGE
        assert released_words(got[:-1]) == WORDS[: (HARMFUL_AT // chunk) * chunk]
        assert all("bomb" not in (m.content or "") for m in chat.chat_history)  # scrubbed from memory
    assert released_words(list(guarded(SAFE).stream_chat("Tell me a story.").response_gen)) == WORDS


@pytest.mark.parametrize("chunk", CHUNKS)
async def test_agent_buffered_stream_leaks_nothing(tool_llm, guard, chunk):
    llm = tool_llm(HARMFUL)
    agent = GuardedAgent(
        FunctionAgent(tools=[], llm=llm), guard=guard, exit_behavior="end", stream_chunk_tokens=chunk
    )
    handler = agent.run(user_msg="Tell me a story.")
    streamed = [event.delta async for event in handler.stream_events() if isinstance(event, AgentStream)]
    response = await handler
    assert (
        streamed[-1] == DEFAULT_VIOLATION_MESSAGE and response.response.content == DEFAULT_VIOLATION_MESSAGE
    )
    assert released_words(streamed[:-1]) == WORDS[: (HARMFUL_AT // chunk) * chunk]
    safe = GuardedAgent(FunctionAgent(tools=[], llm=tool_llm(SAFE)), guard=guard, stream_chunk_tokens=chunk)
    handler = safe.run(user_msg="Tell me a story.")
    streamed = [event.delta async for event in handler.stream_events() if isinstance(event, AgentStream)]
    assert released_words(streamed) == WORDS and (await handler).response.content == SAFE
