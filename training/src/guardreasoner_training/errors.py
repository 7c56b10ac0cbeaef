"""Errors the training stages raise. Each message says what to do about it."""

from __future__ import annotations

from guardreasoner.errors import GuardReasonerError


class TrainingDataError(GuardReasonerError, ValueError):
    """Input data that a stage cannot use as it is (missing fields, labels that cannot be read)."""


class TeacherError(GuardReasonerError, RuntimeError):
    """The teacher API failed in a way retrying cannot fix (bad key, unknown model, bad request)."""
