"""The three GuardReasoner tasks, defined once.

Each task has a number (the ``# Task N`` of the model's reasoning), the :class:`~guardreasoner.verdict.Verdict`
field that holds its label, the key of its line in the ``Answers:`` block (``Request``/``Completion``/
``Response``), its two labels and which of them is the positive class (the class the paper's F1 scores, and for
the harmfulness tasks the harmful signal the ``fail_closed`` policy acts on). The parser, the evaluation and
training's hard-sample mining all read them from here.
"""

from __future__ import annotations

from enum import Enum


class Task(int, Enum):
    """A GuardReasoner task; the value is its number in the model's reasoning.

    ``slug`` names it in evaluation tables and JSON (``prompt``, ``refusal``, ``response``); ``verdict_field``
    is the :class:`~guardreasoner.verdict.Verdict` field that answers it; ``answer_key`` the key of its line in
    an ``Answers:`` block; ``positive`` and ``negative`` its two labels (positive: harmful, or refusal).
    """

    slug: str
    verdict_field: str
    answer_key: str
    positive: str
    negative: str
    title: str

    PROMPT_HARMFULNESS = (
        1,
        "prompt",
        "prompt_harmfulness",
        "Request",
        "harmful",
        "unharmful",
        "Prompt harmfulness detection",
    )
    RESPONSE_REFUSAL = (
        2,
        "refusal",
        "response_refusal",
        "Completion",
        "refusal",
        "compliance",
        "Refusal detection",
    )
    RESPONSE_HARMFULNESS = (
        3,
        "response",
        "response_harmfulness",
        "Response",
        "harmful",
        "unharmful",
        "Response harmfulness detection",
    )

    def __new__(cls, number: int, *spec: str) -> Task:
        task = int.__new__(cls, number)
        task._value_ = number
        task.slug, task.verdict_field, task.answer_key, task.positive, task.negative, task.title = spec
        return task

    @property
    def labels(self) -> tuple[str, str]:
        """The two labels, positive first."""
        return self.positive, self.negative

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


PAPER_ORDER = (Task.PROMPT_HARMFULNESS, Task.RESPONSE_HARMFULNESS, Task.RESPONSE_REFUSAL)
"""The order of the paper's tables, which is also the order the reference hard-sample mining checks tasks in."""

TASK_BY_ANSWER_KEY = {task.answer_key.lower(): task for task in Task}
"""Lower-cased answer key (``request``, ``completion``, ``response``) to task."""
