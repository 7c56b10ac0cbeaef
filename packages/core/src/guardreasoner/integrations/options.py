"""The vocabulary every adapter speaks: what happens on a violation, the refusal text, what the refusal
carries, and the one error raised when content is blocked.

The option names follow LangChain's ``OpenAIModerationMiddleware`` (``exit_behavior``,
``violation_message`` as a template), so a user moving between frameworks, or from OpenAI's moderation to
GuardReasoner, meets the same words. Each adapter documents what ``"end"`` and ``"replace"`` mean on its
surfaces; the meaning of ``"error"`` is the same everywhere: raise :class:`GuardReasonerViolation`.
Its public names are exported (and listed once, in ``__all__``) by :mod:`guardreasoner.integrations`.
"""

from __future__ import annotations

import string
from typing import Any, Literal, get_args

from guardreasoner.errors import GuardReasonerError
from guardreasoner.verdict import Verdict

ExitBehavior = Literal["error", "end", "replace"]
"""``error``: raise :class:`GuardReasonerViolation`; ``end``: stop and answer the refusal; ``replace``: put
the refusal in place of the flagged content and go on."""

StreamMode = Literal["buffered", "passthrough", "whole"]
"""How a guarded stream reaches its consumer. ``buffered``: held and released chunk by chunk after each
chunk is judged safe (:class:`~guardreasoner.integrations.streaming.BufferedStreamModerator`);
``whole``: held until the whole response is judged, then released; ``passthrough``: shown as it comes and
judged at the end (the consumer may see text the guard then blocks)."""

DEFAULT_VIOLATION_MESSAGE = "I'm sorry, but I can't help with that."

VIOLATION_MESSAGE_FIELDS = ("stage", "labels", "decided_by", "parse_status")
"""The placeholders a ``violation_message`` template may use."""


def check_exit_behavior(value: str, allowed: tuple[str, ...] = get_args(ExitBehavior)) -> ExitBehavior:
    """``value`` when it is one of ``allowed``, else :class:`ValueError` saying which are."""
    if value not in allowed:
        raise ValueError(f"exit_behavior must be one of {', '.join(map(repr, allowed))}, got {value!r}.")
    return value  # type: ignore[return-value]


def check_stream_mode(value: str) -> StreamMode:
    """``value`` when it is a :data:`StreamMode`, else :class:`ValueError` saying which are."""
    allowed = get_args(StreamMode)
    if value not in allowed:
        raise ValueError(f"stream_mode must be one of {', '.join(map(repr, allowed))}, got {value!r}.")
    return value  # type: ignore[return-value]


def check_history_window(value: int) -> int:
    """``value`` (earlier turns folded into the request; 0: the message alone) when it is >= 0."""
    if value < 0:
        raise ValueError(f"history_window must be >= 0, got {value}.")
    return value


def check_stream_chunk_tokens(value: int) -> int:
    """``value`` (tokens a guarded stream releases per check) when it is >= 1."""
    if value < 1:
        raise ValueError(f"stream_chunk_tokens must be >= 1, got {value}.")
    return value


def check_violation_message(template: str) -> str:
    """``template`` when every placeholder in it is one of :data:`VIOLATION_MESSAGE_FIELDS`.

    Adapters call this at construction, so a typo fails when the guard is configured, not when it first
    blocks something. Literal braces are written doubled (``{{`` and ``}}``), as in :meth:`str.format`.
    """
    if not isinstance(template, str) or not template.strip():
        raise ValueError("violation_message must be a non-empty string.")
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    except ValueError as exc:
        raise ValueError(f"violation_message {template!r} is not a valid template: {exc}.") from exc
    unknown = sorted({field for field in fields if field not in VIOLATION_MESSAGE_FIELDS})
    if unknown:
        raise ValueError(
            f"violation_message uses unknown placeholder(s) {', '.join('{' + f + '}' for f in unknown)}; "
            f"the known ones are {', '.join('{' + f + '}' for f in VIOLATION_MESSAGE_FIELDS)} "
            "(write a literal brace as {{ or }})."
        )
    return template


def verdict_labels(verdict: Verdict) -> str:
    """The verdict's labels as ``"prompt_harmfulness=harmful, response_harmfulness=harmful"`` (the ones
    set), or ``"none"`` when the model gave none (a verdict its policy decided)."""
    labels = [
        f"{name}={value}"
        for name in ("prompt_harmfulness", "response_refusal", "response_harmfulness")
        if (value := getattr(verdict, name)) is not None
    ]
    return ", ".join(labels) or "none"


def format_violation_message(template: str, verdict: Verdict, stage: str) -> str:
    """The refusal text: ``template`` with ``{stage}``, ``{labels}``, ``{decided_by}``, ``{parse_status}``
    filled from the verdict (validated by :func:`check_violation_message`)."""
    check_violation_message(template)
    return template.format(
        stage=stage,
        labels=verdict_labels(verdict),
        decided_by=verdict.decided_by or "model",
        parse_status=verdict.parse_status.value,
    )


def violation_metadata(verdict: Verdict, stage: str) -> dict[str, Any]:
    """What a refusal carries under its metadata's ``"guardreasoner"`` key: the stage and the full verdict
    (labels, reasoning, ``decided_by``, ``parse_status``...) as JSON-ready data."""
    return {"stage": stage, "verdict": verdict.model_dump(mode="json")}


class GuardReasonerViolation(GuardReasonerError):
    """The guard judged content harmful (or its policy blocked content it could not judge).

    ``verdict`` is the guard's :class:`~guardreasoner.Verdict` (labels, reasoning, ``decided_by``);
    ``stage`` names where in the adapter's flow the content was judged (``"input"``, ``"output"``,
    ``"tool"``, ``"node"``...); ``content`` is the text that was judged. Without ``message``, the message says
    the stage and whether the guard or its policy blocked. Both adapter packages raise this class.
    """

    def __init__(self, *, verdict: Verdict, stage: str, content: str, message: str | None = None):
        if message is None:
            how = (
                f"the guard could not decide ({verdict.parse_status.value}) and policy {verdict.policy} blocks"
                if verdict.decided_by == "policy"
                else f"the guard judged it harmful ({verdict_labels(verdict)})"
            )
            message = f"GuardReasoner blocked the {stage}: {how}."
        super().__init__(message)
        self.verdict = verdict
        self.stage = stage
        self.content = content
