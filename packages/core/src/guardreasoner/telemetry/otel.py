"""The OpenTelemetry side: the tracer and instruments, made once, and how a failed operation is recorded.

Nothing of OpenTelemetry is imported until the first check (``import guardreasoner`` loads none of it). Without
``opentelemetry-api`` (extra ``otel``) :func:`current` is None and every hook is a pass-through; with it but no
provider set, the API's proxy tracer and meter do nothing, and become real when the application sets its
providers, even after the first check.
"""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any

from guardreasoner.errors import MissingExtraError

logger = logging.getLogger("guardreasoner")

SCOPE = "guardreasoner"
"""The instrumentation scope's name: the tracer's and the meter's."""

DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
"""Seconds: the bucket advice of OpenTelemetry's ``gen_ai.client.operation.duration``."""
TOKEN_BUCKETS = (16, 32, 64, 128, 256, 384, 512, 768, 1024, 1536, 2048, 4096, 8192)
"""Generated tokens per conversation: the released guards' outputs run to about 2,048 tokens."""

WITHHELD = "(withheld: conversation text is traced only with trace_content=True)"


class Otel:
    """The API's modules, the tracer and the instruments, made once for one pair of providers."""

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None):
        from opentelemetry import context, metrics, trace
        from opentelemetry.trace import Link, SpanKind, Status, StatusCode

        from guardreasoner import __version__

        self.context, self.trace = context, trace
        self.Link, self.SpanKind, self.Status, self.StatusCode = Link, SpanKind, Status, StatusCode
        self.tracer = trace.get_tracer(SCOPE, __version__, tracer_provider)
        meter = metrics.get_meter(SCOPE, __version__, meter_provider)
        self.verdicts = meter.create_counter(
            "guardreasoner.verdicts", unit="{verdict}", description="Verdicts, by label and by who decided."
        )
        self.policy_decisions = meter.create_counter(
            "guardreasoner.policy.decisions",
            unit="{verdict}",
            description="Verdicts the failure policy decided (or, under raise, left undecided), by why.",
        )
        self.duration = meter.create_histogram(
            "guardreasoner.classify.duration",
            unit="s",
            description="Time of one classify call, from the call to its verdicts.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.generated_tokens = meter.create_histogram(
            "guardreasoner.generated_tokens",
            unit="{token}",
            description="Tokens the guard generated for one conversation (its reasoning and answers).",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.shadow_dropped = meter.create_counter(
            "guardreasoner.shadow.dropped",
            unit="{check}",
            description="Shadow-mode checks dropped (queue full or recorder closed).",
        )

    def record_error(self, span: Any, exc: BaseException, *, content: bool) -> None:
        """``error.type``, the exception event and status ERROR on ``span``. An exception's message (and the
        last line of its stack trace) can quote the conversation, so without ``content`` they are withheld;
        the type and the code locations stay."""
        name = error_type(exc)
        span.set_attribute("error.type", name)
        if content:
            span.record_exception(exc)
            description = f"{type(exc).__name__}: {exc}"
        else:
            stack = "Traceback (most recent call last):\n" + "".join(traceback.format_tb(exc.__traceback__))
            span.record_exception(
                exc, attributes={"exception.message": WITHHELD, "exception.stacktrace": f"{stack}{name}\n"}
            )
            description = type(exc).__name__
        span.set_status(self.Status(self.StatusCode.ERROR, description))


def error_type(exc: BaseException) -> str:
    """The exception's qualified class name, as OpenTelemetry's ``error.type`` and SDK write it."""
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


_UNSET: Any = object()
_state: Otel | None = _UNSET
_lock = threading.Lock()


def _build(tracer_provider: Any = None, meter_provider: Any = None) -> Otel | None:
    """The telemetry for these providers, or None without ``opentelemetry-api``. An API too old for these
    calls (``explicit_bucket_boundaries_advisory`` came in 1.30) turns it off, said once: a check must never
    fail for its telemetry."""
    try:
        return Otel(tracer_provider, meter_provider)
    except ImportError:
        return None
    except Exception as exc:
        logger.warning(
            "GuardReasoner's OpenTelemetry spans and metrics are off: %s: %s. Install opentelemetry-api>=1.30 "
            '(pip install "guardreasoner[otel]").',
            type(exc).__name__,
            exc,
        )
        return None


def current() -> Otel | None:
    """The tracer and instruments in use (made on first call), or None without ``opentelemetry-api``."""
    global _state
    state = _state
    if state is _UNSET:
        with _lock:
            if _state is _UNSET:
                _state = _build()
            state = _state
    return state


def set_providers(tracer_provider: Any = None, meter_provider: Any = None) -> None:
    """Send guardreasoner's spans and metrics to these providers instead of the global ones (the default, as
    ``opentelemetry.trace.set_tracer_provider`` sets them); ``None`` for either means the global one. For an
    application that keeps the guard's telemetry apart, and for tests (a provider per test)."""
    global _state
    try:
        state = Otel(tracer_provider, meter_provider)
    except ImportError as exc:
        raise MissingExtraError("otel", "opentelemetry", "Sending guardreasoner's telemetry") from exc
    with _lock:
        _state = state


def current_span_context() -> Any:
    """The caller's span context when it is a valid one (to link to later), else None."""
    otel = current()
    if otel is None:
        return None
    context = otel.trace.get_current_span().get_span_context()
    return context if context.is_valid else None
