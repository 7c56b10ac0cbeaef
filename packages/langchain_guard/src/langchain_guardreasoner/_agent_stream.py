"""Judged token streaming for a guarded agent's model calls (``GuardReasonerMiddleware(stream_mode=...)``).

When someone streams the agent's tokens (``stream_mode="messages"``, ``astream_events``), a model call runs
with its tokens held (:mod:`langchain_guardreasoner._held_tokens`) and its chat model runs are released run
by run, once the input is judged safe:

- moderated (``"buffered"``, ``"whole"``): through the core's
  :class:`~guardreasoner.integrations.BufferedStreamModerator`, which judges the turn's request with the
  answer so far every ``stream_chunk_tokens`` tokens (``"whole"``: once, at the end) while the model goes on
  writing; chunks with no content to judge (tool-call chunks) go out as they come;
- passed (``"passthrough"``, or ``check_output=False``): as they come.

A released chunk is pushed to LangGraph's messages stream (``langgraph.graph.message.push_message`` with
``state_key=None``: the stream, not the state) with the id the agent's message then gets, so LangGraph does
not stream that message again when the model node returns it; held ``astream_events``/``astream_log``
handlers get it as the model run's token. The state holds what was released: the model's message under the
streamed id, or, on a harmful chunk (the model stopped there), the refusal per ``exit_behavior``. A message
the stream did not show as written (a model that does not stream) is judged whole, as without a stream.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import operator
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from guardreasoner.integrations import BufferedStreamModerator, GuardReasonerViolation
from langchain.agents.middleware.types import ExtendedModelResponse, ModelRequest, ModelResponse
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.runnables.config import ensure_config, var_child_runnable_config
from langchain_core.utils.utils import LC_ID_PREFIX
from langgraph.graph.message import push_message

from langchain_guardreasoner._held_tokens import (
    Event,
    HeldHandler,
    Listeners,
    Token,
    TokenTap,
    asend,
    held_callbacks,
    send,
)
from langchain_guardreasoner._messages import last_index
from langchain_guardreasoner._violation import refusal_chunk, refusal_message

if TYPE_CHECKING:
    from langchain_guardreasoner.middleware import GuardReasonerMiddleware, _Check

Outcome = ModelResponse[Any] | AIMessage | ExtendedModelResponse[Any]

REFUSAL_SEPARATOR = "\n\n"
"""Between the released part of an answer and the refusal that ends it (``exit_behavior="end"``)."""


@dataclass(frozen=True)
class Done:
    """The model call returned ``result`` or raised ``error``."""

    result: Any = None
    error: BaseException | None = None


@dataclass
class _Shown:
    """What the stream showed of one model run: the id its chunks carry, the ids the model gave them, the
    text."""

    message_id: str
    model_ids: set[str | None] = field(default_factory=set)
    text: str = ""


class _Call:
    """The model call, started with its tokens held; its events (:class:`Token`, then :class:`Done`) in a
    queue, read by the driver."""

    tap: TokenTap
    held: list[HeldHandler]

    def _prepare(self, config: Any, put: Callable[[Token | Done], None]) -> Any:
        self.tap = TokenTap(put)
        held_config, self.held = held_callbacks(config, self.tap)
        return held_config


class _ThreadCall(_Call):
    """Runs ``handler(request)`` in a worker thread (with the caller's context variables)."""

    def __init__(self, handler: Callable[[ModelRequest[Any]], Any], request: ModelRequest[Any], config: Any):
        self._events: queue.Queue[Token | Done] = queue.Queue()
        held_config = self._prepare(config, self._events.put)

        def work() -> None:
            var_child_runnable_config.set(held_config)
            try:
                done = Done(result=handler(request))
            except BaseException as exc:  # handed to the driver
                done = Done(error=exc)
            self._events.put(done)

        context = contextvars.copy_context()
        threading.Thread(
            target=context.run, args=(work,), name="guardreasoner-model-call", daemon=True
        ).start()

    def next(self) -> Token | Done:
        return self._events.get()

    def stop(self) -> None:
        """Stop the model at its next token (a thread cannot be stopped from outside)."""
        self.tap.stop()


class _TaskCall(_Call):
    """Runs ``await handler(request)`` as a task."""

    def __init__(
        self, handler: Callable[[ModelRequest[Any]], Awaitable[Any]], request: ModelRequest[Any], config: Any
    ):
        loop = asyncio.get_running_loop()
        self._events: asyncio.Queue[Token | Done] = asyncio.Queue()

        def put(event: Token | Done) -> None:  # callbacks may run in an executor's thread
            loop.call_soon_threadsafe(self._events.put_nowait, event)

        held_config = self._prepare(config, put)

        async def work() -> None:
            var_child_runnable_config.set(held_config)
            try:
                done = Done(result=await handler(request))
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # handed to the driver
                done = Done(error=exc)
            put(done)

        self._task = asyncio.ensure_future(work())

    async def next(self) -> Token | Done:
        return await self._events.get()

    async def stop(self) -> None:
        self.tap.stop()
        self._task.cancel()
        await asyncio.wait([self._task])


class StreamedModelCall:
    """One model call of a guarded agent whose tokens someone streams; :meth:`run` / :meth:`arun` do what
    ``wrap_model_call`` / ``awrap_model_call`` do, releasing the answer as it is judged."""

    def __init__(
        self, middleware: GuardReasonerMiddleware, listeners: Listeners, config: Any, prompt: str | None
    ):
        self._mw = middleware
        self._listeners = listeners
        self._config = config
        self._prompt = prompt
        self._moderated = (
            prompt is not None and middleware.check_output and middleware.stream_mode != "passthrough"
        )
        self._shown: dict[UUID, _Shown] = {}
        self._missed: set[UUID] = set()
        self._current: UUID | None = None
        self._done: Done | None = None

    @classmethod
    def open(
        cls, middleware: GuardReasonerMiddleware, request: ModelRequest[Any], checks: list[_Check]
    ) -> StreamedModelCall | None:
        """The streamed call, when someone streams this call's tokens and there is something to hold them
        for: an answer to moderate, or an input judged beside the model. None: call the model as usual."""
        parallel = bool(checks) and middleware.parallel_input_check
        if middleware.stream_mode == "passthrough" and not parallel:
            return None  # tokens flow as they come
        config = ensure_config()
        listeners = Listeners.of(config)
        if listeners is None:
            return None
        prompt = middleware._request_before(request.messages, len(request.messages))
        if middleware.check_output and middleware.stream_mode != "passthrough" and prompt is None:
            return None  # no request to judge the answer against as it streams: judged whole, as held
        call = cls(middleware, listeners, config, prompt)
        return call if call._moderated or parallel else None

    # -- sync -----------------------------------------------------------------------------------------

    def run(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
        checks: list[_Check],
    ) -> Outcome:
        mw = self._mw
        call = _ThreadCall(handler, request, self._config) if checks and mw.parallel_input_check else None
        try:
            outcome = mw._on_input(request, checks, mw._classify(checks) if checks else [])
        except BaseException:
            self._abandon(call)
            raise
        if isinstance(outcome, AIMessage):
            self._abandon(call)
            return outcome
        request, updates = outcome
        if call is None or updates:
            self._abandon(call)
            call = _ThreadCall(handler, request, self._config)
        try:
            try:
                done = self._drive(call)
            except GuardReasonerViolation as violation:
                call.stop()
                message, events = self._refusal(call, violation)
                self._deliver(events)
                return mw._finish(ModelResponse(result=[message]), [], [], updates)
            outcome, events = self._finish(call, request, done, updates)
            self._deliver(events)
            return outcome
        finally:
            call.stop()  # no-op once the model returned
            self._deliver([(h, h.close()) for h in call.held])

    def _drive(self, call: _ThreadCall) -> Done:
        """Release the call's runs as they stream, until the call is done."""
        while self._done is None:
            event = call.next()
            if isinstance(event, Done):
                self._done = event
            elif self._first_of_run(event):
                self._current = event.run_id
                for chunk in self._released(call, event):
                    self._deliver(self._show(call, event.run_id, chunk))
                self._deliver([(h, h.released(event.run_id)) for h in call.held])
        return self._done

    def _segment(self, call: _ThreadCall, first: Token) -> Iterator[AIMessageChunk]:
        """``first`` and the rest of its run's chunks, as they come (another run's meanwhile are missed)."""
        chunk: AIMessageChunk | object | None = first.chunk
        while chunk is not None:
            if isinstance(chunk, AIMessageChunk):
                yield chunk
            chunk = self._next_chunk(first.run_id, call.next())

    def _released(self, call: _ThreadCall, first: Token) -> Iterator[AIMessageChunk]:
        """A run's chunks as they may be shown: as they come, judged chunk by chunk, or judged whole and
        merged into one."""
        segment = self._segment(call, first)
        moderator = self._moderator() if self._moderated else None
        if moderator is None:
            yield from segment
        elif self._mw.stream_mode == "buffered":
            yield from moderator.moderate(self._unjudged_shown(call, first.run_id, segment, moderator))
        elif chunks := list(moderator.moderate(segment)):
            yield functools.reduce(operator.add, chunks)

    def _unjudged_shown(
        self, call: _ThreadCall, run_id: UUID, segment: Iterator[AIMessageChunk], moderator: Moderator
    ) -> Iterator[AIMessageChunk]:
        """``segment`` for the moderator, less the chunks with nothing to judge that come while it holds
        nothing: those are shown as they come (:func:`_nothing_to_judge`)."""
        for chunk in segment:
            if _nothing_to_judge(chunk, moderator):
                self._deliver(self._show(call, run_id, chunk))
            else:
                yield chunk

    def _abandon(self, call: _ThreadCall | None) -> None:
        if call is not None:
            call.stop()
            for handler in call.held:
                handler.drop()

    def _deliver(self, events: list[HeldEvents]) -> None:
        for handler, handler_events in events:
            send(handler, handler_events)

    def _finish(
        self, call: _ThreadCall, request: ModelRequest[Any], done: Done, updates: list[BaseMessage]
    ) -> tuple[Outcome, list[HeldEvents]]:
        response, checks = self._reconcile(request, done)
        verdicts = self._mw._classify(checks) if checks else []
        return self._settle(call, done, self._mw._finish(response, checks, verdicts, updates))

    # -- async ----------------------------------------------------------------------------------------

    async def arun(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
        checks: list[_Check],
    ) -> Outcome:
        mw = self._mw
        call = _TaskCall(handler, request, self._config) if checks and mw.parallel_input_check else None
        try:
            outcome = mw._on_input(request, checks, await mw._aclassify(checks) if checks else [])
        except BaseException:
            await self._aabandon(call)
            raise
        if isinstance(outcome, AIMessage):
            await self._aabandon(call)
            return outcome
        request, updates = outcome
        if call is None or updates:
            await self._aabandon(call)
            call = _TaskCall(handler, request, self._config)
        try:
            try:
                done = await self._adrive(call)
            except GuardReasonerViolation as violation:
                await call.stop()
                message, events = self._refusal(call, violation)
                await self._adeliver(events)
                return mw._finish(ModelResponse(result=[message]), [], [], updates)
            outcome, events = await self._afinish(call, request, done, updates)
            await self._adeliver(events)
            return outcome
        finally:
            await call.stop()
            await self._adeliver([(h, h.close()) for h in call.held])

    async def _adrive(self, call: _TaskCall) -> Done:
        while self._done is None:
            event = await call.next()
            if isinstance(event, Done):
                self._done = event
            elif self._first_of_run(event):
                self._current = event.run_id
                async for chunk in self._areleased(call, event):
                    await self._adeliver(self._show(call, event.run_id, chunk))
                await self._adeliver([(h, h.released(event.run_id)) for h in call.held])
        return self._done

    async def _asegment(self, call: _TaskCall, first: Token) -> AsyncIterator[AIMessageChunk]:
        chunk: AIMessageChunk | object | None = first.chunk
        while chunk is not None:
            if isinstance(chunk, AIMessageChunk):
                yield chunk
            chunk = self._next_chunk(first.run_id, await call.next())

    async def _areleased(self, call: _TaskCall, first: Token) -> AsyncIterator[AIMessageChunk]:
        segment = self._asegment(call, first)
        moderator = self._moderator() if self._moderated else None
        if moderator is None:
            async for chunk in segment:
                yield chunk
        elif self._mw.stream_mode == "buffered":
            unjudged_shown = self._aunjudged_shown(call, first.run_id, segment, moderator)
            async for chunk in moderator.amoderate(unjudged_shown):
                yield chunk
        elif chunks := [chunk async for chunk in moderator.amoderate(segment)]:
            yield functools.reduce(operator.add, chunks)

    async def _aunjudged_shown(
        self, call: _TaskCall, run_id: UUID, segment: AsyncIterator[AIMessageChunk], moderator: Moderator
    ) -> AsyncIterator[AIMessageChunk]:
        async for chunk in segment:
            if _nothing_to_judge(chunk, moderator):
                await self._adeliver(self._show(call, run_id, chunk))
            else:
                yield chunk

    async def _aabandon(self, call: _TaskCall | None) -> None:
        if call is not None:
            await call.stop()
            for handler in call.held:
                handler.drop()

    async def _adeliver(self, events: list[HeldEvents]) -> None:
        for handler, handler_events in events:
            await asend(handler, handler_events)

    async def _afinish(
        self, call: _TaskCall, request: ModelRequest[Any], done: Done, updates: list[BaseMessage]
    ) -> tuple[Outcome, list[HeldEvents]]:
        response, checks = self._reconcile(request, done)
        verdicts = await self._mw._aclassify(checks) if checks else []
        return self._settle(call, done, self._mw._finish(response, checks, verdicts, updates))

    # -- what both drivers share ----------------------------------------------------------------------

    def _first_of_run(self, event: Token) -> bool:
        """Whether ``event`` opens a run to release (not the end of a run, nor a chunk of a run already
        released or missed)."""
        return (
            event.chunk is not None and event.run_id not in self._shown and event.run_id not in self._missed
        )

    def _next_chunk(self, run_id: UUID, event: Token | Done) -> AIMessageChunk | object | None:
        """The next chunk of ``run_id``'s segment in ``event``: None when the segment ends (the run ended, or
        the call is done), :data:`_OTHER_RUN` for a chunk of a run streaming beside it. That run is missed:
        not streamed (if it wrote the answer, the answer is judged whole at the end)."""
        if isinstance(event, Done):
            self._done = event
            return None
        if event.run_id == run_id:
            return event.chunk
        if event.chunk is not None and event.run_id not in self._shown:
            self._missed.add(event.run_id)
        return _OTHER_RUN

    def _moderator(self) -> Moderator:
        """The run's moderator; it reads the segment as it comes (the call's queue already reads ahead of
        the checks), so a chunk it has not asked for yet is not held by it."""
        assert self._prompt is not None
        return self._mw._guarding.moderator(self._prompt, _chunk_text, read_ahead=False)

    def _show(self, call: _Call, run_id: UUID, chunk: AIMessageChunk) -> list[HeldEvents]:
        """Push a released chunk under its run's message id (the first chunk's); the held handlers' events."""
        shown = self._shown.get(run_id)
        if shown is None:
            shown = self._shown[run_id] = _Shown(chunk.id or f"{LC_ID_PREFIX}{run_id}")
        shown.model_ids.add(chunk.id)
        shown.text += _chunk_text(chunk)
        if chunk.id != shown.message_id:
            chunk = chunk.model_copy(update={"id": shown.message_id})
        return self._push(call, run_id, chunk)

    def _push(self, call: _Call, run_id: UUID, chunk: AIMessageChunk) -> list[HeldEvents]:
        if self._listeners.messages:
            push_message(chunk, state_key=None)
        return [(h, h.token(run_id, chunk)) for h in call.held]

    def _refusal(self, call: _Call, violation: GuardReasonerViolation) -> tuple[AIMessage, list[HeldEvents]]:
        """The message that ends a stream stopped on a harmful chunk, per ``exit_behavior`` (``"error"``
        raises), pushed; and the held handlers' events: the run ends with that message."""
        verdict = violation.verdict
        text = self._mw._guarding.refuse(verdict, "output", violation.content)
        run_id = self._current
        assert run_id is not None
        shown = self._shown.get(run_id)
        if self._mw.exit_behavior == "end" and shown is not None:  # the refusal is the rest of the message
            lead = REFUSAL_SEPARATOR if shown.text.strip() else ""
            chunk = refusal_chunk(lead + text, verdict, "output", id=shown.message_id)
            message = refusal_message(shown.text + lead + text, verdict, "output", id=shown.message_id)
        else:  # "replace" (or nothing shown yet): the refusal is a message of its own
            message_id = str(uuid4())
            chunk = refusal_chunk(text, verdict, "output", id=message_id)
            message = refusal_message(text, verdict, "output", id=message_id)
        events = self._push(call, run_id, chunk)
        return message, [*events, *((h, h.settled(run_id, message)) for h in call.held)]

    def _reconcile(self, request: ModelRequest[Any], done: Done) -> tuple[ModelResponse[Any], list[_Check]]:
        """The model's response with its message under the id the stream showed it with, and what is left
        to judge: nothing when the stream showed the message as written and moderated it; else the message
        whole (passthrough, or a message the stream did not show as written: given a new id then, so that
        LangGraph streams it whole)."""
        if done.error is not None:
            raise done.error
        response: ModelResponse[Any] = done.result
        index = last_index(response.result, AIMessage)
        if index is None:
            return response, []
        message = response.result[index]
        shown = next((s for s in self._shown.values() if message.id in s.model_ids), None)
        as_shown = shown is not None and shown.text == _chunk_text(message)
        if as_shown:
            message = message.model_copy(update={"id": shown.message_id})
        elif message.id is not None and message.id in {s.message_id for s in self._shown.values()}:
            message = message.model_copy(update={"id": None})
        response = _with_message(response, index, message)
        if as_shown and self._moderated:
            return response, []
        return response, self._mw._output_checks(request.messages, response)

    def _settle(self, call: _Call, done: Done, outcome: Outcome) -> tuple[Outcome, list[HeldEvents]]:
        """``outcome``, and the held handlers' events: the run that wrote an answer the stream did not show
        ends with the message the agent keeps (its whole answer, or the refusal)."""
        written = last_index(done.result.result, AIMessage)
        run_id = None if written is None else call.tap.message_runs.get(done.result.result[written].id)
        response = outcome.model_response if isinstance(outcome, ExtendedModelResponse) else outcome
        kept = None if isinstance(response, AIMessage) else last_index(response.result, AIMessage)
        if run_id is None or run_id in self._shown or kept is None:
            return outcome, []
        assert isinstance(response, ModelResponse)
        return outcome, [(h, h.settled(run_id, response.result[kept])) for h in call.held]


HeldEvents = tuple[HeldHandler, list[Event]]
Moderator = BufferedStreamModerator[AIMessageChunk]

_OTHER_RUN = object()


def _chunk_text(message: BaseMessage) -> str:
    return str(message.text)


def _nothing_to_judge(chunk: AIMessageChunk, moderator: Moderator) -> bool:
    """Whether ``chunk`` may be shown unjudged, as it comes: it has no content (a tool-call chunk, metadata:
    the guard judges text), and the moderator holds nothing that must be shown before it."""
    return not chunk.content and not moderator.stats()["held"]


def _with_message(response: ModelResponse[Any], index: int, message: BaseMessage) -> ModelResponse[Any]:
    result = list(response.result)
    result[index] = message
    return ModelResponse(result=result, structured_response=response.structured_response)
