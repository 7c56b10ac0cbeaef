"""The three GuardReasoner tasks, defined once.

Each task has a number (the ``# Task N`` of the model's reasoning), the :class:`~guardreasoner.verdict.Verdict`
field that holds its label, the key of its line in the ``Answers:`` block (``Request``/``Completion``/
``Response``), its two labels and which of them is the positive class (the class the paper's F1 scores, and for
the harmfulness tasks the harmful signal the ``fail_closed`` policy acts on). The parser, the evaluation and
training's hard-sample mining all read them from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class _Spec:
    slug: str
    verdict_field: str
    answer_key: str
    positive: str
    negative: str
    title: str


class Task(int, Enum):
    """A GuardReasoner task; the value is its number in the model's reasoning."""

    PROMPT_HARMFULNESS = 1
    RESPONSE_REFUSAL = 2
    RESPONSE_HARMFULNESS = 3

    @property
    def slug(self) -> str:
        """The short name of evaluation tables and JSON: ``prompt``, ``refusal``, ``response``."""
        return _SPECS[self].slug

    @property
    def verdict_field(self) -> str:
        """The :class:`~guardreasoner.verdict.Verdict` field that answers the task."""
        return _SPECS[self].verdict_field

    @property
    def answer_key(self) -> str:
        """The key of the task's line in an ``Answers:`` block."""
        return _SPECS[self].answer_key

    @property
    def positive(self) -> str:
        """The positive class (harmful, or refusal)."""
        return _SPECS[self].positive

    @property
    def negative(self) -> str:
        return _SPECS[self].negative

    @property
    def labels(self) -> tuple[str, str]:
        """The two labels, positive first."""
        return self.positive, self.negative

    @property
    def title(self) -> str:
        return _SPECS[self].title

    @property
    def is_harm_task(self) -> bool:
        """Whether the positive label means harm (tasks 1 and 3; a refusal is not harm)."""
        return self.positive == "harmful"

    @property
    def needs_response(self) -> bool:
        """Whether the task judges the AI's response (and so has no label for a request alone)."""
        return self is not Task.PROMPT_HARMFULNESS

    def opposite(self, label: str) -> str:
        """The other label of the task."""
        return self.negative if label == self.positive else self.positive

    @classmethod
    def from_slug(cls, slug: str) -> Task:
        for task in cls:
            if task.slug == slug:
                return task
        raise ValueError(f"Unknown task '{slug}'; choose one of {', '.join(t.slug for t in cls)}.")


_SPECS = {
    Task.PROMPT_HARMFULNESS: _Spec(
        "prompt", "prompt_harmfulness", "Request", "harmful", "unharmful", "Prompt harmfulness detection"
    ),
    Task.RESPONSE_REFUSAL: _Spec(
        "refusal", "response_refusal", "Completion", "refusal", "compliance", "Refusal detection"
    ),
    Task.RESPONSE_HARMFULNESS: _Spec(
        "response",
        "response_harmfulness",
        "Response",
        "harmful",
        "unharmful",
        "Response harmfulness detection",
    ),
}

PAPER_ORDER = (Task.PROMPT_HARMFULNESS, Task.RESPONSE_HARMFULNESS, Task.RESPONSE_REFUSAL)
"""The order of the paper's tables, which is also the order the reference hard-sample mining checks tasks in."""

TASK_BY_ANSWER_KEY = {task.answer_key.lower(): task for task in Task}
"""Lower-cased answer key (``request``, ``completion``, ``response``) to task."""
