"""What every framework adapter shares (``langchain_guardreasoner``, ``llama_index.postprocessor.guardreasoner``,
your own), with no framework imported here.

- :mod:`~guardreasoner.integrations.options`: the vocabulary (``exit_behavior``, ``violation_message``
  templates, ``stream_mode``), what a refusal carries, and the one error :class:`GuardReasonerViolation`.
- :mod:`~guardreasoner.integrations.provider`: the guard given or built lazily, and the block rule.
- :mod:`~guardreasoner.integrations.guarding`: a guarded wrapper's options checked once (:class:`Guarding`),
  its refusal and stream moderator.
- :mod:`~guardreasoner.integrations.history`: what the guard sees of a multi-turn chat (:func:`fold_history`).
- :mod:`~guardreasoner.integrations.parallel`: the guarded call started beside the input check, held until
  the verdict.
- :mod:`~guardreasoner.integrations.streaming`: a streamed response released chunk by chunk once judged.
- :mod:`~guardreasoner.integrations.shadow`: checks off the request path, every verdict recorded.
- :mod:`~guardreasoner.integrations.trace`: each check shown in the framework's traces (a run, a span),
  with what a trace shows of its verdict (:func:`verdict_summary`).

Each adapter keeps its own framework code (its stages, how it reads messages or nodes) and builds on these.
"""

from guardreasoner.integrations.guarding import GuardedOptions, Guarding
from guardreasoner.integrations.history import (
    DEFAULT_HISTORY_CHARS,
    DEFAULT_HISTORY_TURNS,
    Turn,
    fold_history,
)
from guardreasoner.integrations.options import (
    DEFAULT_VIOLATION_MESSAGE,
    ExitBehavior,
    GuardReasonerViolation,
    StreamMode,
    check_exit_behavior,
    check_history_window,
    check_stream_chunk_tokens,
    check_stream_mode,
    check_violation_message,
    format_violation_message,
    verdict_labels,
    violation_metadata,
)
from guardreasoner.integrations.parallel import (
    Held,
    arun_beside_check,
    arun_checked,
    run_beside_check,
    run_checked,
)
from guardreasoner.integrations.provider import GuardProvider, is_violation
from guardreasoner.integrations.shadow import ShadowRecord, ShadowRecorder, ShadowSink
from guardreasoner.integrations.streaming import (
    DEFAULT_STREAM_CHUNK_TOKENS,
    AReadAhead,
    BufferedStreamModerator,
    ReadAhead,
)
from guardreasoner.integrations.trace import (
    NO_TRACE,
    Check,
    CheckTracer,
    aclassify_checks,
    classify_checks,
    verdict_summary,
)

__all__ = [
    "DEFAULT_HISTORY_CHARS",
    "DEFAULT_HISTORY_TURNS",
    "DEFAULT_STREAM_CHUNK_TOKENS",
    "DEFAULT_VIOLATION_MESSAGE",
    "NO_TRACE",
    "AReadAhead",
    "BufferedStreamModerator",
    "Check",
    "CheckTracer",
    "GuardedOptions",
    "Guarding",
    "Held",
    "ReadAhead",
    "ShadowRecord",
    "ShadowRecorder",
    "ShadowSink",
    "Turn",
    "arun_beside_check",
    "arun_checked",
    "aclassify_checks",
    "classify_checks",
    "fold_history",
    "run_beside_check",
    "run_checked",
    "ExitBehavior",
    "GuardProvider",
    "GuardReasonerViolation",
    "StreamMode",
    "check_exit_behavior",
    "check_history_window",
    "check_stream_chunk_tokens",
    "check_stream_mode",
    "check_violation_message",
    "format_violation_message",
    "is_violation",
    "verdict_labels",
    "verdict_summary",
    "violation_metadata",
]
