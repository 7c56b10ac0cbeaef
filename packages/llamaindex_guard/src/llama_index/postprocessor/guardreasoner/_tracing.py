"""Each check a LlamaIndex instrumentation span: ``GuardReasoner.<stage>``, under the step it guards.

The spans come from this package's own dispatcher (``get_dispatcher(__name__)``), which reports to the root
one, so every span handler there (Arize Phoenix's and Langfuse's OpenInference instrumentor, OpenLLMetry, a
``SimpleSpanHandler``) records them with no configuration of its own. A span is named as LlamaIndex names
a method's: its id begins with ``GuardReasoner.input``, ``GuardReasoner.output`` or ``GuardReasoner.tool``
(as for a method ``<stage>`` of the guard), and its instance is the guard. Its parent is the span running when the
check was made (the guarded query's, chat's or agent step's); its arguments are the judged exchange (a
:class:`~guardreasoner.integrations.Check`), its result :func:`~guardreasoner.integrations.verdict_summary`.
The verdict also goes out in a :class:`GuardReasonerVerdictEvent` of that span, for event handlers. A
guard that raises drops the span with the error.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Sequence
from typing import Any

from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.dispatcher import active_instrument_tags
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.span import SpanDropEvent
from llama_index.core.instrumentation.span import active_span_id

from guardreasoner import Verdict
from guardreasoner.guard import GuardReasoner
from guardreasoner.integrations import Check, CheckTracer, verdict_summary
from guardreasoner.telemetry import guard_attributes

dispatcher = get_dispatcher(__name__)

SPAN_NAME = "GuardReasoner"
"""What a check's span id begins with (then ``.<stage>``), whatever the guard's class."""
_CHECK = inspect.signature(Check)


class GuardReasonerVerdictEvent(BaseEvent):
    """A check's verdict, sent in its ``GuardReasoner.<stage>`` span (``span_id``).

    ``verdict`` is :func:`~guardreasoner.integrations.verdict_summary` (stage, blocked, labels, scores,
    ``decided_by``, ``parse_status``, ``reasoned``...); ``model``, ``engine``, ``policy`` and
    ``reasoning_mode`` are the guard's that judged (:func:`~guardreasoner.telemetry.guard_attributes`).
    """

    verdict: dict[str, Any]
    model: str
    engine: str
    policy: str
    reasoning_mode: str

    @classmethod
    def class_name(cls) -> str:
        return "GuardReasonerVerdictEvent"

    @property
    def stage(self) -> str:
        return self.verdict["stage"]

    @property
    def blocked(self) -> bool:
        return self.verdict["blocked"]


_RUNNING = object()


class SpanTracer(CheckTracer):
    """Records each check as a span of this package's dispatcher, a child of ``parent_id`` (a span id;
    left out: the span running when the check is made)."""

    def __init__(self, parent_id: Any = _RUNNING):
        self._parent_id = parent_id

    def here(self) -> SpanTracer:
        return self if self._parent_id is not _RUNNING else SpanTracer(active_span_id.get())

    def start(self, guard: GuardReasoner, checks: Sequence[Check]) -> tuple[GuardReasoner, list[Any]]:
        parent_id = active_span_id.get() if self._parent_id is _RUNNING else self._parent_id
        tags = active_instrument_tags.get()
        spans = []
        for check in checks:
            span_id = f"{SPAN_NAME}.{check.stage}-{uuid.uuid4()}"
            arguments = _CHECK.bind(check.stage, check.prompt, check.response, check.chunk)
            dispatcher.span_enter(
                id_=span_id, bound_args=arguments, instance=guard, parent_id=parent_id, tags=tags
            )
            spans.append((span_id, arguments))
        return guard, spans

    def end(self, opened: Any, checks: Sequence[Check], verdicts: Sequence[Verdict]) -> None:
        guard, spans = opened
        about = guard_attributes(guard)
        for (span_id, arguments), check, verdict in zip(spans, checks, verdicts):
            summary = verdict_summary(verdict, check)
            dispatcher.event(GuardReasonerVerdictEvent(span_id=span_id, verdict=summary, **about))
            dispatcher.span_exit(id_=span_id, bound_args=arguments, instance=guard, result=summary)

    def fail(self, opened: Any, checks: Sequence[Check], error: BaseException) -> None:
        guard, spans = opened
        for span_id, arguments in spans:
            dispatcher.event(SpanDropEvent(span_id=span_id, err_str=str(error)))
            dispatcher.span_drop(id_=span_id, bound_args=arguments, instance=guard, err=error)


SPANS = SpanTracer()
"""The guarded engines' and agents' tracer: checks under the running span."""
