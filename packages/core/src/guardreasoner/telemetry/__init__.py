"""Every check visible where users already look: OpenTelemetry spans and metrics (extra ``otel``), and the one
definition of what of a verdict is shown, which the framework adapters use for their runs and spans too.

- :mod:`~guardreasoner.telemetry.attributes`: a verdict (or a batch's verdicts) and the guard that gave it as
  flat attributes, text only when asked (``trace_content``); no OpenTelemetry needed.
- :mod:`~guardreasoner.telemetry.otel`: the tracer and instruments, made once, imported on the first check.
- :mod:`~guardreasoner.telemetry.spans`: the ``guardreasoner.classify`` span, the engine's GenAI span, the
  call's metrics.
- :mod:`~guardreasoner.telemetry.jobs`: the audit's and shadow mode's spans, shadow mode's drops.

Importing this package imports nothing of OpenTelemetry.
"""

from guardreasoner.telemetry.attributes import (
    CONTENT_ENV,
    content_tracing,
    guard_attributes,
    prefixed,
    verdict_attributes,
    verdict_counts,
)
from guardreasoner.telemetry.jobs import AUDIT_SPAN, SHADOW_SPAN
from guardreasoner.telemetry.otel import set_providers
from guardreasoner.telemetry.spans import CLASSIFY_SPAN

__all__ = [
    "AUDIT_SPAN",
    "CLASSIFY_SPAN",
    "CONTENT_ENV",
    "SHADOW_SPAN",
    "content_tracing",
    "guard_attributes",
    "prefixed",
    "set_providers",
    "verdict_attributes",
    "verdict_counts",
]
