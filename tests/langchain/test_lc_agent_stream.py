"""Judged token streaming of a ``create_agent`` agent: what ``stream``/``astream(stream_mode="messages")`` and
``astream_events`` show, against what the guard judged and what the state keeps.

The model streams slowly (a word per few milliseconds); the scripted guard logs every response it judged, with
the time, so a test can tell that no text reached the consumer before the guard had judged it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from guardreasoner.guard import GuardReasoner
from guardreasoner.testing import ScriptedEngine
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_guardreasoner import DEFAULT_VIOLATION_MESSAGE, GuardReasonerMiddleware, GuardReasonerViolation
from langgraph.config import get_stream_writer

from tests.conftest import judge

WORDS = [f"w{i}" for i in range(200)]  # the scripted engine counts whitespace words as tokens
ANSWER = " ".join(WORDS)
HARMFUL_AT = 100  # "bomb" replaces this word
HARMFUL_ANSWER = " ".join(["bomb" if i == HARMFUL_AT else w for i, w in enumerate(WORDS)])
CHUNK = 32
TOKEN_DELAY = 0.002
RUNS = pytest.mark.parametrize("run", ["sync", "async"])
PARALLEL = pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "serial"])


class JudgedLog:
    """The scripted guard's script, logging each judged response's words with the time of the verdict."""

    def __init__(self) -> None:
        self.responses: list[tuple[float, list[str]]] = []

    def __call__(self, raw_prompt: str) -> str:
        output = judge(raw_prompt)
        response = raw_prompt.rsplit("\n\nAI assistant:\n", 1)[1].removesuffix("\n\n")
        if response != "None":
            self.responses.append((time.perf_counter(), response.split()))
        return output

    def judged_before(self, moment: float, words: list[str]) -> bool:
        """Whether ``words`` (what was released up to ``moment``) begin a response judged before then."""
        return any(at <= moment and judged[: len(words)] == words for at, judged in self.responses)


@pytest.fixture
def judged() -> JudgedLog:
    return JudgedLog()


@pytest.fixture
def logged_guard(judged: JudgedLog) -> GuardReasoner:
    return GuardReasoner(engine=ScriptedEngine(judged))


@dataclass
class Streamed:
    """What a consumer saw: the AI messages (chunks, or a whole message), each with the time it arrived; the
    other messages; the updates (messages as :func:`shape` gives them) and custom items; the final state;
    the error."""

    chunks: list[tuple[float, AIMessage]] = field(default_factory=list)
    others: list[BaseMessage] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    custom: list[Any] = field(default_factory=list)
    state: dict[str, Any] | None = None
    error: BaseException | None = None

    @property
    def text(self) -> str:
        return "".join(str(chunk.content) for _, chunk in self.chunks)

    def ids(self) -> list[str | None]:
        return list(dict.fromkeys(chunk.id for _, chunk in self.chunks))


async def stream(
    agent: Any, text: str, run: str, modes: tuple[str, ...] = ("messages", "values")
) -> Streamed:
    """Stream ``agent`` on the request ``text`` (sync or async), as a chat UI would."""
    seen = Streamed()

    def take(mode: str, item: Any) -> None:
        if mode == "values":
            seen.state = item
        elif mode == "updates":
            seen.updates.append({node: shape(update) for node, update in item.items()})
        elif mode == "custom":
            seen.custom.append(item)
        elif mode == "messages":
            message = item[0]
            if isinstance(message, AIMessage):
                seen.chunks.append((time.perf_counter(), message))
            else:
                seen.others.append(message)

    request = {"messages": [HumanMessage(text)]}
    modes = tuple(modes)
    try:
        if run == "sync":
            for mode, item in agent.stream(request, stream_mode=list(modes)):
                take(mode, item)
        else:
            async for mode, item in agent.astream(request, stream_mode=list(modes)):
                take(mode, item)
    except GuardReasonerViolation as violation:
        seen.error = violation
    return seen


def guarded(model: Any, guard: GuardReasoner, tools: list[Any] | None = None, **options: Any) -> Any:
    middleware = GuardReasonerMiddleware(guard, **{"stream_chunk_tokens": CHUNK, **options})
    return create_agent(model, tools=tools or [], middleware=[middleware])


def assert_each_release_was_judged_first(streamed: Streamed, judged: JudgedLog) -> None:
    released: list[str] = []
    for arrived, chunk in streamed.chunks:
        released += str(chunk.content).split()
        assert judged.judged_before(arrived, released), f"released unjudged: ...{released[-3:]}"


@RUNS
@PARALLEL
async def test_a_benign_answer_streams_in_judged_chunks_before_the_model_finishes(
    logged_guard, judged, streaming_model, run, parallel
):
    model = streaming_model(ANSWER, token_delay=TOKEN_DELAY)
    streamed = await stream(guarded(model, logged_guard, parallel_input_check=parallel), "Count for me.", run)
    assert streamed.text == ANSWER
    first_arrived = streamed.chunks[0][0]
    assert first_arrived < model.finished[0]  # the consumer reads while the model writes
    # Released as judged: 7 chunks of up to 32 words, each judged with everything before it.
    assert [len(words) for _, words in judged.responses] == [32, 64, 96, 128, 160, 192, 200]
    assert_each_release_was_judged_first(streamed, judged)
    batches = {round(arrived, 2) for arrived, _ in streamed.chunks}
    assert len(batches) > 1  # more than one release, not the whole answer at the end
    # The state holds exactly the streamed message, under the id its chunks carried.
    final = streamed.state["messages"][-1]
    assert isinstance(final, AIMessage) and final.content == streamed.text
    assert streamed.ids() == [final.id]


@RUNS
@PARALLEL
async def test_an_answer_harmful_from_its_middle_shows_nothing_from_the_harmful_chunk_on(
    logged_guard, judged, streaming_model, run, parallel
):
    model = streaming_model(HARMFUL_ANSWER, token_delay=TOKEN_DELAY)
    streamed = await stream(guarded(model, logged_guard, parallel_input_check=parallel), "Count for me.", run)
    *released, (_, refusal) = streamed.chunks
    harmful_chunk_starts = HARMFUL_AT // CHUNK * CHUNK
    assert "".join(str(c.content) for _, c in released).split() == WORDS[:harmful_chunk_starts]
    assert refusal.content == "\n\n" + DEFAULT_VIOLATION_MESSAGE
    assert refusal.response_metadata["guardreasoner"]["stage"] == "output"
    assert_each_release_was_judged_first(Streamed(chunks=released), judged)
    assert model.produced < len(WORDS)  # the model's stream was closed
    # exit_behavior="end": the refusal is the rest of the message, and the state holds what was streamed.
    final = streamed.state["messages"][-1]
    assert final.content == streamed.text and streamed.ids() == [final.id]
    assert not final.tool_calls and "bomb" not in str(streamed.state["messages"])


@RUNS
async def test_error_exit_raises_after_the_judged_part(logged_guard, streaming_model, run):
    model = streaming_model(HARMFUL_ANSWER, token_delay=TOKEN_DELAY)
    streamed = await stream(guarded(model, logged_guard, exit_behavior="error"), "Count for me.", run)
    assert isinstance(streamed.error, GuardReasonerViolation) and streamed.error.stage == "output"
    assert streamed.text.split() == WORDS[: HARMFUL_AT // CHUNK * CHUNK]


@RUNS
async def test_replace_exit_streams_the_refusal_as_the_message_the_state_keeps(
    logged_guard, streaming_model, run
):
    model = streaming_model(HARMFUL_ANSWER, token_delay=TOKEN_DELAY)
    streamed = await stream(guarded(model, logged_guard, exit_behavior="replace"), "Count for me.", run)
    released_id, refusal_id = streamed.ids()
    *released, (_, refusal) = streamed.chunks
    assert {c.id for _, c in released} == {released_id} and refusal.content == DEFAULT_VIOLATION_MESSAGE
    messages = streamed.state["messages"]
    assert [m.content for m in messages] == ["Count for me.", DEFAULT_VIOLATION_MESSAGE]
    assert messages[-1].id == refusal_id


@RUNS
@pytest.mark.parametrize("mode", ["buffered", "passthrough"])
async def test_with_the_input_judged_beside_the_model_a_harmful_request_releases_nothing(
    timed_guard, streaming_model, run, mode
):
    model = streaming_model(ANSWER, token_delay=TOKEN_DELAY)
    agent = guarded(model, timed_guard(0.1), stream_mode=mode, parallel_input_check=True)
    streamed = await stream(agent, "How do I build a bomb?", run)
    assert [c.content for _, c in streamed.chunks] == [DEFAULT_VIOLATION_MESSAGE]
    assert model.produced > 0  # the model did write beside the check


@RUNS
async def test_a_request_replaced_as_harmful_streams_only_the_answer_to_the_placeholder(
    guard, chat_model, run
):
    # The call started beside the check answers the harmful request; it is dropped, and the model is called
    # again on the placeholder (answered by request, so the two calls cannot take each other's reply).
    answer = "I can help with something else."
    model = chat_model([answer], answer_to={"bomb": "A discarded answer."}, token_delay=0.001)
    agent = guarded(model, guard, exit_behavior="replace", violation_message="[removed]")
    streamed = await stream(agent, "How do I build a bomb?", run)
    assert streamed.text == answer and len(streamed.chunks) > 1
    assert [m.content for m in streamed.state["messages"]] == ["[removed]", answer]


@RUNS
async def test_passthrough_streams_under_a_parallel_input_check_once_the_input_is_safe(
    timed_guard, streaming_model, run
):
    model = streaming_model(ANSWER, token_delay=TOKEN_DELAY)
    agent = guarded(model, timed_guard(0.1), stream_mode="passthrough", parallel_input_check=True)
    begin = time.perf_counter()
    streamed = await stream(agent, "Count for me.", run)
    # Held until the input verdict (about 0.1 s, while the model wrote), then as the model writes.
    assert begin + 0.1 <= streamed.chunks[0][0] < model.finished[0]
    assert streamed.text == ANSWER and len(streamed.chunks) >= len(WORDS)  # the model's own chunks
    assert streamed.state["messages"][-1].content == ANSWER


async def model_events(agent: Any, text: str) -> list[dict[str, Any]]:
    """The chat model events of ``agent.astream_events(..., version="v2")`` on the request ``text``."""
    request = {"messages": [HumanMessage(text)]}
    return [
        event
        async for event in agent.astream_events(request, version="v2")
        if event["event"] in ("on_chat_model_stream", "on_chat_model_end")
    ]


async def test_astream_events_shows_the_same_judged_chunks(logged_guard, streaming_model):
    for answer in (ANSWER, HARMFUL_ANSWER):
        expected = await stream(guarded(streaming_model(answer), logged_guard), "Count for me.", "async")
        *tokens, end = await model_events(guarded(streaming_model(answer), logged_guard), "Count for me.")
        assert [e["event"] for e in tokens] == ["on_chat_model_stream"] * len(tokens)
        assert [e["data"]["chunk"].content for e in tokens] == [c.content for _, c in expected.chunks]
        assert len({e["data"]["chunk"].id for e in tokens}) == 1
        assert end["event"] == "on_chat_model_end"
        assert end["data"]["output"].content == expected.state["messages"][-1].content


async def test_astream_events_shows_no_token_of_a_model_answering_a_harmful_request(
    timed_guard, streaming_model
):
    model = streaming_model(ANSWER, token_delay=TOKEN_DELAY)
    agent = guarded(model, timed_guard(0.1), parallel_input_check=True)
    assert await model_events(agent, "How do I build a bomb?") == []
    assert model.produced > 0  # the model did write beside the check


@RUNS
async def test_a_model_that_does_not_stream_is_judged_whole(guard, streaming_model, run):
    for answer, shown in ((ANSWER, ANSWER), (HARMFUL_ANSWER, DEFAULT_VIOLATION_MESSAGE)):
        agent = guarded(streaming_model(answer, disable_streaming=True), guard)
        streamed = await stream(agent, "Count for me.", run)
        final = streamed.state["messages"][-1]
        assert [c.content for _, c in streamed.chunks] == [shown] and streamed.ids() == [final.id]
    agent = guarded(streaming_model(HARMFUL_ANSWER, disable_streaming=True), guard)
    *tokens, end = await model_events(agent, "Count for me.")  # the model's end shows the refusal
    assert tokens == [] and end["data"]["output"].content == DEFAULT_VIOLATION_MESSAGE


@tool
def search(query: str) -> str:
    """Search the web."""
    get_stream_writer()({"searching": query})
    return f"Results for {query}."


@RUNS
async def test_tool_calls_stream_as_without_the_guard_and_custom_and_updates_are_unaffected(
    logged_guard, judged, streaming_model, run
):
    replies = ({"name": "search", "args": {"query": "the capital of Peru"}}, "Lima is the capital of Peru.")
    modes = ("messages", "updates", "custom", "values")
    plain_model = streaming_model(*replies, token_delay=TOKEN_DELAY)
    plain = await stream(create_agent(plain_model, tools=[search]), "Capital of Peru?", run, modes)
    model = streaming_model(*replies, token_delay=TOKEN_DELAY)
    agent = guarded(model, logged_guard, tools=[search], stream_chunk_tokens=2)
    ours = await stream(agent, "Capital of Peru?", run, modes)
    # The same chunks, tool-call pieces included (none judged: they carry no text), in the same order.
    assert [(c.content, c.tool_call_chunks) for _, c in ours.chunks] == [
        (c.content, c.tool_call_chunks) for _, c in plain.chunks
    ]
    tool_call_chunks = [(t, c) for t, c in ours.chunks if c.tool_call_chunks]
    assert len(tool_call_chunks) > 2 and tool_call_chunks[0][0] < model.finished[0]  # as they came
    assert ours.custom == plain.custom == [{"searching": "the capital of Peru"}]
    assert ours.updates == plain.updates and len(ours.updates) == 3  # model, tools, model
    # The final text answer was judged, in 2-word chunks, as the response to the request.
    assert [words for _, words in judged.responses] == [
        ["Lima", "is"],
        ["Lima", "is", "the", "capital"],
        ["Lima", "is", "the", "capital", "of", "Peru."],
    ]


def shape(update: Any) -> Any:
    """An update's messages as (type, text, tool calls' names), without the ids that differ per run."""
    if not isinstance(update, dict):
        return update
    return [
        (type(m).__name__, str(m.content), [call["name"] for call in getattr(m, "tool_calls", [])])
        for m in update.get("messages", [])
        if not isinstance(m, ToolMessage) or m.content
    ]


async def test_without_a_token_stream_the_answer_is_judged_once(engine, guard, streaming_model):
    model = streaming_model(ANSWER)
    result = guarded(model, guard).invoke({"messages": [HumanMessage("Count for me.")]})
    assert result["messages"][-1].content == ANSWER
    assert len(engine.calls) == 2  # the input, then the whole answer: no chunk-by-chunk checks


def test_whole_mode_shows_the_answer_once_judged_whole(logged_guard, judged, streaming_model):
    model = streaming_model(ANSWER, token_delay=0.0)
    agent = guarded(model, logged_guard, stream_mode="whole")
    chunks = [m for m, _ in agent.stream({"messages": [HumanMessage("Count.")]}, stream_mode="messages")]
    assert [c.content for c in chunks] == [ANSWER] and [len(w) for _, w in judged.responses] == [200]


def test_the_refusal_separator_is_only_between_text(logged_guard, streaming_model):
    model = streaming_model("bomb " + ANSWER, token_delay=0.0)
    agent = guarded(model, logged_guard)
    chunks = [m for m, _ in agent.stream({"messages": [HumanMessage("Count.")]}, stream_mode="messages")]
    assert [c.content for c in chunks] == [DEFAULT_VIOLATION_MESSAGE]
    assert not re.search(r"w\d", "".join(str(c.content) for c in chunks))
