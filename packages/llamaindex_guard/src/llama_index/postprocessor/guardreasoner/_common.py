"""What the LlamaIndex adapters share: the guarding options, the refusal, and turning chat messages into turns.

Nothing here judges content: the verdict comes from :class:`guardreasoner.GuardReasoner` and its failure
policy. The vocabulary (``exit_behavior``, ``violation_message`` templates, the refusal's metadata, the one
error) is :mod:`guardreasoner.integrations`'; this module applies it to LlamaIndex's messages and answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from llama_index.core.base.llms.types import ChatMessage, MessageRole

from guardreasoner import Verdict
from guardreasoner.guard import GuardReasoner
from guardreasoner.integrations import (
    ExitBehavior,
    GuardProvider,
    GuardReasonerViolation,
    check_exit_behavior,
    check_history_window,
    check_violation_message,
    format_violation_message,
    violation_metadata,
)
from guardreasoner.integrations.history import DEFAULT_HISTORY_TURNS, fold_history

Stage = Literal["input", "output", "tool"]


def text_or_none(text: str | None) -> str | None:
    return text if text is not None and text.strip() else None


class Guarding:
    """The options every guarded engine and agent takes, and what they do on a violation.

    ``exit_behavior``: ``"error"`` raises :class:`~guardreasoner.integrations.GuardReasonerViolation`;
    ``"end"`` answers the refusal; ``"replace"`` puts the refusal in place of the flagged content and goes
    on (what that means on each surface is in the class's docstring). ``violation_message`` is the refusal's
    template (``{stage}``, ``{labels}``, ``{decided_by}``, ``{parse_status}``), checked here, at construction.
    """

    def __init__(
        self,
        guard: GuardReasoner | None,
        model: str | None,
        guard_options: dict[str, Any],
        *,
        exit_behavior: ExitBehavior,
        violation_message: str,
        check_input: bool,
        check_output: bool,
        history_window: int = DEFAULT_HISTORY_TURNS,
    ):
        self.provider = GuardProvider(guard, model, guard_options)
        self.exit_behavior = check_exit_behavior(exit_behavior)
        self.violation_message = check_violation_message(violation_message)
        self.check_input = check_input
        self.check_output = check_output
        self.history_window = check_history_window(history_window)

    @property
    def guard(self) -> GuardReasoner:
        return self.provider.get()

    def refusal(self, verdict: Verdict, stage: Stage) -> str:
        return format_violation_message(self.violation_message, verdict, stage)

    def violation(self, verdict: Verdict, stage: Stage, content: str) -> GuardReasonerViolation:
        return GuardReasonerViolation(verdict=verdict, stage=stage, content=content)

    @staticmethod
    def metadata(verdict: Verdict, stage: Stage) -> dict[str, Any]:
        """What a refusal carries: ``{"guardreasoner": {"stage": ..., "verdict": <the full verdict>}}``."""
        return {"guardreasoner": violation_metadata(verdict, stage)}

    def request(self, history: Sequence[ChatMessage], message: str) -> str:
        """What the guard reads as the request: ``message`` with up to ``history_window`` earlier turns."""
        prompt, _ = fold_history([*turns_of(history), ("user", message)], window=self.history_window)
        return prompt


def turns_of(messages: Sequence[ChatMessage]) -> list[tuple[str, str | None]]:
    """Chat messages as ``(role, text)`` turns; system and tool messages are left out by ``fold_history``."""
    roles = {MessageRole.USER: "user", MessageRole.ASSISTANT: "assistant"}
    return [(roles.get(message.role, str(message.role.value)), message.content) for message in messages]
