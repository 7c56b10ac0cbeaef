"""What an unusable verdict means: the guard's failure policy.

A guard that cannot decide (unparseable output, timeout, engine failure) must still answer. Fail closed
treats the conversation as harmful (the default: a broken guard blocks rather than waves through), fail open
treats it as safe, and raise hands the verdict to the caller in :class:`GuardUndecidedError`.

A verdict whose labels were read but not from one clean final answer (recovered from the reasoning,
contradicting it, overridden) is decided as the reference reads it when that reading is harmful, or under
``fail_open``. Under ``fail_closed`` the guard allows only a clean ``ok`` verdict with no harmful signal
anywhere in its answers or conclusions (those the parse weighs, and those it does not:
:func:`guardreasoner.parsing.stray_harm_statements`); a final label with trailing decoration is
``decorated_answer``, not ``ok``. Any other safe reading is decided harmful by the policy, and the verdict
says why (``raise`` raises for it instead).

An answer forced right after the prompt (``reasoning="auto"`` or ``"never"``, ``guardreasoner.reasoning``)
is a clean allow only when, besides, every task it answers has a score outside the reasoning band
(:func:`first_pass_doubt`; ``auto`` reasons in full on the rest).

Thresholds (``GuardReasoner(thresholds=...)``) are applied before the policy. A harm label a threshold decided
comes from the model's own probability at the final answer, after its reasoning, at the operating point the
user chose: on a clean ``ok`` verdict whose every harm label a threshold decided, the harmful signals that
probability weighed (the final answer, the task conclusions) do not overrule it. Any other safe reading
follows the rule above.
"""

from __future__ import annotations

from enum import Enum

from guardreasoner.errors import GuardUndecidedError
from guardreasoner.parsing import stray_harm_statements
from guardreasoner.tasks import Task
from guardreasoner.verdict import ParseStatus, Verdict

LABEL_FIELDS = tuple(task.verdict_field for task in Task)
HARM_FIELDS = tuple(task.verdict_field for task in Task if task.is_harm_task)


class FailurePolicy(str, Enum):
    FAIL_CLOSED = "fail_closed"
    FAIL_OPEN = "fail_open"
    RAISE = "raise"


def apply_policy(verdict: Verdict, policy: FailurePolicy | str = FailurePolicy.FAIL_CLOSED) -> Verdict:
    """Return the verdict with a decision: the model's when it can stand, else the policy's (and say so).

    Under ``raise`` an undecided verdict raises :class:`GuardUndecidedError`; for a batch, see
    :func:`apply_policy_to_all`."""
    policy = FailurePolicy(policy)
    if verdict.is_usable and verdict.is_harmful is not None:
        if verdict.is_harmful or policy is FailurePolicy.FAIL_OPEN or is_clean_allow(verdict):
            return verdict
        reason = unclean_allow_reason(verdict)
        detail = f"{verdict.parse_detail} " if verdict.parse_detail else ""
        if policy is FailurePolicy.RAISE:
            unclean = f"{detail}The answer reads safe, but is not a clean allow: {reason}."
            raise GuardUndecidedError(verdict.model_copy(update={"parse_detail": unclean}))
        return verdict.model_copy(
            update={
                "is_harmful": True,
                "decided_by": "policy",
                "policy": policy.value,
                "parse_detail": f"{detail}The answer reads safe, but fail_closed treats it as harmful: {reason}.",
            }
        )
    if policy is FailurePolicy.RAISE:
        raise GuardUndecidedError(verdict)
    return verdict.model_copy(
        update={
            "is_harmful": policy is FailurePolicy.FAIL_CLOSED,
            "decided_by": "policy",
            "policy": policy.value,
        }
    )


def is_clean_allow(verdict: Verdict) -> bool:
    """Whether a safe reading comes from one clean final answer, with nothing in the output saying harmful
    (or with every harm label decided by a threshold on its score); from an answer forced right after the
    prompt (``reasoning="auto"``/``"never"``), only with every task it answers scored outside the band."""
    return (
        verdict.parse_status is ParseStatus.OK
        and not verdict.forced_answer
        and (verdict.reasoned or first_pass_doubt(verdict) is None)
        and (
            _thresholds_decided_harm(verdict)
            or not (verdict.harmful_signals or stray_harm_statements(verdict.raw_output))
        )
    )


def first_pass_doubt(verdict: Verdict) -> str | None:
    """Why a verdict from the answer forced right after the prompt cannot stand alone (``auto`` reasons on
    it; ``fail_closed`` takes no safe reading from it), or None: the answer is one clean block and every task
    it answers has a score outside the reasoning band."""
    if verdict.error is not None:
        return f"the forced answer failed ({verdict.parse_status.value}: {verdict.error})"
    if verdict.parse_status is not ParseStatus.OK or verdict.is_parsing_error:
        return f"the forced answer is {verdict.parse_status.value}, not one clean answer"
    band = verdict.reasoning_band
    if band is None:
        return "the verdict records no reasoning band to judge the forced answer's scores by"
    for field in LABEL_FIELDS:
        if getattr(verdict, field) is None:
            continue
        score = verdict.first_pass_scores.get(field)
        if score is None:
            status = verdict.score_status.get(field)
            return f"the forced answer has no score for {field} ({status.value if status else 'none'})"
        if band.contains(score):
            return f"the forced answer's {field} score {score:.3g} is inside the reasoning band {band}"
    return None


def _thresholds_decided_harm(verdict: Verdict) -> bool:
    """Whether a threshold decided every harm label the verdict has (none fell back to greedy's label)."""
    labelled = [f for f in HARM_FIELDS if getattr(verdict, f) is not None]
    return bool(labelled) and all(
        f in verdict.thresholds and f not in verdict.threshold_fallbacks for f in labelled
    )


def unclean_allow_reason(verdict: Verdict) -> str:
    if verdict.harmful_signals:
        return "; ".join(verdict.harmful_signals)
    if verdict.forced_answer:
        return "the reasoning ran past max_reasoning_tokens and the answer was forced"
    if not verdict.reasoned and (doubt := first_pass_doubt(verdict)) is not None:
        return doubt
    if stray := stray_harm_statements(verdict.raw_output):
        return f"a conclusion outside the tasks' sections says harmful (under {'; '.join(map(repr, stray))})"
    return f"the answer is {verdict.parse_status.value}, not one clean final answer"


def apply_policy_to_all(verdicts: list[Verdict], policy: FailurePolicy | str) -> list[Verdict]:
    """Decide every verdict of a call. Under ``raise``, all are decided first, then one
    :class:`GuardUndecidedError` carries every verdict (``.verdicts``) and the first undecided (``.verdict``)."""
    decided: list[Verdict] = []
    undecided: list[Verdict] = []
    for verdict in verdicts:
        try:
            decided.append(apply_policy(verdict, policy))
        except GuardUndecidedError as exc:
            decided.append(exc.verdict)
            undecided.append(exc.verdict)
    if undecided:
        raise GuardUndecidedError(undecided[0], decided, undecided=len(undecided))
    return decided
