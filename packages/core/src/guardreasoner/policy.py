"""What an unusable verdict means: the guard's failure policy.

A guard that cannot decide (unparseable output, timeout, engine failure) must still answer. Fail closed
treats the conversation as harmful (the default: a broken guard blocks rather than waves through), fail open
treats it as safe, and raise hands the verdict to the caller in :class:`GuardUndecidedError`.
"""

from __future__ import annotations

from enum import Enum

from guardreasoner.errors import GuardUndecidedError
from guardreasoner.verdict import Verdict


class FailurePolicy(str, Enum):
    FAIL_CLOSED = "fail_closed"
    FAIL_OPEN = "fail_open"
    RAISE = "raise"


def apply_policy(verdict: Verdict, policy: FailurePolicy | str = FailurePolicy.FAIL_CLOSED) -> Verdict:
    """Return the verdict with a decision: the model's when usable, else the policy's (and say so).

    Under ``raise`` an undecided verdict raises :class:`GuardUndecidedError`; for a batch, see
    :func:`apply_policy_to_all`."""
    policy = FailurePolicy(policy)
    if verdict.is_usable and verdict.is_harmful is not None:
        return verdict
    if policy is FailurePolicy.RAISE:
        raise GuardUndecidedError(verdict)
    return verdict.model_copy(
        update={
            "is_harmful": policy is FailurePolicy.FAIL_CLOSED,
            "decided_by": "policy",
            "policy": policy.value,
        }
    )


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
