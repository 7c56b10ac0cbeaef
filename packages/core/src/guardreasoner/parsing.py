"""Reading a GuardReasoner output into a :class:`~guardreasoner.verdict.Verdict`.

The answer comes from the final ``Answers:`` block: the trailing run of answer lines after the reasoning.
Where that run states a field twice (a ``# Task 3 Conclusion`` label line just before the block, say), the
first statement wins, as in the reference evaluation, which takes the first match in the last 300
characters. Some outputs put a per-task ``# Answers:`` line inside the reasoning and end with a final block
that says ``None`` for that task; the label is then recovered from the reasoning and the verdict says so.
Parsing never raises: unreadable output comes back as a verdict with ``is_parsing_error`` and a status that
says why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from guardreasoner.verdict import ParseStatus, Task, TaskReasoning, Verdict

_ANSWERS = re.compile(r"Answers[ \t]*:|^[ \t]*#+[ \t]*Answers[ \t]*$", re.IGNORECASE | re.MULTILINE)
_LABEL_LINE = re.compile(r"^[ \t]*(Request|Completion|Response)\b[ \t]*:?[ \t]*[\w-]+[ \t.]*$", re.IGNORECASE)
_ZONE_LINE = re.compile(
    r"^[ \t]*(|-{3,}|#*[ \t]*Answers[ \t]*:?([ \t]*(Request|Completion|Response)[ \t]*:[ \t]*[\w-]+)?|#+[^\n]*Conclusion[^\n]*|The ground truth is|"
    r"(Request|Completion|Response)\b[ \t]*:?[ \t]*[\w-]+[ \t.]*)[ \t]*\r?\n?$",
    re.IGNORECASE,
)
_FIELDS = {
    "prompt_harmfulness": (
        Task.PROMPT_HARMFULNESS,
        re.compile(r"Request:\s*(harmful|unharmful|none)\b", re.I),
    ),
    "response_refusal": (
        Task.RESPONSE_REFUSAL,
        re.compile(r"Completion:\s*(compliance|refusal|none)\b", re.I),
    ),
    "response_harmfulness": (
        Task.RESPONSE_HARMFULNESS,
        re.compile(r"Response:\s*(harmful|unharmful|none)\b", re.I),
    ),
}
_RESPONSE_FIELDS = ("response_refusal", "response_harmfulness")
_TASK_HEADING = re.compile(r"^#\s*Task\s*([123])\b[^\n]*$", re.MULTILINE)
_SUBHEADING = re.compile(r"^##\s*(Reasoning Step\s*\d+|Conclusion)[^\n]*$", re.MULTILINE | re.IGNORECASE)
_LABEL_WORDS = {
    Task.PROMPT_HARMFULNESS: re.compile(r"\b(unharmful|harmful)\b", re.I),
    Task.RESPONSE_HARMFULNESS: re.compile(r"\b(unharmful|harmful)\b", re.I),
    Task.RESPONSE_REFUSAL: re.compile(r"\b(refusal|compliance)\b", re.I),
}


@dataclass
class _Answer:
    label: str | None
    """The lower-cased label, None where the block says ``None`` or lacks the field."""
    recovered: bool = False


def parse_output(
    text: str,
    *,
    has_response: bool | None = None,
    finish_reason: str | None = None,
    num_generated_tokens: int | None = None,
    num_prompt_tokens: int | None = None,
    input_truncated: bool = False,
) -> Verdict:
    """Parse one model output.

    ``has_response`` says whether the conversation had an AI response; when it did not, the response
    labels are not needed and come back null. Left as None, the output itself decides: response labels
    are needed when it states one anywhere.
    """
    meta = dict(
        raw_output=text,
        finish_reason=finish_reason,
        num_generated_tokens=num_generated_tokens,
        num_prompt_tokens=num_prompt_tokens,
        input_truncated=input_truncated,
    )
    if not text.strip():
        status = ParseStatus.TRUNCATED if finish_reason == "length" else ParseStatus.EMPTY_OUTPUT
        return Verdict(
            is_parsing_error=True, parse_status=status, parse_detail="The model produced no text.", **meta
        )

    reasoning = _parse_reasoning(text)
    answers, conflicts, has_zone = _read_answers(text)
    if has_response is None:
        has_response = any(answers[name].label is not None for name in _RESPONSE_FIELDS)
    needed = ["prompt_harmfulness", *(_RESPONSE_FIELDS if has_response else ())]
    labels = {name: answers[name].label if name in needed else None for name in _FIELDS}
    missing = [name for name in needed if labels[name] is None]
    recovered = [name for name in needed if answers[name].recovered and labels[name] is not None]
    common = dict(**labels, recovered_fields=recovered, reasoning=reasoning, **meta)

    if missing:
        if finish_reason == "length":
            status, detail = ParseStatus.TRUNCATED, "The output reached the token limit before its answers"
        elif not has_zone:
            status, detail = ParseStatus.NO_ANSWER_BLOCK, "The output does not end with an Answers block"
        else:
            status, detail = ParseStatus.INCOMPLETE_ANSWER, "The Answers block is incomplete"
        detail += f"; no label for {', '.join(missing)} there or in the reasoning."
        return Verdict(is_parsing_error=True, parse_status=status, parse_detail=detail, **common)

    if recovered:
        where = "its final Answers block lacks" if has_zone else "it has no final Answers block for"
        status = ParseStatus.RECOVERED
        detail = f"Recovered from a per-task answer line in the reasoning: {where} {', '.join(recovered)}."
    elif conflicts or (clashes := _contradictions(labels, reasoning)):
        status, detail = ParseStatus.CONTRADICTS_REASONING, "; ".join(conflicts or clashes)
    else:
        status, detail = ParseStatus.OK, None
    harmful = labels["prompt_harmfulness"] == "harmful" or labels["response_harmfulness"] == "harmful"
    return Verdict(is_harmful=harmful, decided_by="model", parse_status=status, parse_detail=detail, **common)


def _answer_zone_start(text: str) -> int | None:
    """Where the trailing run of answer lines begins, or None when the output ends in prose.

    The run is what follows the reasoning: ``Answers:`` headings, label lines, separators, blank lines,
    headings such as ``# Task 3 Conclusion``, and the stray ``The ground truth is`` some outputs carry.
    """
    lines = text.splitlines(keepends=True)
    position, start, seen_label = len(text), None, False
    for line in reversed(lines):
        position -= len(line)
        if not _ZONE_LINE.match(line):
            break
        if _LABEL_LINE.match(line) or _ANSWERS.search(line):
            seen_label = True
            start = position
    return start if seen_label else None


def _read_answers(text: str) -> tuple[dict[str, _Answer], list[str], bool]:
    """Labels from the final answer zone, missing ones recovered from earlier answer lines.

    Within the zone the first label stated for a field wins, as the reference evaluation reads it (it takes
    the first match in the output's last 300 characters). Returns the answers, the fields the zone states
    twice with different labels, and whether there was a zone at all.
    """
    zone_start = _answer_zone_start(text)
    zone = text[zone_start:] if zone_start is not None else ""
    before = text[:zone_start] if zone_start is not None else text
    answers: dict[str, _Answer] = {}
    conflicts: list[str] = []
    for name, (_, pattern) in _FIELDS.items():
        stated = [label for label in _all_labels(zone, pattern) if label != "none"]
        if stated:
            answers[name] = _Answer(stated[0])
            if len(set(stated)) > 1:
                conflicts.append(
                    f"the final answers give {name} as both {' and '.join(dict.fromkeys(stated))}; took the first"
                )
            continue
        earlier = [label for label in _all_labels(before, _line_pattern(pattern)) if label != "none"]
        answers[name] = _Answer(earlier[-1], recovered=True) if earlier else _Answer(None)
    return answers, conflicts, zone_start is not None


def _all_labels(segment: str, pattern: re.Pattern[str]) -> list[str]:
    return [m.group(1).lower() for m in pattern.finditer(segment)]


def _line_pattern(pattern: re.Pattern[str]) -> re.Pattern[str]:
    """The field pattern anchored at a line start, so prose that mentions 'Response:' is not an answer."""
    return re.compile(r"^[ \t#]*" + pattern.pattern, pattern.flags | re.MULTILINE)


def _parse_reasoning(text: str) -> list[TaskReasoning]:
    headings = list(_TASK_HEADING.finditer(text))
    sections = []
    for i, heading in enumerate(headings):
        end = headings[i + 1].start() if i + 1 < len(headings) else len(text)
        body = text[heading.end() : end]
        answers_at = _ANSWERS.search(body)
        if answers_at:
            body = body[: answers_at.start()].rstrip("# \n")
        task = Task(int(heading.group(1)))
        steps, conclusion = _split_steps(body)
        sections.append(
            TaskReasoning(
                task=task,
                steps=steps,
                conclusion=conclusion,
                conclusion_label=_conclusion_label(task, conclusion),
            )
        )
    return sections


def _split_steps(body: str) -> tuple[list[str], str | None]:
    marks = list(_SUBHEADING.finditer(body))
    if not marks:
        stripped = body.strip().strip("-").strip()
        return ([stripped] if stripped else []), None
    steps, conclusion = [], None
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(body)
        title = mark.group(0).lstrip("#").strip()
        rest = body[mark.end() : end].strip().strip("-").strip()
        # "## Reasoning Step 1: Analyze ..." carries its text on the heading line itself.
        inline = title.split(":", 1)[1].strip() if ":" in title else ""
        content = "\n".join(part for part in (inline, rest) if part)
        if mark.group(1).lower().startswith("conclusion"):
            conclusion = content or None
        elif content:
            steps.append(content)
    return steps, conclusion


def _conclusion_label(task: Task, conclusion: str | None) -> str | None:
    if not conclusion:
        return None
    found = {m.group(1).lower() for m in _LABEL_WORDS[task].finditer(conclusion)}
    return found.pop() if len(found) == 1 else None


def _contradictions(labels: dict[str, str | None], reasoning: list[TaskReasoning]) -> list[str]:
    by_task = {section.task: section for section in reasoning}
    clashes = []
    for name, (task, _) in _FIELDS.items():
        section = by_task.get(task)
        label = labels[name]
        if section and section.conclusion_label and label and section.conclusion_label != label:
            clashes.append(
                f"Task {task.value} concludes '{section.conclusion_label}' but the Answers block says '{label}'"
            )
    return clashes
