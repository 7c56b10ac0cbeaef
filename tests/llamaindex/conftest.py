"""Scripted LlamaIndex LLMs: a completion LLM and a tool-calling chat LLM (the scripted guard is in
tests/conftest.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    LLMMetadata,
)
from llama_index.core.bridge.pydantic import Field
from llama_index.core.chat_engine import SimpleChatEngine
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.memory import ChatMemoryBuffer
from llama_index.core.query_engine import CustomQueryEngine
from llama_index.core.tools import ToolSelection


class ScriptedLLM(CustomLLM):
    """Answers each completion with the next scripted reply (streamed word by word) and records prompts;
    ``produced`` keeps every word a stream generated (whether or not anyone read it), one per
    ``token_delay`` seconds."""

    replies: list[str] = Field(default_factory=list)
    prompts: list[str] = Field(default_factory=list)
    produced: list[str] = Field(default_factory=list)
    token_delay: float = 0.0

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata()

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        self.prompts.append(prompt)
        return CompletionResponse(text=self.replies.pop(0))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any):
        self.prompts.append(prompt)
        words = self.replies.pop(0).split(" ")

        def gen():
            text = ""
            for i, word in enumerate(words):
                time.sleep(self.token_delay)
                self.produced.append(word)
                delta = word if i == 0 else " " + word
                text += delta
                yield CompletionResponse(text=text, delta=delta)

        return gen()


@pytest.fixture
def scripted_llm():
    return lambda *replies: ScriptedLLM(replies=list(replies))


class ToolCallingLLM(MockFunctionCallingLLM):
    """A function-calling LLM that plays a script: a ``(tool_name, kwargs)`` turn asks for that tool, a str
    turn answers (streamed word by word). ``calls`` keeps each call's messages; ``delay`` seconds pass
    before the first token and ``token_delay`` before each streamed word; ``produced`` keeps every word
    the stream generated (whether or not anyone read it)."""

    script: list[Any] = Field(default_factory=list)
    calls: list[list[ChatMessage]] = Field(default_factory=list)
    produced: list[str] = Field(default_factory=list)
    delay: float = 0.0
    token_delay: float = 0.0

    def _next(self, messages: Sequence[ChatMessage]) -> ChatMessage:
        self.calls.append(list(messages))
        turn = self.script.pop(0)
        if isinstance(turn, str):
            return ChatMessage(role="assistant", content=turn)
        name, kwargs = turn
        selection = ToolSelection(tool_id=f"call-{len(self.calls)}", tool_name=name, tool_kwargs=kwargs)
        return ChatMessage(role="assistant", content="", additional_kwargs={"tool_calls": [selection]})

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        message = self._next(messages)
        await asyncio.sleep(self.delay)
        self.produced.extend((message.content or "").split())
        return ChatResponse(message=message, delta=message.content)

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Any:
        message = self._next(messages)

        async def stream():
            await asyncio.sleep(self.delay)
            words = (message.content or "").split(" ") if message.content else [""]
            text = ""
            for index, word in enumerate(words):
                await asyncio.sleep(self.token_delay)
                delta = word if index == 0 else " " + word
                text += delta
                self.produced.append(word)
                partial = ChatMessage(
                    role="assistant", content=text, additional_kwargs=message.additional_kwargs
                )
                yield ChatResponse(message=partial, delta=delta)

        return stream()


@pytest.fixture
def tool_llm():
    return lambda *script, **options: ToolCallingLLM(script=list(script), **options)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """In this folder: an exception in a background thread fails the test; the workflows runtime's
    pydantic deprecation noise (``inspect.getmembers`` on every agent, plain ones too) is silenced."""
    for item in items:
        if "tests/llamaindex/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning"))
            item.add_marker(pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20"))
            item.add_marker(
                pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince211")
            )


@pytest.fixture
def simple_chat():
    """``simple_chat(llm)``: a SimpleChatEngine on a ``ChatMemoryBuffer`` (see :func:`simple_chat_engine`)."""
    return simple_chat_engine


def simple_chat_engine(llm: Any) -> SimpleChatEngine:
    """A SimpleChatEngine on a ``ChatMemoryBuffer``.

    Not LlamaIndex 0.14's default ``Memory``: that keeps an aiosqlite connection (an in-memory SQLite
    chat store) that nothing closes; the garbage collector finalizes it later, and aiosqlite's ``__del__``
    then binds its stop signal to whatever event loop the collecting thread has, often one already closed
    (pytest-asyncio's at teardown, or the throwaway loops of llama_index's ``asyncio_run``), so its worker
    thread dies with "RuntimeError: Event loop is closed" at a random later moment. That was the
    intermittent thread error of these tests; it is LlamaIndex's, not the adapter's.
    """
    return SimpleChatEngine.from_defaults(llm=llm, memory=ChatMemoryBuffer.from_defaults())


class DelayedLLM(CustomLLM):
    """A completion LLM that takes ``delay`` seconds (asyncio.sleep when awaited) and echoes the query of a
    query engine's prompt ("Answer: <query>", else "Answer: <the prompt's last line>"); ``calls`` counts."""

    delay: float = 0.0
    calls: int = 0

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata()

    def _answer(self, prompt: str) -> CompletionResponse:
        self.calls += 1
        lines = prompt.strip().splitlines()
        query = next(
            (line.removeprefix("Query: ") for line in lines if line.startswith("Query: ")), lines[-1]
        )
        return CompletionResponse(text="Answer: " + query)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        time.sleep(self.delay)
        return self._answer(prompt)

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        await asyncio.sleep(self.delay)
        return self._answer(prompt)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any):
        raise NotImplementedError("DelayedLLM does not stream.")


@pytest.fixture
def timed_query_engine():
    """``timed_query_engine(delay)``: a real vector-index query engine on a one-node index whose LLM takes
    ``delay`` seconds per call (``light=True``: a query engine that only calls the LLM); returns
    ``(engine, llm)``."""
    from llama_index.core import VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.schema import TextNode

    def build(delay: float, *, light: bool = False, **options: Any):
        llm = DelayedLLM(delay=delay)
        if light:
            return LightQueryEngine(llm=llm), llm
        nodes = [TextNode(text="Lima is the capital of Peru.")]
        index = VectorStoreIndex(nodes, embed_model=MockEmbedding(embed_dim=8))
        return index.as_query_engine(llm=llm, **options), llm

    return build


class LimaQueryEngine(CustomQueryEngine):
    """Answers every query with "Lima." (no LLM, no retrieval)."""

    def custom_query(self, query_str: str) -> str:
        return "Lima."


class LightQueryEngine(CustomQueryEngine):
    """A query engine that only asks its LLM (no retrieval): its wall time is the LLM's, little CPU."""

    llm: Any

    def custom_query(self, query_str: str) -> str:
        return self.llm.complete(query_str).text

    async def acustom_query(self, query_str: str) -> str:
        return (await self.llm.acomplete(query_str)).text
