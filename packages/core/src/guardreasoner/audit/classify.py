"""One guard turning records into verdict rows: the step both runners share, so they give the same verdicts."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from guardreasoner.audit.rows import verdict_to_row
from guardreasoner.conversation import Conversation
from guardreasoner.engines import Engine
from guardreasoner.guard import GuardReasoner
from guardreasoner.reasoning import ReasoningBand, ReasoningMode


@dataclass(frozen=True)
class GuardSpec:
    """How to build the guard: in this process, or once in each Ray actor (so it must pickle).

    Audits cut an over-long conversation to its head and tail (``truncation="head_tail"``; the verdict
    says ``input_truncated``) rather than stop a million-record run on one record.
    """

    model: str | os.PathLike[str]
    engine: str | Engine = "auto"
    policy: str = "fail_closed"
    max_new_tokens: int = 2048
    engine_options: dict[str, Any] = field(default_factory=dict)
    reasoning: ReasoningMode = ReasoningMode.ALWAYS
    reasoning_band: ReasoningBand | None = None
    """Read before the audit starts (a band file is read once, not by each actor)."""

    def build(self) -> GuardReasoner:
        return GuardReasoner(
            self.model,
            engine=self.engine,
            policy=self.policy,
            max_new_tokens=self.max_new_tokens,
            truncation="head_tail",
            reasoning=self.reasoning,
            reasoning_band=self.reasoning_band,
            **self.engine_options,
        )


def conversations(prompts: list, responses: list | None) -> list[Conversation]:
    responses = responses if responses is not None else [None] * len(prompts)
    return [Conversation(prompt=p, response=r) for p, r in zip(prompts, responses)]


def classify_rows(
    guard: GuardReasoner, ids: list, prompts: list, responses: list | None, id_column: str
) -> list[dict[str, Any]]:
    """Classify validated records in one ``classify_batch`` call; one output row per record, in order."""
    verdicts = guard.classify_batch(conversations(prompts, responses))
    return [verdict_to_row(i, v, id_column) for i, v in zip(ids, verdicts)]


async def aclassify_rows(
    guard: GuardReasoner, ids: list, prompts: list, responses: list | None, id_column: str
) -> list[dict[str, Any]]:
    """:func:`classify_rows` through the async path (the ``openai`` engine's concurrent requests)."""
    verdicts = await guard.aclassify_batch(conversations(prompts, responses))
    return [verdict_to_row(i, v, id_column) for i, v in zip(ids, verdicts)]
