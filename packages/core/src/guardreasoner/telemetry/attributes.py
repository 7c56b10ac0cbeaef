"""What of a verdict, and of the guard that gave it, is shown outside the process: one owner for the
OpenTelemetry attributes and for what the framework adapters put in their runs and spans
(:func:`guardreasoner.integrations.verdict_summary` nests these same facts).

Values are plain ``str``/``bool``/``int``/``float`` (or lists of ``str``), never None, so every tracing backend
takes them as they are. Conversation text (the judged prompt and response, the model's raw output, and the
messages that can quote them) is shown only when asked: ``content=True``, which the guard passes when built with
``trace_content=True`` or run with ``GUARDREASONER_TRACE_CONTENT=1``.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from guardreasoner.scores import SCORE_FIELDS
from guardreasoner.verdict import Verdict

if TYPE_CHECKING:
    from guardreasoner.guard import GuardReasoner

__all__ = [
    "CONTENT_ENV",
    "AttributeValue",
    "content_tracing",
    "guard_attributes",
    "prefixed",
    "verdict_attributes",
    "verdict_counts",
]

AttributeValue = str | bool | int | float | list[str]

CONTENT_ENV = "GUARDREASONER_TRACE_CONTENT"
"""Set to ``1`` to put conversation text into spans for every guard built without ``trace_content=``."""

LABEL_FIELDS = tuple(SCORE_FIELDS)
CONTENT_FIELDS = ("raw_output", "parse_detail", "error", "escalation_reason")
"""Verdict fields that can quote the conversation or the model's output (``parse_detail`` quotes an ambiguous
answer; an engine's error message may echo its request, and ``escalation_reason`` quotes the forced answer's
engine error when that failed): shown only with ``content=True``."""

_ALWAYS_COUNTED = ("verdicts.harmful", "verdicts.safe", "verdicts.decided_by.policy", "verdicts.reasoned")
"""Counts present even when zero, so a dashboard can sum them without a missing-attribute case."""

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def content_tracing(trace_content: bool | None) -> bool:
    """Whether conversation text goes into spans: ``trace_content`` when given, else :data:`CONTENT_ENV`."""
    if trace_content is not None:
        if not isinstance(trace_content, bool):
            raise TypeError(f"trace_content must be True, False or None, got {trace_content!r}.")
        return trace_content
    value = os.environ.get(CONTENT_ENV, "").strip().lower()
    if value not in _TRUE + _FALSE:
        raise ValueError(
            f"{CONTENT_ENV}={os.environ[CONTENT_ENV]!r} is not a yes or a no: set it to 1 (conversation text in "
            "spans) or 0 (the default: none), or pass trace_content= to GuardReasoner."
        )
    return value in _TRUE


def guard_attributes(guard: GuardReasoner) -> dict[str, str]:
    """The guard a check ran on: its ``model``, ``engine``, failure ``policy`` and ``reasoning_mode``."""
    return {
        "model": guard.model,
        "engine": guard.engine.name,
        "policy": guard.policy.value,
        "reasoning_mode": guard.reasoning.value,
    }


def verdict_attributes(verdict: Verdict, *, content: bool = False) -> dict[str, AttributeValue]:
    """One verdict as flat attributes: its labels, scores and why a score is missing
    (``score_status.<field>``), ``is_harmful``, ``decided_by`` (and ``policy``), ``parse_status``,
    ``finish_reason``, tokens, ``input_truncated``, ``forced_answer``, threshold fallbacks; answer-first's
    ``reasoning_mode``, ``reasoned``, and with a forced answer ``first_pass_scores.<field>``,
    ``first_pass_tokens`` and ``reasoning_band.low``/``.high``; with ``content``, also
    :data:`CONTENT_FIELDS`. Unset fields (None) are left out."""
    attributes = _present(verdict, (*LABEL_FIELDS, *SCORE_FIELDS.values()))
    for field, status in verdict.score_status.items():
        attributes[f"score_status.{field}"] = status.value
    attributes.update(_present(verdict, ("is_harmful", "decided_by", "policy")))
    attributes["parse_status"] = verdict.parse_status.value
    attributes.update(_present(verdict, ("finish_reason", "num_prompt_tokens", "num_generated_tokens")))
    attributes["input_truncated"] = verdict.input_truncated
    attributes["forced_answer"] = verdict.forced_answer
    if verdict.threshold_fallbacks:
        attributes["threshold_fallbacks"] = list(verdict.threshold_fallbacks)
    attributes["reasoning_mode"] = verdict.reasoning_mode.value
    attributes["reasoned"] = verdict.reasoned
    for field, score in verdict.first_pass_scores.items():
        attributes[f"first_pass_scores.{field}"] = score
    attributes.update(_present(verdict, ("first_pass_tokens",)))
    if verdict.reasoning_band is not None:
        attributes["reasoning_band.low"] = verdict.reasoning_band.low
        attributes["reasoning_band.high"] = verdict.reasoning_band.high
    if content:
        for name in CONTENT_FIELDS:
            value = getattr(verdict, name)
            if value:
                attributes[name] = value
    return attributes


def _present(verdict: Verdict, names: Iterable[str]) -> dict[str, AttributeValue]:
    """The verdict's fields ``names`` that are set (not None)."""
    return {name: value for name in names if (value := getattr(verdict, name)) is not None}


def verdict_counts(verdicts: Iterable[Verdict]) -> dict[str, int]:
    """A batch's verdicts counted: ``verdicts.harmful``/``.safe``/``.undecided`` (no decision: the ``raise``
    policy), ``verdicts.decided_by.policy``, per label (``verdicts.prompt_harmfulness.harmful``...), per
    ``parse_status``, forced answers, cut inputs and ``verdicts.reasoned`` (the model wrote its reasoning); and
    the tokens summed (``num_prompt_tokens``, ``num_generated_tokens``, ``first_pass_tokens``, where the
    engine counts them)."""
    counts: Counter[str] = Counter(dict.fromkeys(_ALWAYS_COUNTED, 0))
    tokens: Counter[str] = Counter()
    for verdict in verdicts:
        decision = {True: "harmful", False: "safe", None: "undecided"}[verdict.is_harmful]
        counts[f"verdicts.{decision}"] += 1
        counts["verdicts.decided_by.policy"] += verdict.decided_by == "policy"
        counts[f"verdicts.parse_status.{verdict.parse_status.value}"] += 1
        for field in LABEL_FIELDS:
            label = getattr(verdict, field)
            if label is not None:
                counts[f"verdicts.{field}.{label}"] += 1
        counts["verdicts.forced_answer"] += verdict.forced_answer
        counts["verdicts.input_truncated"] += verdict.input_truncated
        counts["verdicts.reasoned"] += verdict.reasoned
        for name in ("num_prompt_tokens", "num_generated_tokens", "first_pass_tokens"):
            if (value := getattr(verdict, name)) is not None:
                tokens[name] += value
    return {**{key: n for key, n in counts.items() if n or key in _ALWAYS_COUNTED}, **tokens}


def prefixed(
    attributes: Mapping[str, AttributeValue], prefix: str = "guardreasoner."
) -> dict[str, AttributeValue]:
    """``attributes`` with every key under ``prefix`` (the OpenTelemetry namespace)."""
    return {prefix + key: value for key, value in attributes.items()}
