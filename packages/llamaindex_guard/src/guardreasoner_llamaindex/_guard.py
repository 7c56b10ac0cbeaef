"""What the LlamaIndex adapters share: the guard (given or built lazily) and the block rule.

Nothing here judges content: the verdict comes from :class:`guardreasoner.GuardReasoner` and its failure
policy; the adapters only turn queries, answers and nodes into ``(prompt, response)`` and verdicts into
framework behaviour.
"""

from __future__ import annotations

import threading
from typing import Any, Literal

from guardreasoner import Verdict
from guardreasoner.guard import GuardReasoner

Stage = Literal["input", "output", "node"]


class GuardProvider:
    """Holds the guard: the one given, or one built from keyword options on first use (then reused)."""

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


def text_or_none(text: str | None) -> str | None:
    return text if text is not None and text.strip() else None


def is_violation(verdict: Verdict, *, judged_on: Literal["request", "response"]) -> bool:
    """Whether a verdict blocks.

    A request alone blocks when the guard's decision is harmful. With a response, the response is judged:
    it blocks when the model labels the *response* harmful (a refusal of a harmful request passes). A verdict
    the policy decided (the model's output was unusable) blocks under fail closed and passes under fail open.
    """
    if judged_on == "response" and verdict.decided_by == "model":
        return verdict.response_harmfulness == "harmful"
    return not verdict.is_safe


def verdict_metadata(stage: Stage, verdict: Verdict) -> dict[str, Any]:
    """What a refusal carries in its ``metadata["guardreasoner"]``."""
    return {"stage": stage, "verdict": verdict}
