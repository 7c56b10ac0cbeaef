"""What the LlamaIndex adapters share: their stages, text clean-up, and the metadata a refusal carries.

Nothing here judges content: the verdict comes from :class:`guardreasoner.GuardReasoner` and its failure
policy; the adapters only turn queries, answers and nodes into ``(prompt, response)`` and verdicts into
framework behaviour. The framework-neutral pieces (the guard given or built lazily, the block rule, the base
error) are in :mod:`guardreasoner.integrations`.
"""

from __future__ import annotations

from typing import Any, Literal

from guardreasoner import Verdict

Stage = Literal["input", "output", "node"]


def text_or_none(text: str | None) -> str | None:
    return text if text is not None and text.strip() else None


def verdict_metadata(stage: Stage, verdict: Verdict) -> dict[str, Any]:
    """What a refusal carries in its ``metadata["guardreasoner"]``."""
    return {"stage": stage, "verdict": verdict}
