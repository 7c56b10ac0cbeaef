"""A chat engine that GuardReasoner checks on the way in (the user's message) and out (the answer)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Any

from guardreasoner import Verdict
from guardreasoner.guard import GuardReasoner
from guardreasoner.integrations import GuardProvider, is_violation
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole
from llama_index.core.chat_engine.types import (
    AGENT_CHAT_RESPONSE_TYPE,
    AgentChatResponse,
    BaseChatEngine,
    StreamingAgentChatResponse,
)
from llama_index.core.memory import BaseMemory

from guardreasoner_llamaindex._guard import Stage, text_or_none, verdict_metadata
from guardreasoner_llamaindex.errors import GuardReasonerViolation
from guardreasoner_llamaindex.query_engine import DEFAULT_REFUSAL, OnViolation


class GuardedChatEngine(BaseChatEngine):
    """Wrap any :class:`BaseChatEngine`: judge each user message before it runs and the answer after.

    >>> chat = GuardedChatEngine(index.as_chat_engine(llm=llm), guard=guard)  # doctest: +SKIP

    The user's message is judged alone (GuardReasoner judges one exchange; earlier turns are not shown to
    it); the answer is judged as the response to that message, so a refusal of a harmful message passes. A
    verdict the guard's policy decided blocks under ``fail_closed`` and passes under ``fail_open``.

    ``on_violation="raise"`` (default) raises :class:`~guardreasoner_llamaindex.GuardReasonerViolation`
    (with the verdict); ``"refuse"`` answers ``refusal_message`` instead (with ``metadata["guardreasoner"]``
    on non-streaming answers). A flagged message never reaches the wrapped engine, so nothing of it enters
    the conversation's memory. A flagged answer has already been written to the wrapped engine's memory; when
    that engine keeps a ``BaseMemory`` at ``_memory`` or ``memory`` (the built-in chat engines do), the answer
    there is replaced by ``refusal_message``, in both modes, so it does not feed the next turn.

    Streaming (``stream_chat``/``astream_chat``): the whole answer is generated and judged before anything
    is yielded; the returned response then yields the judged text (or the refusal) at once. With
    ``check_output=False`` the wrapped engine's stream is returned as it is.
    """

    def __init__(
        self,
        chat_engine: BaseChatEngine,
        guard: GuardReasoner | None = None,
        *,
        check_input: bool = True,
        check_output: bool = True,
        on_violation: OnViolation = "raise",
        refusal_message: str = DEFAULT_REFUSAL,
        model: str | None = None,
        **guard_options: Any,
    ):
        if on_violation not in ("raise", "refuse"):
            raise ValueError(f"on_violation must be 'raise' or 'refuse', got {on_violation!r}.")
        self._chat_engine = chat_engine
        self._provider = GuardProvider(guard, model, guard_options)
        self.check_input = check_input
        self.check_output = check_output
        self.on_violation = on_violation
        self.refusal_message = refusal_message

    @property
    def guard(self) -> GuardReasoner:
        return self._provider.get()

    @property
    def chat_history(self) -> list[ChatMessage]:
        return self._chat_engine.chat_history

    def reset(self) -> None:
        self._chat_engine.reset()

    # -- chat -----------------------------------------------------------------------------------------

    def chat(self, message: str, chat_history: list[ChatMessage] | None = None) -> AGENT_CHAT_RESPONSE_TYPE:
        if (refusal := self._check_input(message, self._classify(message))) is not None:
            return refusal
        response = self._chat_engine.chat(message, chat_history)
        verdict = self._classify(message, str(response))
        if self._blocks_output(verdict):
            self._scrub_memory(str(response))
            return self._refuse("output", verdict, str(response))
        return response

    async def achat(
        self, message: str, chat_history: list[ChatMessage] | None = None
    ) -> AGENT_CHAT_RESPONSE_TYPE:
        if (refusal := self._check_input(message, await self._aclassify(message))) is not None:
            return refusal
        response = await self._chat_engine.achat(message, chat_history)
        verdict = await self._aclassify(message, str(response))
        if self._blocks_output(verdict):
            await self._ascrub_memory(str(response))
            return self._refuse("output", verdict, str(response))
        return response

    def stream_chat(
        self, message: str, chat_history: list[ChatMessage] | None = None
    ) -> StreamingAgentChatResponse:
        if (refusal := self._check_input(message, self._classify(message))) is not None:
            return _stream_of(refusal.response)
        streamed = self._chat_engine.stream_chat(message, chat_history)
        if not self.check_output:
            return streamed
        text = "".join(streamed.response_gen).strip()  # returns once the answer is in memory
        verdict = self._classify(message, text)
        if self._blocks_output(verdict):
            self._scrub_memory(text)
            return _stream_of(self._refuse("output", verdict, text).response)
        return _stream_of(text, streamed)

    async def astream_chat(
        self, message: str, chat_history: list[ChatMessage] | None = None
    ) -> StreamingAgentChatResponse:
        if (refusal := self._check_input(message, await self._aclassify(message))) is not None:
            return _stream_of(refusal.response)
        streamed = await self._chat_engine.astream_chat(message, chat_history)
        if not self.check_output:
            return streamed
        text = "".join([delta async for delta in streamed.async_response_gen()]).strip()
        verdict = await self._aclassify(message, text)
        if self._blocks_output(verdict):
            await self._ascrub_memory(text)
            return _stream_of(self._refuse("output", verdict, text).response)
        return _stream_of(text, streamed)

    # -- internals ------------------------------------------------------------------------------------

    def _classify(self, message: str, answer: str | None = None) -> Verdict | None:
        """The verdict for the message (and answer), or None when that side is not checked or has no text."""
        if not self._wants(message, answer):
            return None
        return self.guard.classify(message, answer)

    async def _aclassify(self, message: str, answer: str | None = None) -> Verdict | None:
        if not self._wants(message, answer):
            return None
        return await self.guard.aclassify(message, answer)

    def _wants(self, message: str, answer: str | None) -> bool:
        if text_or_none(message) is None:
            return False
        if answer is None:
            return self.check_input
        return self.check_output and text_or_none(answer) is not None

    def _check_input(self, message: str, verdict: Verdict | None) -> AgentChatResponse | None:
        if verdict is None or not is_violation(verdict, judged_on="request"):
            return None
        return self._refuse("input", verdict, message)

    @staticmethod
    def _blocks_output(verdict: Verdict | None) -> bool:
        return verdict is not None and is_violation(verdict, judged_on="response")

    def _refuse(self, stage: Stage, verdict: Verdict, content: str) -> AgentChatResponse:
        if self.on_violation == "raise":
            raise GuardReasonerViolation(verdict=verdict, stage=stage, content=content)
        return AgentChatResponse(
            response=self.refusal_message, metadata={"guardreasoner": verdict_metadata(stage, verdict)}
        )

    def _memory(self) -> BaseMemory | None:
        memory = getattr(self._chat_engine, "_memory", None) or getattr(self._chat_engine, "memory", None)
        return memory if isinstance(memory, BaseMemory) else None

    def _scrub_memory(self, answer: str) -> None:
        """Replace the flagged answer in the wrapped engine's memory, when it has one we can reach."""
        if (memory := self._memory()) is not None and (messages := self._scrubbed(memory.get_all(), answer)):
            memory.set(messages)

    async def _ascrub_memory(self, answer: str) -> None:
        if (memory := self._memory()) is not None and (
            messages := self._scrubbed(await memory.aget_all(), answer)
        ):
            await memory.aset(messages)

    def _scrubbed(self, messages: list[ChatMessage], answer: str) -> list[ChatMessage] | None:
        """The history with its last assistant message replaced, if that message is the flagged answer."""
        for index in range(len(messages) - 1, -1, -1):
            if messages[index].role == MessageRole.ASSISTANT:
                if (messages[index].content or "").strip() != answer.strip():
                    return None
                replaced = list(messages)
                replaced[index] = ChatMessage(role=MessageRole.ASSISTANT, content=self.refusal_message)
                return replaced
        return None


def _stream_of(text: str, like: StreamingAgentChatResponse | None = None) -> StreamingAgentChatResponse:
    """A finished streaming response that yields ``text`` at once, to sync and async readers alike."""

    def once() -> Generator[ChatResponse, None, None]:
        yield ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=text)

    async def aonce() -> AsyncGenerator[ChatResponse, None]:
        yield ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=text)

    return StreamingAgentChatResponse(
        response=text,
        sources=list(like.sources) if like is not None and text == like.response else [],
        source_nodes=list(like.source_nodes) if like is not None and text == like.response else [],
        chat_stream=once(),
        achat_stream=aonce(),
        is_writing_to_memory=False,
    )
