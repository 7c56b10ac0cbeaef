"""A model call whose streamed tokens are held for the guard: the callbacks it runs with.

LangGraph streams a model's tokens from its callbacks as the model writes them: ``StreamMessagesHandler``
for ``stream_mode="messages"``, and the handlers of ``astream_events`` and ``astream_log``. A guarded agent
shows them only once judged, so :func:`held_callbacks` gives the model call callbacks in which

- LangGraph's messages handlers are left out (the judged chunks reach them from the model node, through
  ``langgraph.graph.message.push_message``);
- every other token-streaming handler is wrapped in a :class:`HeldHandler`, which passes on every event as
  before except the tokens and the end of the model runs the tap takes: those are handed over once judged;
- a :class:`TokenTap` takes each chat model run's chunks, in order, for the judge, and stops the model
  when asked.

A model run tagged ``nostream`` (a middleware's own call, such as a summary) is not taken: LangGraph does not
stream it either.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from langchain_core.callbacks import BaseCallbackManager
from langchain_core.callbacks.manager import ahandle_event, handle_event
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, LLMResult
from langchain_core.tracers._streaming import _StreamingCallbackHandler
from langgraph.constants import TAG_NOSTREAM
from langgraph.pregel._messages import StreamMessagesHandler, StreamMessagesHandlerV2, graph_namespace
from langgraph.pregel._tools import StreamToolCallHandler

from langchain_guardreasoner._stop_switch import StopSwitch

T = TypeVar("T")


@dataclass(frozen=True)
class Token:
    """A chunk a taken model run streamed; ``chunk`` None: the run ended (or failed)."""

    run_id: UUID
    chunk: AIMessageChunk | None


@dataclass(frozen=True)
class _Run:
    parent_run_id: UUID | None
    tags: list[str]


class TokenTap(StopSwitch):
    """Hands each chat model run's streamed chunks to ``put`` (:class:`Token`), and, once stopped, raises
    at the model's next token. Its presence makes the model stream (it has the tap methods LangChain looks
    for), even with every other streaming handler held."""

    def __init__(self, put: Callable[[Token], None]):
        super().__init__()
        self._put = put
        self.runs: dict[UUID, _Run] = {}
        self.message_runs: dict[str, UUID] = {}
        """The run that wrote each ended run's message (by message id)."""

    def takes(self, run_id: UUID) -> bool:
        return run_id in self.runs

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if TAG_NOSTREAM not in (tags or []):
            self.runs[run_id] = _Run(parent_run_id, list(tags or []))

    def on_llm_new_token(self, token: Any, *, run_id: UUID, chunk: Any = None, **kwargs: Any) -> None:
        super().on_llm_new_token(token)  # raises once stopped
        message = chunk.message if isinstance(chunk, ChatGenerationChunk) else None
        if self.takes(run_id) and isinstance(message, AIMessageChunk):
            self._put(Token(run_id, message))

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        if self.takes(run_id):
            if (message := _message_of(response)) is not None and message.id is not None:
                self.message_runs[message.id] = run_id
            self._put(Token(run_id, None))

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        if self.takes(run_id):
            self._put(Token(run_id, None))

    def tap_output_iter(self, run_id: UUID, output: Iterator[T]) -> Iterator[T]:
        return output

    def tap_output_aiter(self, run_id: UUID, output: AsyncIterator[T]) -> AsyncIterator[T]:
        return output


class HeldHandler:
    """Stands in for a token-streaming handler (``astream_events``', ``astream_log``'s) in a held model call.

    Every attribute and event is the handler's, except, for the runs the tap takes, the tokens (dropped:
    :meth:`token` hands over the judged ones) and the run's end (kept until the run is :meth:`released`,
    or replaced by the message the agent keeps: :meth:`settled`). After :meth:`close` everything passes.
    """

    def __init__(self, handler: Any, tap: TokenTap):
        self.handler = handler
        self._tap = tap
        self._ends: dict[UUID, Event] = {}
        self._released: set[UUID] = set()
        self._settled: set[UUID] = set()
        self._closed = False
        self._dropped = False
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handler, name)

    def _holds(self, event: str, run_id: UUID, *args: Any, **kwargs: Any) -> bool:
        """Whether ``event`` stays here (kept, when it ends the run) instead of reaching the handler."""
        with self._lock:
            if run_id in self._settled or (self._dropped and self._tap.takes(run_id)):
                return True  # settled: the handler saw the run end with the message the agent keeps
            if self._closed or run_id in self._released or not self._tap.takes(run_id):
                return False
            if event != "on_llm_new_token":
                self._ends[run_id] = (event, args, {**kwargs, "run_id": run_id})
            return True

    def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> Any:
        if not self._holds("on_llm_new_token", run_id):
            return self.handler.on_llm_new_token(token, run_id=run_id, **kwargs)
        return None

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> Any:
        if not self._holds("on_llm_end", run_id, response, **kwargs):
            return self.handler.on_llm_end(response, run_id=run_id, **kwargs)
        return None

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> Any:
        if not self._holds("on_llm_error", run_id, error, **kwargs):
            return self.handler.on_llm_error(error, run_id=run_id, **kwargs)
        return None

    # -- what the driver hands over (events to send the handler: :func:`send`/:func:`asend`) ------------

    def token(self, run_id: UUID, chunk: AIMessageChunk) -> list[Event]:
        """A judged chunk of ``run_id``, as the handler would have seen it from the model."""
        return [
            (
                "on_llm_new_token",
                (),
                {
                    "token": chunk.text,
                    "chunk": ChatGenerationChunk(message=chunk),
                    **self._run_kwargs(run_id),
                },
            )
        ]

    def released(self, run_id: UUID) -> list[Event]:
        """``run_id``'s stream was all released: its end goes on (now, or when it comes)."""
        with self._lock:
            self._released.add(run_id)
            end = self._ends.pop(run_id, None)
        return [end] if end is not None else []

    def settled(self, run_id: UUID, message: BaseMessage) -> list[Event]:
        """``run_id`` ends with ``message`` (what the agent keeps), whatever the model did."""
        with self._lock:
            self._settled.add(run_id)
            self._ends.pop(run_id, None)
        result = LLMResult(generations=[[ChatGeneration(message=message)]])
        return [("on_llm_end", (result,), self._run_kwargs(run_id))]

    def close(self) -> list[Event]:
        """Everything passes from now; the ends still kept go on."""
        with self._lock:
            self._closed = True
            ends, self._ends = list(self._ends.values()), {}
        return ends

    def drop(self) -> None:
        """The call was abandoned (a harmful input): nothing of its taken runs reaches the handler, ever."""
        with self._lock:
            self._dropped = True
            self._ends.clear()

    def _run_kwargs(self, run_id: UUID) -> dict[str, Any]:
        run = self._tap.runs[run_id]
        return {"run_id": run_id, "parent_run_id": run.parent_run_id, "tags": run.tags}


class AsyncHeldHandler(HeldHandler):
    """:class:`HeldHandler` for an async handler (``astream_events``'): its events are awaited."""

    async def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if not self._holds("on_llm_new_token", run_id):
            await self.handler.on_llm_new_token(token, run_id=run_id, **kwargs)

    async def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        if not self._holds("on_llm_end", run_id, response, **kwargs):
            await self.handler.on_llm_end(response, run_id=run_id, **kwargs)

    async def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        if not self._holds("on_llm_error", run_id, error, **kwargs):
            await self.handler.on_llm_error(error, run_id=run_id, **kwargs)


Event = tuple[str, tuple[Any, ...], dict[str, Any]]
"""A callback event for one held handler: its name, arguments and keyword arguments."""


def send(handler: HeldHandler, events: list[Event]) -> None:
    for name, args, kwargs in events:
        handle_event([handler.handler], name, "ignore_llm", *args, **kwargs)


async def asend(handler: HeldHandler, events: list[Event]) -> None:
    for name, args, kwargs in events:
        await ahandle_event([handler.handler], name, "ignore_llm", *args, **kwargs)


@dataclass(frozen=True)
class Listeners:
    """Who streams a model call's tokens to a consumer: LangGraph's messages handlers that would stream
    this graph's messages, and the other token-streaming handlers."""

    messages: list[StreamMessagesHandler]
    others: list[Any]

    @classmethod
    def of(cls, config: Any) -> Listeners | None:
        """The listeners in ``config``'s callbacks; None when there are none, or when a messages handler
        streams content-block events (``astream_events(version="v3")``), which judged chunks do not fit."""
        callbacks = config.get("callbacks")
        handlers = callbacks.handlers if isinstance(callbacks, BaseCallbackManager) else list(callbacks or [])
        if any(isinstance(h, StreamMessagesHandlerV2) for h in handlers):
            return None
        metadata = config.get("metadata", {})
        ns = graph_namespace(metadata) if "langgraph_checkpoint_ns" in metadata else ()
        messages = [
            h
            for h in handlers
            if isinstance(h, StreamMessagesHandler) and (h.subgraphs or not ns or ns == h.parent_ns)
        ]
        others = [
            h
            for h in handlers
            if isinstance(h, _StreamingCallbackHandler)
            and not isinstance(h, (StreamMessagesHandler, StreamToolCallHandler))
        ]
        return cls(messages, others) if messages or others else None


def held_callbacks(config: Any, tap: TokenTap) -> tuple[Any, list[HeldHandler]]:
    """``config`` for the model call (its callbacks as the module says) and the held handlers in it."""
    callbacks = config.get("callbacks")
    held: dict[int, HeldHandler] = {}

    def swap(handlers: list[Any]) -> list[Any]:
        kept = []
        for handler in handlers:
            if isinstance(handler, StreamMessagesHandler):
                continue
            if isinstance(handler, _StreamingCallbackHandler) and not isinstance(
                handler, StreamToolCallHandler
            ):
                if id(handler) not in held:
                    kind = AsyncHeldHandler if _is_async(handler) else HeldHandler
                    held[id(handler)] = kind(handler, tap)
                handler = held[id(handler)]
            kept.append(handler)
        return [tap, *kept]  # first: once stopped, it raises before any other handler sees the token

    if isinstance(callbacks, BaseCallbackManager):
        manager = callbacks.copy()
        manager.handlers = swap(manager.handlers)
        manager.inheritable_handlers = swap(manager.inheritable_handlers)
    else:
        manager = swap(list(callbacks or []))
    return {**config, "callbacks": manager}, list(held.values())


def _is_async(handler: Any) -> bool:
    return inspect.iscoroutinefunction(handler.on_llm_new_token)


def _message_of(response: LLMResult) -> BaseMessage | None:
    generation = response.generations[0][0] if response.generations and response.generations[0] else None
    return generation.message if isinstance(generation, ChatGeneration) else None
