"""The errors guardreasoner raises. Each says what to do about it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from guardreasoner.verdict import Verdict


class GuardReasonerError(Exception):
    """Base class for every error this package raises."""


class MissingExtraError(GuardReasonerError, ImportError):
    """An optional dependency is missing; the message names the extra that installs it."""

    def __init__(self, extra: str, package: str, feature: str):
        super().__init__(
            f"{feature} needs the '{package}' package, which is not installed. "
            f'Install it with: pip install "guardreasoner[{extra}]"'
        )
        self.extra = extra
        self.package = package


class InvalidInputError(GuardReasonerError, ValueError):
    """The conversation given to the guard cannot be classified as it is."""


class ContextLengthError(InvalidInputError):
    """The conversation does not fit the model's context window."""


class PromptFormatError(GuardReasonerError, ValueError):
    """Text that should be in the GuardReasoner prompt format (``Human user:\n...\n\nAI assistant:\n...``) is not."""


class EvaluationError(GuardReasonerError, ValueError):
    """Prediction files, benchmark files or options that cannot be evaluated as they are."""


class ModelNotFoundError(GuardReasonerError, OSError):
    """The model id is neither a local directory nor reachable on the hub."""


class EngineError(GuardReasonerError):
    """The inference engine failed (server error, retries exhausted, out of memory)."""


class EngineTimeoutError(EngineError):
    """A generation request timed out (after any retries)."""


class GuardUndecidedError(GuardReasonerError):
    """Raised under the ``raise`` policy when the guard cannot decide; carries the verdict."""

    def __init__(self, verdict: Verdict):
        reason = verdict.parse_detail or verdict.error or verdict.parse_status.value
        super().__init__(f"The guard could not decide ({verdict.parse_status.value}): {reason}")
        self.verdict = verdict


def require(module: str, *, extra: str, feature: str):
    """Import an optional dependency, or raise :class:`MissingExtraError` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(extra, module.split(".")[0], feature) from exc
