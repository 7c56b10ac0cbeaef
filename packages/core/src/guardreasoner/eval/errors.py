"""The evaluation's own error: bad prediction or benchmark input, with what to do about it."""

from __future__ import annotations

from guardreasoner.errors import GuardReasonerError


class EvaluationError(GuardReasonerError, ValueError):
    """Prediction files, benchmark files or options that cannot be evaluated as they are."""
