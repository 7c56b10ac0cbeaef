"""The guard an adapter holds (given, or built lazily from options) and the rule that turns a verdict into
block or pass. Nothing here judges content: the verdict comes from :class:`~guardreasoner.GuardReasoner`
and its failure policy.
"""

from __future__ import annotations

import threading
from typing import Any, Literal

from guardreasoner.guard import GuardReasoner
from guardreasoner.reasoning import load_reasoning_band, reasoning_mode
from guardreasoner.thresholds import load_thresholds
from guardreasoner.verdict import Verdict

__all__ = ["GuardProvider", "is_violation"]


class GuardProvider:
    """Holds the guard: the one given, or one built from keyword options on first use (then reused).

    Building is deferred so that constructing an adapter (at import time, in a module-level chain) loads
    no model; the first check loads it once, under a lock, even when several threads check at once. The
    options that need no model (``reasoning``, ``reasoning_band``, ``thresholds``) are checked, and their
    files read, at construction, so a misconfigured adapter fails where it is built.
    Passing both a guard and options raises :class:`ValueError` naming the options.
    """

    def __init__(self, guard: GuardReasoner | None, model: str | None, options: dict[str, Any]):
        if guard is not None and (model is not None or options):
            given = sorted([*options, *(["model"] if model is not None else [])])
            raise ValueError(
                f"Pass either guard= or the options to build one ({', '.join(given)}), not both: "
                "configure the GuardReasoner you pass instead."
            )
        self._guard = guard
        self._model = model
        self._options = _checked(options)
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        return self._guard is not None

    def get(self) -> GuardReasoner:
        if self._guard is None:
            with self._lock:
                if self._guard is None:
                    args = () if self._model is None else (self._model,)
                    self._guard = GuardReasoner(*args, **self._options)
        return self._guard


def is_violation(verdict: Verdict, *, judged_on: Literal["request", "response"]) -> bool:
    """Whether a verdict blocks.

    A request alone blocks when the guard's decision is harmful. With a response, the response is what gets
    through, so it blocks when the model labels the *response* harmful: a harmful request the AI refused
    passes (judge the request alone, before the model, to stop it). A verdict the policy decided (the model's
    output was unusable) blocks or not as the policy says: fail closed blocks, fail open passes.
    """
    if judged_on == "response" and verdict.decided_by == "model":
        return verdict.response_harmfulness == "harmful"
    return not verdict.is_safe


_EAGER_CHECKS = {
    "reasoning": reasoning_mode,
    "reasoning_band": load_reasoning_band,
    "thresholds": load_thresholds,
}
"""The guard options that need no model: checked (a file read) when the adapter is built."""


def _checked(options: dict[str, Any]) -> dict[str, Any]:
    return {name: _EAGER_CHECKS.get(name, lambda value: value)(value) for name, value in options.items()}
