"""Helpers for framework adapters (``guardreasoner_langchain``, ``guardreasoner_llamaindex``, your own).

What every adapter needs whatever its framework: the guard (the one given, or one built lazily from
options), the rule that turns a verdict into block or pass, and the error to raise when content is blocked.
Nothing here judges content (the verdict comes from :class:`~guardreasoner.GuardReasoner` and its failure
policy), and no framework is imported here: each adapter keeps its own framework code (its stages, how it
reads messages or nodes) and builds on these pieces.
"""

from __future__ import annotations

import threading
from typing import Any, Literal

from guardreasoner.errors import GuardReasonerError
from guardreasoner.guard import GuardReasoner
from guardreasoner.verdict import Verdict

__all__ = ["GuardProvider", "GuardViolation", "is_violation"]


class GuardProvider:
    """Holds the guard: the one given, or one built from keyword options on first use (then reused).

    Building is deferred so that constructing an adapter (at import time, in a module-level chain) loads
    no model; the first check loads it once, under a lock, even when several threads check at once.
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
        self._options = dict(options)
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


class GuardViolation(GuardReasonerError):
    """The guard judged content harmful (or its policy blocked content it could not judge).

    ``verdict`` is the guard's :class:`~guardreasoner.Verdict` (labels, reasoning, ``decided_by``);
    ``stage`` names where in the adapter's flow the content was judged (``"input"``, ``"output"``, ...);
    ``content`` is the text that was judged. Without ``message``, the message says the stage and whether
    the guard or its policy blocked. Each adapter raises its own subclass, which narrows ``stage``.
    """

    def __init__(self, *, verdict: Verdict, stage: str, content: str, message: str | None = None):
        if message is None:
            how = (
                f"the guard could not decide ({verdict.parse_status.value}) and policy {verdict.policy} blocks"
                if verdict.decided_by == "policy"
                else "the guard judged it harmful"
            )
            message = f"GuardReasoner blocked the {stage}: {how}."
        super().__init__(message)
        self.verdict = verdict
        self.stage = stage
        self.content = content
