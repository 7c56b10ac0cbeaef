"""How a guard check shows in a framework's traces: a LangChain child run, a LlamaIndex span.

The adapters judge through :func:`classify_checks` (or :class:`~guardreasoner.integrations.Guarding`, which
calls it), handing each :class:`Check` to the wrapper's :class:`CheckTracer`. The tracer opens what its
framework shows (a run, a span) under the step being guarded before the guard is called, and closes it with
the verdict (or the error) when the guard answers, so the record's start and end are the check's own.
:data:`NO_TRACE`, the default, records nothing.

What a trace shows of a verdict is :func:`verdict_summary`'s alone: labels, scores, the decision, who
decided and how the output parsed, tokens; never text. The judged conversation goes where the framework
records inputs (a run's inputs, a span's arguments), as it does for the model's own calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from guardreasoner.guard import GuardReasoner
from guardreasoner.integrations.provider import is_violation
from guardreasoner.scores import SCORE_FIELDS
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


def verdict_summary(verdict: Verdict, check: Check) -> dict[str, Any]:
    """What a trace shows of a check's verdict, as JSON-ready data with no text in it.

    ``stage`` (and ``chunk``), ``blocked`` (the check's block rule applied), ``is_harmful``, ``labels`` and
    ``scores`` (the ones set), ``decided_by``, ``parse_status``, ``policy`` (when the policy decided),
    ``tokens`` (prompt and generated, when the engine counts them), and ``forced_answer`` /
    ``input_truncated`` when they happened. The guard's reasoning is left out: it quotes the conversation.
    """
    summary: dict[str, Any] = {"stage": check.stage}
    if check.chunk is not None:
        summary["chunk"] = check.chunk
    summary.update(
        blocked=check.blocks(verdict),
        is_harmful=verdict.is_harmful,
        labels={field: label for field in SCORE_FIELDS if (label := getattr(verdict, field)) is not None},
        scores={
            field: score
            for field, name in SCORE_FIELDS.items()
            if (score := getattr(verdict, name)) is not None
        },
        decided_by=verdict.decided_by,
        parse_status=verdict.parse_status.value,
    )
    if verdict.decided_by == "policy":
        summary["policy"] = verdict.policy
    if verdict.num_prompt_tokens is not None or verdict.num_generated_tokens is not None:
        summary["tokens"] = {"prompt": verdict.num_prompt_tokens, "generated": verdict.num_generated_tokens}
    if verdict.forced_answer:
        summary["forced_answer"] = True
    if verdict.input_truncated:
        summary["input_truncated"] = True
    return summary


def guard_metadata(guard: GuardReasoner) -> dict[str, str]:
    """The guard a check ran on: its model and engine."""
    return {"model": guard.model, "engine": guard.engine.name}


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
