"""How a guard check shows in a framework's traces: a LangChain child run, a LlamaIndex span.

The adapters judge through :func:`classify_checks` (or :class:`~guardreasoner.integrations.Guarding`, which
calls it), handing each :class:`Check` to the wrapper's :class:`CheckTracer`. The tracer opens what its
framework shows (a run, a span) under the step being guarded before the guard is called, and closes it with
the verdict (or the error) when the guard answers, so the record's start and end are the check's own.
:data:`NO_TRACE`, the default, records nothing.

What a trace shows of a verdict is :func:`verdict_summary`: the facts
:func:`~guardreasoner.telemetry.verdict_attributes` defines for every span (labels, scores, the decision, who
decided and how the output parsed, tokens, answer-first's fields), nested, with the check's own; never text.
The judged conversation goes where the framework records inputs (a run's inputs, a span's arguments), as it
does for the model's own calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from guardreasoner.guard import GuardReasoner
from guardreasoner.integrations.provider import is_violation
from guardreasoner.scores import SCORE_FIELDS
from guardreasoner.telemetry.attributes import verdict_attributes
from guardreasoner.verdict import Verdict

__all__ = ["NO_TRACE", "Check", "CheckTracer", "aclassify_checks", "classify_checks", "verdict_summary"]


@dataclass(frozen=True)
class Check:
    """One exchange to judge and where the adapter judges it.

    ``stage``: ``"input"``, ``"output"``, ``"tool"``, ``"node"`` (as
    :class:`~guardreasoner.integrations.GuardReasonerViolation` and the refusals name it); ``chunk``: the
    number (from 1) of a streamed answer's check, None for a whole one.
    """

    stage: str
    prompt: str
    response: str | None = None
    chunk: int | None = None

    @property
    def judged_on(self) -> Literal["request", "response"]:
        return "request" if self.response is None else "response"

    def blocks(self, verdict: Verdict) -> bool:
        """The adapters' block rule (:func:`~guardreasoner.integrations.is_violation`) for this check."""
        return is_violation(verdict, judged_on=self.judged_on)

    def inputs(self) -> dict[str, Any]:
        """The judged exchange, as a trace's inputs show it."""
        return {"prompt": self.prompt, "response": self.response}


_GROUPED = {
    **{field: ("labels", field) for field in SCORE_FIELDS},
    **{name: ("scores", field) for field, name in SCORE_FIELDS.items()},
    "num_prompt_tokens": ("tokens", "prompt"),
    "num_generated_tokens": ("tokens", "generated"),
    "first_pass_tokens": ("tokens", "first_pass"),
}
"""Flat attributes the summary groups under another name: ``{"labels": {...}, "scores": {...}, "tokens":
{...}}``. A dotted attribute (``score_status.<field>``) nests under its first part."""


def verdict_summary(verdict: Verdict, check: Check) -> dict[str, Any]:
    """What a trace shows of a check's verdict, as JSON-ready data with no text in it.

    The check's ``stage`` (and ``chunk``) and ``blocked`` (its block rule applied), then the verdict's
    :func:`~guardreasoner.telemetry.verdict_attributes`, nested: ``is_harmful`` (null when undecided),
    ``labels`` and ``scores`` (the ones set), ``decided_by``, ``policy`` (when the policy decided),
    ``tokens`` (``prompt``, ``generated``, ``first_pass``, as the engine counts them), ``parse_status``,
    ``score_status``, ``reasoning_mode``, ``reasoned``, ``first_pass_scores``, ``reasoning_band``...
    Fields that can quote the conversation (the reasoning, the raw output) are left out.
    """
    summary: dict[str, Any] = {"stage": check.stage}
    if check.chunk is not None:
        summary["chunk"] = check.chunk
    attributes = verdict_attributes(verdict)
    summary.update(
        blocked=check.blocks(verdict), is_harmful=attributes.pop("is_harmful", None), labels={}, scores={}
    )
    for key, value in attributes.items():
        group, _, name = key.partition(".")
        if key in _GROUPED:
            group, name = _GROUPED[key]
        if name:
            summary.setdefault(group, {})[name] = value
        else:
            summary[group] = value
    return summary


class CheckTracer:
    """Records checks in a framework's traces; this base records nothing (:data:`NO_TRACE`).

    An adapter's tracer overrides :meth:`start` (open a record per check, under the current step; what it
    returns is handed back to :meth:`end`/:meth:`fail`), :meth:`end` and :meth:`fail`, and their async forms
    where its framework awaits them. :meth:`here` binds the tracer to the current step, for checks that run
    later, outside it (a stream read after the call returned).
    """

    def here(self) -> CheckTracer:
        return self

    def start(self, guard: GuardReasoner, checks: Sequence[Check]) -> Any:
        return None

    def end(self, opened: Any, checks: Sequence[Check], verdicts: Sequence[Verdict]) -> None:
        return None

    def fail(self, opened: Any, checks: Sequence[Check], error: BaseException) -> None:
        return None

    async def astart(self, guard: GuardReasoner, checks: Sequence[Check]) -> Any:
        return self.start(guard, checks)

    async def aend(self, opened: Any, checks: Sequence[Check], verdicts: Sequence[Verdict]) -> None:
        self.end(opened, checks, verdicts)

    async def afail(self, opened: Any, checks: Sequence[Check], error: BaseException) -> None:
        self.fail(opened, checks, error)


NO_TRACE = CheckTracer()


def classify_checks(tracer: CheckTracer, guard: GuardReasoner, checks: Sequence[Check]) -> list[Verdict]:
    """The verdict of each check, in one guard call (``classify`` for one, ``classify_batch`` for several),
    recorded by ``tracer``."""
    opened = tracer.start(guard, checks)
    try:
        if len(checks) == 1:
            verdicts = [guard.classify(checks[0].prompt, checks[0].response)]
        else:
            verdicts = guard.classify_batch([(check.prompt, check.response) for check in checks])
    except BaseException as exc:
        tracer.fail(opened, checks, exc)
        raise
    tracer.end(opened, checks, verdicts)
    return verdicts


async def aclassify_checks(
    tracer: CheckTracer, guard: GuardReasoner, checks: Sequence[Check]
) -> list[Verdict]:
    """:func:`classify_checks` with the guard's ``aclassify``/``aclassify_batch``."""
    opened = await tracer.astart(guard, checks)
    try:
        if len(checks) == 1:
            verdicts = [await guard.aclassify(checks[0].prompt, checks[0].response)]
        else:
            verdicts = await guard.aclassify_batch([(check.prompt, check.response) for check in checks])
    except BaseException as exc:
        await tracer.afail(opened, checks, exc)
        raise
    await tracer.aend(opened, checks, verdicts)
    return verdicts
