"""Fake chat models that record their input, a timed one, and one that streams slowly (the scripted guard is in
tests/conftest.py)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from langchain_core.language_models.chat_models import BaseChatModel, generate_from_stream
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field


class RecordingChatModel(GenericFakeChatModel):
    """GenericFakeChatModel that records the messages of each call and accepts tools (for create_agent).

    ``delay`` seconds pass before each answer, and ``token_delay`` before each streamed chunk (the content
    is streamed word by word, spaces as their own chunks, as GenericFakeChatModel does). ``answer_to`` maps
    a word to the reply of any call whose last message has it (that call takes nothing from ``replies``)."""

    seen: list[list[BaseMessage]] = []
    answer_to: dict[str, str] = {}
    delay: float = 0.0
    token_delay: float = 0.0
    streamed: int = 0
    """Chunks the model produced while streaming (not what reached the consumer)."""

    def __init__(self, replies: list[AIMessage | str], **kwargs: Any):
        super().__init__(messages=iter(replies), seen=[], **kwargs)

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.seen.append(list(messages))
        time.sleep(self.delay)
        return self._answer(messages, stop=stop, run_manager=run_manager, **kwargs)

    async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs):
        self.seen.append(list(messages))
        await asyncio.sleep(self.delay)
        return self._answer(messages, stop=stop, run_manager=run_manager, **kwargs)

    def _answer(self, messages, **kwargs) -> ChatResult:
        reply = next((text for word, text in self.answer_to.items() if word in messages[-1].text), None)
        if reply is None:
            return super()._generate(messages, **kwargs)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=reply))])

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        for chunk in super()._stream(messages, stop=stop, run_manager=run_manager, **kwargs):
            time.sleep(self.token_delay)
            self.streamed += 1
            yield chunk

    def bind_tools(self, tools, **kwargs):
        return self


@pytest.fixture
def chat_model():
    return RecordingChatModel


class StreamingChatModel(BaseChatModel):
    """Streams each reply (one per call, in order) one piece per ``token_delay`` seconds, sync and async:
    a str word by word (each word with its trailing space), a tool call (``{"name", "args"}``) as a
    tool-call chunk carrying its name and id, then its arguments' JSON in pieces of ``args_piece``
    characters. Records how many pieces it wrote (``produced``) and when each call wrote its last one
    (``finished``, ``time.perf_counter()`` times)."""

    replies: list[str | dict[str, Any]]
    token_delay: float = 0.0
    args_piece: int = 4
    calls: int = 0
    produced: int = 0
    finished: list[float] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "streaming-fake"

    def _pieces(self) -> list[AIMessageChunk]:
        reply = self.replies[self.calls]
        self.calls += 1
        if isinstance(reply, str):
            words = reply.split(" ")
            return [
                AIMessageChunk(content=w + (" " if i < len(words) - 1 else "")) for i, w in enumerate(words)
            ]
        args, call_id = json.dumps(reply["args"]), f"call-{self.calls}"
        head = tool_call_chunk(name=reply["name"], args="", id=call_id, index=0)
        tail = [
            tool_call_chunk(args=args[i : i + self.args_piece], index=0)
            for i in range(0, len(args), self.args_piece)
        ]
        return [AIMessageChunk(content="", tool_call_chunks=[chunk]) for chunk in (head, *tail)]

    def _wrote(self, piece: AIMessageChunk, last: bool) -> ChatGenerationChunk:
        self.produced += 1
        if last:
            self.finished.append(time.perf_counter())
        return ChatGenerationChunk(message=piece)

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        pieces = self._pieces()
        for i, piece in enumerate(pieces):
            time.sleep(self.token_delay)
            yield self._wrote(piece, i == len(pieces) - 1)

    async def _astream(self, messages, stop=None, run_manager=None, **kwargs):
        pieces = self._pieces()
        for i, piece in enumerate(pieces):
            await asyncio.sleep(self.token_delay)
            yield self._wrote(piece, i == len(pieces) - 1)

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        return generate_from_stream(self._stream(messages))

    def bind_tools(self, tools, **kwargs):
        return self


@pytest.fixture
def streaming_model():
    """``streaming_model(*replies, token_delay=...)``: a :class:`StreamingChatModel`."""
    return lambda *replies, **options: StreamingChatModel(replies=list(replies), **options)


class ToolLoopChatModel(GenericFakeChatModel):
    """Answers from its input, so concurrent runs don't share a reply queue: a human message last gets a
    call of the ``search`` tool, a tool result last gets ``answer`` (each after ``delay`` seconds)."""

    delay: float = 0.0
    answer: str = "Here is what I found."

    def __init__(self, **kwargs: Any):
        super().__init__(messages=iter(()), **kwargs)

    def _reply(self, messages) -> AIMessage:
        if messages[-1].type == "human":
            call = {"name": "search", "args": {"query": messages[-1].text}, "id": f"call-{id(messages)}"}
            return AIMessage(content="", tool_calls=[call])
        return AIMessage(content=self.answer)

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        time.sleep(self.delay)
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])

    async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs):
        await asyncio.sleep(self.delay)
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])

    def bind_tools(self, tools, **kwargs):
        return self


@pytest.fixture
def tool_loop_agent():
    """``build(delay=0.0, answer=...)``: a create_agent with a ``search`` tool on a ToolLoopChatModel."""
    from langchain.agents import create_agent
    from langchain_core.tools import tool

    @tool
    def search(query: str) -> str:
        """Search the web."""
        return f"Results for {query}."

    def build(delay: float = 0.0, answer: str = "Here is what I found."):
        return create_agent(ToolLoopChatModel(delay=delay, answer=answer), tools=[search])

    return build


@pytest.fixture
def serial_then_parallel(timed_guard):
    """``await check(build, value, run)``: runs ``build(parallel, guard, model_delay)`` (a runnable on a
    guard whose check takes 0.5 s and a model that answers in ``model_delay`` = 0.6 s) on ``value``, serial
    then parallel, and asserts that a turn costs their sum in series and about the longer one in parallel.
    Returns both outputs."""
    check_seconds, model_delay = 0.5, 0.6

    async def check(build, value, run: str) -> list[Any]:
        times, outputs = {}, []
        for parallel in (False, True):
            runnable = build(parallel, timed_guard(check_seconds), model_delay)
            begin = time.perf_counter()
            outputs.append(runnable.invoke(value) if run == "sync" else await runnable.ainvoke(value))
            times[parallel] = time.perf_counter() - begin
        assert times[False] >= check_seconds + model_delay
        assert times[True] <= 1.10 * max(check_seconds, model_delay), times
        return outputs

    return check
