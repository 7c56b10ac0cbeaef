"""The error the LlamaIndex adapters raise when the guard blocks."""

from __future__ import annotations

from guardreasoner import GuardReasonerError, Verdict

from guardreasoner_llamaindex._guard import Stage


class GuardReasonerViolation(GuardReasonerError):
    """The guard judged content harmful (or its policy blocked content it could not judge).

    ``verdict`` is the guard's :class:`~guardreasoner.Verdict`; ``stage`` is ``"input"`` (the query or chat
    message) or ``"output"`` (the engine's answer); ``content`` is the text that was judged.
    """

    def __init__(self, *, verdict: Verdict, stage: Stage, content: str, message: str | None = None):
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
