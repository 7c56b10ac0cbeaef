"""A chat engine that GuardReasoner checks on the way in (the user's message) and out (the answer)."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import AsyncGenerator, Callable, Generator
from functools import partial
from typing import Any, TypeVar

from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole
from llama_index.core.chat_engine.types import (
    AGENT_CHAT_RESPONSE_TYPE,
    AgentChatResponse,
    BaseChatEngine,
    StreamingAgentChatResponse,
)
from llama_index.core.memory import BaseMemory
from llama_index.postprocessor.guardreasoner._common import (
    Stage,
    folded_request,
    refusal_metadata,
    text_or_none,
)
from llama_index.postprocessor.guardreasoner._streams import aguard_stream, guard_stream
from llama_index.postprocessor.guardreasoner._tracing import SPANS

from guardreasoner import Verdict
from guardreasoner.guard import GuardReasoner
from guardreasoner.integrations import (
    DEFAULT_HISTORY_TURNS,
    DEFAULT_STREAM_CHUNK_TOKENS,
    DEFAULT_VIOLATION_MESSAGE,
    ExitBehavior,
    StreamMode,
    is_violation,
)
from guardreasoner.integrations.guarding import GuardedOptions, Guarding
from guardreasoner.integrations.parallel import arun_beside_check

T = TypeVar("T")


class GuardedChatEngine(GuardedOptions, BaseChatEngine):
    """Wrap any :class:`BaseChatEngine`: judge each user message before it runs and the answer after.

    >>> chat = GuardedChatEngine(index.as_chat_engine(llm=llm), guard=guard)  # doctest: +SKIP

    The guard reads the user's message with up to ``history_window`` earlier turns of the conversation
    folded in (:func:`guardreasoner.integrations.history.fold_history`; 0: the message alone), so a harmful
    request split over turns is caught; the answer is judged as the response to that, so a refusal of a
    harmful message passes. A verdict the guard's policy decided blocks under ``fail_closed`` and passes
    under ``fail_open``.

    ``exit_behavior="error"`` (default) raises :class:`~guardreasoner.integrations.GuardReasonerViolation`;
    ``"end"`` and ``"replace"`` answer ``violation_message`` (a template) instead, with
    ``metadata["guardreasoner"]`` (stage and full verdict) on non-streaming answers. A flagged message never
    stays in the conversation's memory. A flagged answer has already been written to the wrapped engine's
    memory; when that engine keeps a ``BaseMemory`` at ``_memory`` or ``memory`` (the built-in chat engines
    do), the answer there is replaced by the refusal, under every behaviour, so it does not feed the next turn.

    ``parallel_input_check`` (default False: the wrapped engine writes the turn into its memory as it runs)
    starts ``chat``/``achat`` beside the input check; on a harmful verdict the call is cancelled (async) or
    waited for (sync), and the memory is put back as it was before the turn. Streamed turns check the input
    first. Streaming answers follow ``stream_mode`` (``"buffered"`` by default, in chunks of
    ``stream_chunk_tokens`` tokens; ``"whole"``; ``"passthrough"``); with ``check_output=False`` the wrapped
    engine's stream is returned as it is.

    Only chat engines are accepted: a LlamaIndex 0.14 agent (``FunctionAgent``, ``ReActAgent``,
    ``AgentWorkflow``) has no ``chat`` method; guard it with :class:`GuardedAgent`.

    Each check is a ``GuardReasoner.<stage>`` span of LlamaIndex's instrumentation under the chat's span,
    its verdict in a ``GuardReasonerVerdictEvent``.
    """

    def __init__(
        self,
        chat_engine: BaseChatEngine,
        guard: GuardReasoner | None = None,
        *,
        check_input: bool = True,
        check_output: bool = True,
        exit_behavior: ExitBehavior = "error",
        violation_message: str = DEFAULT_VIOLATION_MESSAGE,
        history_window: int = DEFAULT_HISTORY_TURNS,
        parallel_input_check: bool = False,
        stream_mode: StreamMode = "buffered",
        stream_chunk_tokens: int = DEFAULT_STREAM_CHUNK_TOKENS,
        model: str | None = None,
        **guard_options: Any,
    ):
        if not isinstance(chat_engine, BaseChatEngine):
            hint = (
                " A LlamaIndex agent or workflow has no chat(): guard it with GuardedAgent."
                if hasattr(chat_engine, "run")
                else ""
            )
            raise TypeError(
                f"GuardedChatEngine wraps a LlamaIndex BaseChatEngine, got {type(chat_engine).__name__}.{hint}"
            )
        self._chat_engine = chat_engine
        self._guarding = Guarding.from_arguments(locals(), tracer=SPANS)

    @property
    def chat_history(self) -> list[ChatMessage]:
        return self._chat_engine.chat_history

    def reset(self) -> None:
        self._chat_engine.reset()

    # -- chat -----------------------------------------------------------------------------------------

    def chat(self, message: str, chat_history: list[ChatMessage] | None = None) -> AGENT_CHAT_RESPONSE_TYPE:
        prompt = self._request(message, chat_history)
        call = lambda: self._chat_engine.chat(message, chat_history)  # noqa: E731
        if prompt is None:
            response = call()
        elif self.parallel_input_check:
            verdict, response = self._beside_check(prompt, call)
            if verdict is not None:
                return self._refuse("input", verdict, message)
        else:
            if _blocks_request(verdict := self._guarding.classify("input", prompt)):
                return self._refuse("input", verdict, message)
            response = call()
        return self._judge_answer(prompt or message, response, partial(self._guarding.classify, "output"))

    async def achat(
        self, message: str, chat_history: list[ChatMessage] | None = None
    ) -> AGENT_CHAT_RESPONSE_TYPE:
        prompt = self._request(message, chat_history)
        if prompt is None:
            response = await self._chat_engine.achat(message, chat_history)
        elif self.parallel_input_check:
            snapshot = await self._asnapshot()
            held = await arun_beside_check(
                self._guarding.aclassify("input", prompt),
                lambda: self._chat_engine.achat(message, chat_history),
                blocks=_blocks_request,
            )
            if held.blocked:
                await self._arestore(snapshot)
                return self._refuse("input", held.verdict, message)
            response = held.result
        else:
            if _blocks_request(verdict := await self._guarding.aclassify("input", prompt)):
                return self._refuse("input", verdict, message)
            response = await self._chat_engine.achat(message, chat_history)
        if not self._wants_output(response):
            return response
        verdict = await self._guarding.aclassify("output", prompt or message, str(response))
        if is_violation(verdict, judged_on="response"):
            await self._ascrub_memory(str(response))
            return self._refuse("output", verdict, str(response))
        return response

    def stream_chat(
        self, message: str, chat_history: list[ChatMessage] | None = None
    ) -> StreamingAgentChatResponse:
        prompt = self._request(message, chat_history)
        if prompt is not None and _blocks_request(verdict := self._guarding.classify("input", prompt)):
            return _stream_of(self._refuse("input", verdict, message).response)
        streamed = self._chat_engine.stream_chat(message, chat_history)
        if not self.check_output:
            return streamed
        guarded = guard_stream(
            self._guarding.at_current_step(),
            prompt or message,
            streamed.response_gen,
            text_of=str,
            refusal_piece=str,
            on_violation=lambda _verdict, content: self._after_stream(streamed, content),
        )
        return _stream_from(guarded, streamed)

    async def astream_chat(
        self, message: str, chat_history: list[ChatMessage] | None = None
    ) -> StreamingAgentChatResponse:
        prompt = self._request(message, chat_history)
        if prompt is not None and _blocks_request(verdict := await self._guarding.aclassify("input", prompt)):
            return _stream_of(self._refuse("input", verdict, message).response)
        streamed = await self._chat_engine.astream_chat(message, chat_history)
        if not self.check_output:
            return streamed

        async def scrub(_verdict: Verdict, content: str) -> None:
            # the stream was closed, so the wrapped engine's memory writer has finished: scrub what it wrote
            await self._ascrub_memory(content)

        guarded = aguard_stream(
            self._guarding.at_current_step(),
            prompt or message,
            streamed.async_response_gen(),
            text_of=str,
            refusal_piece=str,
            on_violation=scrub,
        )
        return _astream_from(guarded, streamed)

    # -- internals ------------------------------------------------------------------------------------

    def _request(self, message: str, chat_history: list[ChatMessage] | None) -> str | None:
        """What the guard reads as the request (history folded in), or None when the input is not judged."""
        if not self.check_input or text_or_none(message) is None:
            return None
        history = self.chat_history if chat_history is None else chat_history
        return folded_request(history, message, self.history_window)

    def _wants_output(self, response: Any) -> bool:
        return self.check_output and text_or_none(str(response)) is not None

    def _judge_answer(self, prompt: str, response: Any, classify: Callable[[str, str], Verdict]) -> Any:
        if not self._wants_output(response):
            return response
        verdict = classify(prompt, str(response))
        if is_violation(verdict, judged_on="response"):
            self._scrub_memory(str(response))
            return self._refuse("output", verdict, str(response))
        return response

    def _beside_check(self, prompt: str, call: Callable[[], T]) -> tuple[Verdict | None, T | None]:
        """Run ``call`` in a thread beside the input check: ``(blocking verdict, None)`` or ``(None, result)``.

        Unlike :func:`guardreasoner.integrations.parallel.run_beside_check`, a blocked turn waits for the
        call to finish, since the wrapped engine writes the turn into its memory as it runs and the memory
        can only be put back after that.
        """
        snapshot = self._snapshot()
        outcome: dict[str, Any] = {}
        context = contextvars.copy_context()

        def target() -> None:
            try:
                outcome["result"] = context.run(call)
            except BaseException as exc:  # handed to the caller below
                outcome["error"] = exc

        thread = threading.Thread(target=target, name="guardreasoner-chat-beside-check", daemon=True)
        thread.start()
        try:
            verdict = self._guarding.classify("input", prompt)
        finally:
            thread.join()
        if _blocks_request(verdict):
            self._restore(snapshot)
            return verdict, None
        if "error" in outcome:
            raise outcome["error"]
        return None, outcome["result"]

    def _refuse(self, stage: Stage, verdict: Verdict, content: str) -> AgentChatResponse:
        text = self._guarding.refuse(verdict, stage, content)
        return AgentChatResponse(response=text, metadata=refusal_metadata(verdict, stage))

    def _after_stream(self, streamed: StreamingAgentChatResponse, content: str) -> None:
        """A flagged stream: wait for the wrapped engine's memory writer, then scrub the answer it wrote."""
        thread = getattr(streamed, "write_response_to_history_thread", None)
        if thread is not None:
            thread.join()
        self._scrub_memory(content)

    def _memory(self) -> BaseMemory | None:
        memory = getattr(self._chat_engine, "_memory", None) or getattr(self._chat_engine, "memory", None)
        return memory if isinstance(memory, BaseMemory) else None

    def _snapshot(self) -> list[ChatMessage] | None:
        return None if (memory := self._memory()) is None else memory.get_all()

    async def _asnapshot(self) -> list[ChatMessage] | None:
        return None if (memory := self._memory()) is None else await memory.aget_all()

    def _restore(self, snapshot: list[ChatMessage] | None) -> None:
        if snapshot is not None and (memory := self._memory()) is not None:
            memory.set(snapshot)

    async def _arestore(self, snapshot: list[ChatMessage] | None) -> None:
        if snapshot is not None and (memory := self._memory()) is not None:
            await memory.aset(snapshot)

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
        """The history with its last assistant message replaced, if that message holds the flagged text."""
        for index in range(len(messages) - 1, -1, -1):
            if messages[index].role == MessageRole.ASSISTANT:
                if answer.strip() not in (messages[index].content or ""):
                    return None
                replaced = list(messages)
                replaced[index] = ChatMessage(role=MessageRole.ASSISTANT, content=self.violation_message)
                return replaced
        return None


def _blocks_request(verdict: Verdict) -> bool:
    return is_violation(verdict, judged_on="request")


def _chat_response(text: str) -> ChatResponse:
    return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=text)


def _stream_from(
    pieces: Generator[str, None, None], like: StreamingAgentChatResponse
) -> StreamingAgentChatResponse:
    """A streaming response that yields the guarded pieces, to sync readers."""

    def chat_stream() -> Generator[ChatResponse, None, None]:
        for piece in pieces:
            yield _chat_response(piece)

    return _streaming_like(like, chat_stream=chat_stream())


def _astream_from(
    pieces: AsyncGenerator[str, None], like: StreamingAgentChatResponse
) -> StreamingAgentChatResponse:
    """A streaming response that yields the guarded pieces, to async readers."""

    async def achat_stream() -> AsyncGenerator[ChatResponse, None]:
        async for piece in pieces:
            yield _chat_response(piece)

    return _streaming_like(like, achat_stream=achat_stream())


def _streaming_like(like: StreamingAgentChatResponse, **stream: Any) -> StreamingAgentChatResponse:
    """A response streaming ``stream`` (``chat_stream=`` or ``achat_stream=``) with ``like``'s sources, not
    written to memory again (the wrapped engine wrote the turn)."""
    return StreamingAgentChatResponse(
        **stream, sources=list(like.sources), source_nodes=list(like.source_nodes), is_writing_to_memory=False
    )


def _stream_of(text: str) -> StreamingAgentChatResponse:
    """A finished streaming response that yields ``text`` at once, to sync and async readers alike."""

    def once() -> Generator[ChatResponse, None, None]:
        yield _chat_response(text)

    async def aonce() -> AsyncGenerator[ChatResponse, None]:
        yield _chat_response(text)

    return StreamingAgentChatResponse(
        response=text, chat_stream=once(), achat_stream=aonce(), is_writing_to_memory=False
    )
