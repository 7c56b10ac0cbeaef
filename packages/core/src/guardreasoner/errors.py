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


class EngineCapabilityError(GuardReasonerError, TypeError):
    """The engine cannot do what the guard was configured for (an answer-first ``reasoning`` mode on an
    engine that cannot force an answer): a configuration error, raised once when the guard is built."""


class GuardUndecidedError(GuardReasonerError):
    """Raised under the ``raise`` policy when the guard cannot decide.

    ``verdict`` is the first undecided verdict; ``verdicts`` holds every verdict of the call, in order, the
    decided ones included, so a batch loses nothing.
    """

    def __init__(self, verdict: Verdict, verdicts: list[Verdict] | None = None, *, undecided: int = 1):
        self.verdict = verdict
        self.verdicts = list(verdicts) if verdicts is not None else [verdict]
        reason = verdict.parse_detail or verdict.error or verdict.parse_status.value
        count = (
            f"{undecided} of {len(self.verdicts)} conversations; first: " if len(self.verdicts) > 1 else ""
        )
        super().__init__(f"The guard could not decide ({count}{verdict.parse_status.value}): {reason}")


def require(module: str, *, extra: str, feature: str):
    """Import an optional dependency, or raise :class:`MissingExtraError` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(extra, module.split(".")[0], feature) from exc


class EngineLoadError(GuardReasonerError):
    """The engine could not be built or load its model (missing module, bad option, wrong path).

    A configuration error, raised once when the guard is built (or on first use), never turned into
    verdicts: no conversation was judged.
    """
