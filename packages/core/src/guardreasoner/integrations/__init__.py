"""What every framework adapter shares (``langchain_guardreasoner``, ``llama_index.postprocessor.guardreasoner``,
your own), with no framework imported here.

- :mod:`~guardreasoner.integrations.options`: the vocabulary (``exit_behavior``, ``violation_message``
  templates, ``stream_mode``), what a refusal carries, and the one error :class:`GuardReasonerViolation`.
- :mod:`~guardreasoner.integrations.provider`: the guard given or built lazily, and the block rule.

Each adapter keeps its own framework code (its stages, how it reads messages or nodes) and builds on these.
"""

from guardreasoner.integrations.options import (
    DEFAULT_VIOLATION_MESSAGE,
    ExitBehavior,
    GuardReasonerViolation,
    GuardViolation,
    StreamMode,
    check_exit_behavior,
    check_stream_mode,
    check_violation_message,
    format_violation_message,
    verdict_labels,
    violation_metadata,
)
from guardreasoner.integrations.provider import GuardProvider, is_violation

__all__ = [
    "DEFAULT_VIOLATION_MESSAGE",
    "ExitBehavior",
    "GuardProvider",
    "GuardReasonerViolation",
    "GuardViolation",
    "StreamMode",
    "check_exit_behavior",
    "check_stream_mode",
    "check_violation_message",
    "format_violation_message",
    "is_violation",
    "verdict_labels",
    "violation_metadata",
]
