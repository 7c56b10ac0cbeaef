"""The audit's own errors; both are :class:`~guardreasoner.errors.GuardReasonerError` s."""

from __future__ import annotations

from guardreasoner.errors import GuardReasonerError


class AuditInputError(GuardReasonerError, ValueError):
    """The input or output cannot be audited as given (missing files or columns, duplicate ids, an output
    folder of another audit); the message says what to do."""


class AuditIncompleteError(GuardReasonerError, RuntimeError):
    """After a run, the output does not hold every valid record exactly once."""
