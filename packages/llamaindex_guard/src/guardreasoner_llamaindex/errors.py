"""The error the LlamaIndex adapters raise when the guard blocks."""

from __future__ import annotations

from guardreasoner import Verdict
from guardreasoner.integrations import GuardViolation

from guardreasoner_llamaindex._guard import Stage


class GuardReasonerViolation(GuardViolation):
    """The guard judged content harmful (or its policy blocked content it could not judge).

    ``verdict`` is the guard's :class:`~guardreasoner.Verdict`; ``stage`` is ``"input"`` (the query or chat
    message) or ``"output"`` (the engine's answer); ``content`` is the text that was judged. The attributes
    and message come from :class:`guardreasoner.integrations.GuardViolation`.
    """

    stage: Stage

    def __init__(self, *, verdict: Verdict, stage: Stage, content: str, message: str | None = None):
        super().__init__(verdict=verdict, stage=stage, content=content, message=message)
