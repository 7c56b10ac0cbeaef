"""What the LlamaIndex adapters share: reading chat messages as turns, and what a refusal carries.

Nothing here judges content: the verdict comes from :class:`guardreasoner.GuardReasoner` and its failure
policy. The options, the refusal and the one error are :mod:`guardreasoner.integrations`'
(:class:`~guardreasoner.integrations.guarding.Guarding`); this module applies them to LlamaIndex's
messages and answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from llama_index.core.base.llms.types import ChatMessage, MessageRole

from guardreasoner import Verdict
from guardreasoner.integrations import fold_history, violation_metadata

Stage = Literal["input", "output", "tool"]


def text_or_none(text: str | None) -> str | None:
    return text if text is not None and text.strip() else None


def refusal_metadata(verdict: Verdict, stage: Stage) -> dict[str, Any]:
    """What a refusal carries: ``{"guardreasoner": {"stage": ..., "verdict": <the full verdict>}}``."""
    return {"guardreasoner": violation_metadata(verdict, stage)}


def folded_request(history: Sequence[ChatMessage], message: str, window: int) -> str:
    """What the guard reads as the request: ``message`` with up to ``window`` earlier turns of ``history``."""
    prompt, _ = fold_history([*turns_of(history), ("user", message)], window=window)
    return prompt


def turns_of(messages: Sequence[ChatMessage]) -> list[tuple[str, str | None]]:
    """Chat messages as ``(role, text)`` turns; system and tool messages are left out by ``fold_history``."""
    roles = {MessageRole.USER: "user", MessageRole.ASSISTANT: "assistant"}
    return [(roles.get(message.role, str(message.role.value)), message.content) for message in messages]
