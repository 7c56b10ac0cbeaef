"""Shadow mode for LlamaIndex: an instrumentation event handler that judges every model call, off the path.

Attach it once and every query engine, chat engine and agent in the process is observed: LlamaIndex's
instrumentation dispatcher hands each event to the handler, which queues one check per model call (a chat
call: ``LLMChatEndEvent``; a completion: ``LLMCompletionEndEvent``) on a
:class:`~guardreasoner.integrations.shadow.ShadowRecorder` and returns at once. The workers judge the
call's input and output together (one verdict per model call) and write a record to the sink.

What the guard reads as the request: inside a query (between ``QueryStartEvent`` and ``QueryEndEvent`` in
the same task or thread), the user's query, not the prompt template with the retrieved context; in a chat
or an agent step, the last user message with up to ``history_window`` earlier turns folded in
(:func:`~guardreasoner.integrations.history.fold_history`; system and tool messages are not shown); else
the completion prompt. The response is the model's text; a call that produced no text (only tool calls)
is judged on its request alone.

It never blocks and cannot: LlamaIndex's dispatcher swallows every exception a handler raises, so an
enforcing recorder is refused here (use :class:`GuardedQueryEngine`, :class:`GuardedChatEngine` or
:class:`GuardedAgent` to block). For the same reason the handler catches its own errors, counts them in
``errors`` and logs the first, instead of losing them silently.
"""

from __future__ import annotations

import contextvars
import logging
from typing import Any

from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.instrumentation import Dispatcher, get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.llm import LLMChatEndEvent, LLMCompletionEndEvent
from llama_index.core.instrumentation.events.query import QueryEndEvent, QueryStartEvent
from llama_index.postprocessor.guardreasoner._common import text_or_none, turns_of

from guardreasoner.guard import GuardReasoner
from guardreasoner.integrations import check_history_window, fold_history
from guardreasoner.integrations.history import DEFAULT_HISTORY_TURNS
from guardreasoner.integrations.shadow import ShadowRecorder, ShadowSink

logger = logging.getLogger("guardreasoner.shadow")

_QUERY: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "guardreasoner_shadow_query", default=None
)


class GuardReasonerEventHandler(BaseEventHandler):
    """Judges each model call's input and output through a :class:`ShadowRecorder`, never in the way.

    >>> handler = GuardReasonerEventHandler(guard=guard, sink="verdicts.jsonl").attach()  # doctest: +SKIP

    Give a ``recorder`` (shared with other hooks) or the options to build one (``guard``, ``sink``,
    ``max_queue``, ``workers``). :meth:`attach` registers the handler with a dispatcher (the root one by
    default, which sees everything), :meth:`detach` removes it; ``handler.recorder`` has the counters
    (``recorded``, ``dropped``...), ``flush()`` and ``close()``.
    """

    _recorder: ShadowRecorder = PrivateAttr()
    _history_window: int = PrivateAttr()
    _dispatchers: list[Dispatcher] = PrivateAttr(default_factory=list)
    _errors: int = PrivateAttr(default=0)

    def __init__(
        self,
        recorder: ShadowRecorder | None = None,
        *,
        guard: GuardReasoner | None = None,
        sink: ShadowSink = "log",
        max_queue: int = 1000,
        workers: int = 1,
        history_window: int = DEFAULT_HISTORY_TURNS,
    ):
        super().__init__()
        if (recorder is None) == (guard is None):
            raise ValueError("Pass either recorder= or guard= (with sink=, max_queue=, workers=), not both.")
        if recorder is not None and recorder.enforce:
            raise ValueError(
                "LlamaIndex's instrumentation dispatcher swallows every exception an event handler raises, "
                "so an enforcing recorder could never block: use a recorder with enforce=False here, and "
                "GuardedQueryEngine, GuardedChatEngine or GuardedAgent to block."
            )
        self._history_window = check_history_window(history_window)
        self._recorder = recorder or ShadowRecorder(guard, sink=sink, max_queue=max_queue, workers=workers)

    @classmethod
    def class_name(cls) -> str:
        return "GuardReasonerEventHandler"

    @property
    def recorder(self) -> ShadowRecorder:
        return self._recorder

    @property
    def errors(self) -> int:
        """Events the handler failed to read (logged once; the dispatcher would have hidden them)."""
        return self._errors

    def attach(self, dispatcher: Dispatcher | None = None) -> GuardReasonerEventHandler:
        """Register with ``dispatcher`` (default: the root dispatcher, which every component reports to)."""
        dispatcher = dispatcher or get_dispatcher()
        if self not in dispatcher.event_handlers:
            dispatcher.add_event_handler(self)
            self._dispatchers.append(dispatcher)
        return self

    def detach(self) -> None:
        """Unregister from every dispatcher :meth:`attach` added it to (queued checks still complete)."""
        for dispatcher in self._dispatchers:
            dispatcher.event_handlers = [h for h in dispatcher.event_handlers if h is not self]
        self._dispatchers.clear()

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        try:
            self._handle(event)
        except Exception:
            self._errors += 1
            if self._errors == 1:
                logger.exception("GuardReasoner shadow mode could not read a %s.", type(event).__name__)

    def _handle(self, event: BaseEvent) -> None:
        if isinstance(event, QueryStartEvent):
            _QUERY.set(_query_text(event.query))
        elif isinstance(event, QueryEndEvent):
            _QUERY.set(None)
        elif isinstance(event, LLMChatEndEvent):
            request = _QUERY.get()
            if request is None:
                turns = turns_of(event.messages)
                if not any(role == "user" and text_or_none(text) for role, text in turns):
                    return  # nothing a user said (a system-only call): nothing for the guard to judge
                request, _ = fold_history(turns, window=self._history_window)
            response = event.response.message.content if event.response is not None else None
            self._submit(event, request, response, "chat")
        elif isinstance(event, LLMCompletionEndEvent):
            self._submit(event, _QUERY.get() or event.prompt, event.response.text, "completion")

    def _submit(self, event: BaseEvent, request: str, response: str | None, kind: str) -> None:
        if text_or_none(request) is None:
            return
        self._recorder.submit(
            request,
            text_or_none(response),
            stage=kind,
            metadata={
                "event_id": event.id_,
                "span_id": event.span_id,
                "kind": kind,
                "tags": dict(event.tags),
            },
        )


def _query_text(query: Any) -> str | None:
    return query if isinstance(query, str) else getattr(query, "query_str", None)
