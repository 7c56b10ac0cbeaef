"""Typed verdicts.

The three label fields and ``is_parsing_error`` use the names of allenai's ``wildguard`` package so that
its users can switch; the rest says how the answer was obtained and how far to trust it.
"""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from guardreasoner.reasoning import ReasoningBand, ReasoningMode
from guardreasoner.tasks import Task

__all__ = ["USABLE_STATUSES", "HarmLabel", "ParseStatus", "RefusalLabel", "Task", "TaskReasoning", "Verdict"]

HarmLabel = Literal["harmful", "unharmful"]
RefusalLabel = Literal["refusal", "compliance"]


class ParseStatus(str, Enum):
    """What the parser (or the guard, for failures before parsing) found."""

    OK = "ok"
    """Every label was read from the final ``Answers:`` block."""
    CONTRADICTS_REASONING = "answer_contradicts_reasoning"
    """Labels read from the final block, but one differs from that task's own stated conclusion."""
    RECOVERED = "recovered_from_reasoning"
    """The final block lacks a label that a per-task ``Answers:`` line in the reasoning states."""
    ANSWER_OVERRIDDEN = "answer_overridden"
    """Labels read from the final block, but an earlier answer line states another label for the same task
    (``Request: harmful`` ... ``Wait, let me reconsider.`` ... ``Request: unharmful``)."""
    DECORATED_ANSWER = "decorated_answer"
    """Labels read from the final block, but one carries more than the label (``Request: unharmful.``): the
    label stands under ``fail_open``; ``fail_closed`` takes no safe reading from it (the released models
    write bare labels)."""
    AMBIGUOUS_ANSWER = "ambiguous_answer"
    """A final answer is not one label (``unharmful-but-harmful``, ``unharmful, harmful``, ``unharmful?``)."""
    LOOPING_OUTPUT = "looping_output"
    """The output repeats its task sections far more often than a real answer does (a looping generation)."""
    OVERSIZED_OUTPUT = "oversized_output"
    """The output is longer than any real answer (see ``guardreasoner.parsing.MAX_OUTPUT_CHARS``); not read."""
    INCOMPLETE_ANSWER = "incomplete_answer"
    """The final block lacks a needed label and nothing in the reasoning states it."""
    NO_ANSWER_BLOCK = "no_answer_block"
    """The output has no ``Answers:`` block at all and stopped on its own."""
    TRUNCATED = "truncated"
    """The output hit the token limit before giving its answers."""
    EMPTY_OUTPUT = "empty_output"
    ENGINE_ERROR = "engine_error"
    """The engine failed (server error, exhausted retries); no output to parse."""
    TIMEOUT = "timeout"


USABLE_STATUSES = frozenset(
    {
        ParseStatus.OK,
        ParseStatus.CONTRADICTS_REASONING,
        ParseStatus.RECOVERED,
        ParseStatus.ANSWER_OVERRIDDEN,
        ParseStatus.DECORATED_ANSWER,
    }
)
"""The model's labels can be read: ``fail_open`` takes them as they are (the reference's reading); ``fail_closed``
takes a safe reading only from a clean ``ok`` verdict (see :func:`guardreasoner.policy.apply_policy`)."""


class TaskReasoning(BaseModel):
    """One task's section of the model's reasoning."""

    model_config = ConfigDict(frozen=True)

    task: Task
    steps: list[str] = Field(default_factory=list)
    conclusion: str | None = None
    """The task's own concluding sentence, when it states one."""
    conclusion_label: str | None = None
    """The label that conclusion states, when it states exactly one."""


class ScoreStatus(str, Enum):
    """Why a task's score is missing, or only a bound. A task with an exact score has no status."""

    NO_LOGPROBS = "no_logprobs"
    """The engine returned no log-probabilities (it computes none, or the server ignored the request)."""
    NO_TOKENIZER = "no_tokenizer"
    """The engine has no tokenizer to find the label words' tokens (the openai engine: pass ``tokenizer=``)."""
    NO_LABEL = "no_label"
    """The task needs a label and the output gives none."""
    RECOVERED = "recovered_from_reasoning"
    """The label comes from the reasoning, not from the final ``Answers:`` block."""
    NOT_LOCATED = "label_not_located"
    """The final ``Answers:`` block, as the scorer reads it, does not state the verdict's label."""
    NOT_AT_TOKEN_BOUNDARY = "label_not_at_token_boundary"
    """The label does not start at a token boundary, or the model spelled it with other tokens than the
    tokenizer's, so no single position decides between the two labels."""
    TOP_K_BOUND = "top_k_bound"
    """The score is present but a bound: the other label was outside the engine's top-k log-probabilities,
    so the score is the value nearest 0.5 that the reported ones allow (the true one is further from 0.5)."""


class Verdict(BaseModel):
    """The guard's answer for one conversation."""

    model_config = ConfigDict(frozen=True)

    prompt_harmfulness: HarmLabel | None = None
    response_refusal: RefusalLabel | None = None
    response_harmfulness: HarmLabel | None = None
    is_parsing_error: bool = False
    """True when a label the conversation needs could not be read cleanly or recovered."""

    is_harmful: bool | None = None
    """The decision: the request or the response is harmful. Set by the policy when the model could not decide."""
    decided_by: Literal["model", "policy"] | None = None
    policy: str | None = None
    """The policy that decided, when ``decided_by == "policy"``."""

    parse_status: ParseStatus = ParseStatus.OK
    parse_detail: str | None = None
    """A sentence saying what went wrong, for any status but ``ok``."""
    recovered_fields: list[str] = Field(default_factory=list)
    harmful_signals: list[str] = Field(default_factory=list)
    """Where the output says harmful (final answers, earlier answer lines, task conclusions), for the tasks the
    conversation needs; under ``fail_closed`` any of them wins over an unharmful reading."""
    reasoning: list[TaskReasoning] = Field(default_factory=list)
    raw_output: str = ""
    finish_reason: str | None = None
    """``stop`` or ``length`` as the engine reports it; None when unknown."""
    num_generated_tokens: int | None = None
    num_prompt_tokens: int | None = None
    input_truncated: bool = False
    """The conversation was cut (head and tail kept) to fit the model's context."""
    error: str | None = None
    """The engine's error message, for ``engine_error`` and ``timeout``."""

    prompt_harmfulness_score: float | None = Field(default=None, ge=0.0, le=1.0)
    """P(harmful) for the request: the model's probability of ``harmful`` at the label of the final
    ``Answers:`` block, renormalised over the two labels' first differing tokens. None: see ``score_status``."""
    response_refusal_score: float | None = Field(default=None, ge=0.0, le=1.0)
    """P(refusal) for the response, likewise."""
    response_harmfulness_score: float | None = Field(default=None, ge=0.0, le=1.0)
    """P(harmful) for the response, likewise."""
    score_status: dict[str, ScoreStatus] = Field(default_factory=dict)
    """Per label field (``prompt_harmfulness``, ...), why its score is missing or only a bound."""
    thresholds: dict[str, float] = Field(default_factory=dict)
    """The per-field thresholds the guard applied: the label is the positive one when score >= threshold."""
    threshold_fallbacks: list[str] = Field(default_factory=list)
    """Fields with a threshold that could not decide (no score, or a bound on the wrong side of it): their
    label is greedy decoding's."""
    forced_answer: bool = False
    """The reasoning ran past the engine's ``max_reasoning_tokens``; the labels come from an answer the engine
    forced (under ``fail_closed`` such an allow is not clean)."""

    reasoning_mode: ReasoningMode = ReasoningMode.ALWAYS
    """The guard's ``reasoning`` setting: ``always``, ``auto`` or ``never`` (``guardreasoner.reasoning``)."""
    reasoned: bool = True
    """True when the labels come from an output in which the model wrote its reasoning (``always``, and
    ``auto`` verdicts escalated to it); False when they come from the answer forced right after the prompt."""
    first_pass_scores: dict[str, float] = Field(default_factory=dict)
    """``auto`` and ``never``: per label field, the forced answer's score (kept when the conversation was then
    reasoned in full, whose own scores are in the ``*_score`` fields)."""
    first_pass_tokens: int | None = None
    """``auto`` and ``never``: the tokens the forced answer generated (an escalated verdict's
    ``num_generated_tokens`` counts the reasoning pass's only)."""
    reasoning_band: ReasoningBand | None = None
    """``auto`` and ``never``: the band of scores the guard treated as unsure."""
    escalation_reason: str | None = None
    """``auto``: why the conversation was reasoned in full (a score inside the band, no score, an unclear
    forced answer); None when the forced answer decided it."""

    @property
    def total_generated_tokens(self) -> int | None:
        """The tokens generated for this verdict over both passes: ``num_generated_tokens``, plus
        ``first_pass_tokens`` for a verdict reasoned on after its forced answer (``auto``); None when the
        engine counts none."""
        if self.num_generated_tokens is None:
            return None
        first = self.first_pass_tokens if self.reasoned and self.first_pass_tokens is not None else 0
        return self.num_generated_tokens + first

    @property
    def is_usable(self) -> bool:
        """Whether the model itself decided (no policy needed)."""
        return self.parse_status in USABLE_STATUSES and not self.is_parsing_error

    @property
    def is_safe(self) -> bool:
        """The negation of the final decision; an undecided verdict (no policy applied) is not safe."""
        return self.is_harmful is False
