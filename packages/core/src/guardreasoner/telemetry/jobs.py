"""What the audit and shadow mode report beside their checks' own ``guardreasoner.classify`` spans.

- ``guardreasoner.audit``: one span per :func:`guardreasoner.audit` run, the parent of its in-process batches'
  spans, with the run's figures from its summary.
- ``guardreasoner.shadow``: one span per batch a shadow worker judges (the parent of that batch's check), linked
  to the span each check was submitted from, so a request's trace leads to its off-path verdict.
- ``guardreasoner.shadow.dropped``: the checks shadow mode dropped, by why.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

from guardreasoner.reasoning import reasoning_mode
from guardreasoner.telemetry.attributes import content_tracing
from guardreasoner.telemetry.otel import current

AUDIT_SPAN = "guardreasoner.audit"
SHADOW_SPAN = "guardreasoner.shadow"

F = TypeVar("F", bound=Callable[..., Any])


def traced_audit(audit: F) -> F:
    """Decorates :func:`guardreasoner.audit`: the run in a ``guardreasoner.audit`` span."""
    signature = inspect.signature(audit)

    @functools.wraps(audit)
    def traced(*args: Any, **kwargs: Any) -> Any:
        otel = current()
        if otel is None:
            return audit(*args, **kwargs)
        options = signature.bind(*args, **kwargs)
        options.apply_defaults()
        with otel.tracer.start_as_current_span(
            AUDIT_SPAN, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                summary = audit(*args, **kwargs)
            except Exception as exc:
                if span.is_recording():
                    otel.record_error(span, exc, content=content_tracing(None))
                raise
            if span.is_recording():
                span.set_attributes(audit_attributes(options.arguments, summary))
            return summary

    return traced  # type: ignore[return-value]


def audit_attributes(options: dict[str, Any], summary: Any) -> dict[str, Any]:
    """The run's options and figures: the counts of this run and of the whole output (by label, status, who
    decided, whether the model reasoned), as the summary gives them."""
    engine = options["engine"]
    attributes: dict[str, Any] = {
        "guardreasoner.model": str(options["model"]),
        "guardreasoner.engine": engine if isinstance(engine, str) else engine.name,
        "guardreasoner.policy": options["policy"],
        "guardreasoner.reasoning_mode": reasoning_mode(options["reasoning"]).value,
        "guardreasoner.audit.runner": summary.runner,
        "guardreasoner.audit.output": summary.output,
        "guardreasoner.audit.input_records": summary.input_records,
        "guardreasoner.audit.rejected": summary.rejected,
        "guardreasoner.audit.already_done": summary.already_done,
        "guardreasoner.audit.classified": summary.classified,
        "guardreasoner.audit.output_records": summary.output_records,
    }
    counted = {
        **summary.labels,
        "parse_status": summary.parse_status,
        "decided_by": summary.decided_by,
        "reasoned": summary.reasoned,
    }
    for column, counts in counted.items():
        for value, count in counts.items():
            attributes[f"guardreasoner.audit.{column}.{value}"] = count
    return attributes


@contextmanager
def shadow_span(submitted_from: Iterable[Any], checks: int) -> Iterator[None]:
    """A shadow worker's batch: its span, linked to the span contexts the checks were submitted from (None
    where there was none)."""
    otel = current()
    if otel is None:
        yield
        return
    links = [otel.Link(context) for context in submitted_from if context is not None]
    with otel.tracer.start_as_current_span(
        SHADOW_SPAN,
        links=links,
        attributes={"guardreasoner.conversations": checks},
        record_exception=False,
        set_status_on_exception=False,
    ):
        yield


def count_shadow_drop(reason: Literal["queue_full", "closed"]) -> None:
    """One check shadow mode dropped, and why."""
    otel = current()
    if otel is not None:
        otel.shadow_dropped.add(1, {"guardreasoner.shadow.reason": reason})
