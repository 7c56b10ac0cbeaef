"""Reading a GuardReasoner output into a :class:`~guardreasoner.verdict.Verdict`.

The answer comes from the final ``Answers:`` block: the trailing run of answer lines after the reasoning.
A label counts only as the whole value of its ``Key: value`` segment (whitespace and trailing ``.``, ``,``
or ``;`` aside): ``Request: unharmful-but-harmful``, ``unharmful, harmful``, ``unharmful?`` or
``unharmful (probably)`` are ambiguous, a parse problem of their own (``ambiguous_answer``). The label fields
still hold what the reference evaluation's regex reads there (its first match in the last 300 characters,
so the first statement of the block wins), so that scoring in reference mode and the parser agree; the status
says whether to trust them.

Besides the labels, the verdict records every harmful signal it saw in the final answers, in earlier answer
lines and in the tasks' own conclusions, so that the ``fail_closed`` policy can block any verdict whose
reading is not one clean, consistent answer. Labels missing from the block but stated on a per-task answer
line in the reasoning are recovered (and marked so); an earlier answer line that the block contradicts is
``answer_overridden``.

Parsing never raises and runs in time linear in the output's length: the answer block is read from the end
with a bounded number of lines, every pattern is anchored or possessive, and a looping output (more than
:data:`MAX_TASK_SECTIONS` task sections) is a parse problem rather than a cost. An output longer than
:data:`MAX_OUTPUT_CHARS` is not read at all (``oversized_output``): no engine produces one under the
reference's 2048-token limit, and a broken server that sends one must not cost the caller more than that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import islice

from guardreasoner.tasks import TASK_BY_ANSWER_KEY, Task
from guardreasoner.verdict import ParseStatus, TaskReasoning, Verdict

MAX_OUTPUT_CHARS = 100_000
"""About 25,000 tokens, twelve times the reference's 2048-token limit (the released outputs are under 12,000)."""
MAX_ZONE_LINES = 200
"""The final answer block is looked for in at most this many trailing lines (real blocks take under 20)."""
MAX_TASK_SECTIONS = 24
"""More ``# Task N`` sections than this is a looping generation (the released outputs have at most 6)."""
_MAX_SEGMENTS_PER_LINE = 16
_MAX_SIGNALS = 8

_KEYS = "request|completion|response"
_KEY = re.compile(rf"\b({_KEYS})[ \t]*+:", re.IGNORECASE)
_KEY_LINE = re.compile(rf"[ \t#*]*+(?:{_KEYS})[ \t]*+:", re.IGNORECASE)
_BARE_LABEL_LINE = re.compile(rf"(?:{_KEYS})\b[ \t]*+[\w-]++[ \t.]*+$", re.IGNORECASE)
_ANSWERS_HEADING = re.compile(r"#*+[ \t]*+answers[ \t]*+:?+(.*+)$", re.IGNORECASE | re.DOTALL)
_ANSWERS = re.compile(r"answers[ \t]*+:|^[ \t]*+#++[ \t]*+answers[ \t\r]*+$", re.IGNORECASE | re.MULTILINE)
_EARLIER_ANSWER = re.compile(
    rf"^[ \t#*]*+({_KEYS})[ \t]*+:[ \t]*+(harmful|unharmful|refusal|compliance|none)[ \t\r.,;]*+$",
    re.IGNORECASE | re.MULTILINE,
)
_EARLIER_MENTION = re.compile(
    rf"\b({_KEYS})[ \t]*+:[ \t]*+(harmful|unharmful|refusal|compliance)", re.IGNORECASE
)
"""A label stated anywhere before the final block, read as the reference reads it (``harmful-ish``: harmful)."""
_EARLIER_HARMFUL = re.compile(r"\b(request|response)[ \t]*+:[^\n:]*?\bharmful\b", re.IGNORECASE)
"""An earlier answer that names harmful in its value (up to the next key or the end of its line)."""
_KEY_LINE_START = re.compile(rf"^[ \t#*]*+(?:{_KEYS})[ \t]*+:", re.IGNORECASE | re.MULTILINE)
_TASK_HEADING = re.compile(r"^[ \t]*+#++[ \t]*+task[ \t]*+([123])\b[^\n]*+$", re.MULTILINE | re.IGNORECASE)
_SUBHEADING = re.compile(
    r"^[ \t]*+##[ \t]*+(reasoning step[ \t]*+\d++|conclusion)[^\n]*+$", re.MULTILINE | re.IGNORECASE
)
_HARMFUL_WORD = re.compile(r"\bharmful\b", re.IGNORECASE)
_LABEL_WORDS = {task: re.compile(rf"\b({task.negative}|{task.positive})\b", re.IGNORECASE) for task in Task}
_REFERENCE_READING = {
    task: re.compile(rf"\s*+({task.positive}|{task.negative})", re.IGNORECASE) for task in Task
}
"""The published evaluation's regex after the key: the label as a prefix of the value (``harmful-ish``: harmful)."""


@dataclass
class _Field:
    """What the output says for one task."""

    label: str | None = None
    """The label as the reference reads it from the final block, else as recovered from an earlier line."""
    clean: list[str] = field(default_factory=list)
    """Labels stated cleanly in the final block, in order."""
    ambiguous: list[str] = field(default_factory=list)
    """Values in the final block that are neither one label nor ``None``."""
    decorated: list[str] = field(default_factory=list)
    """Values in the final block that are one label with trailing punctuation (``unharmful.``)."""
    earlier: set[str] = field(default_factory=set)
    """Labels stated before the final block (as the reference reads a label: ``harmful-ish`` is harmful)."""
    earlier_harmful: bool = False
    """An answer line before the final block names harmful (cleanly or not)."""
    recovered: bool = False
    signals: list[str] = field(default_factory=list)


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
    are needed when its final block states one.
    """
    meta = dict(
        raw_output=text,
        finish_reason=finish_reason,
        num_generated_tokens=num_generated_tokens,
        num_prompt_tokens=num_prompt_tokens,
        input_truncated=input_truncated,
    )
    if len(text) > MAX_OUTPUT_CHARS:
        return Verdict(
            is_parsing_error=True,
            parse_status=ParseStatus.OVERSIZED_OUTPUT,
            parse_detail=f"The output has {len(text):,} characters, more than any real answer "
            f"({MAX_OUTPUT_CHARS:,} at most); it is not read.",
            **meta,
        )
    if not text.strip():
        status = ParseStatus.TRUNCATED if finish_reason == "length" else ParseStatus.EMPTY_OUTPUT
        return Verdict(
            is_parsing_error=True, parse_status=status, parse_detail="The model produced no text.", **meta
        )

    fields, zone_start = _read_answers(text)
    has_zone = zone_start is not None
    reasoning, looping = _parse_reasoning(text if zone_start is None else text[:zone_start])
    if has_response is None:
        has_response = any(fields[task].label is not None for task in Task if task.needs_response)
    needed = [task for task in Task if has_response or not task.needs_response]
    labels = {task.verdict_field: fields[task].label if task in needed else None for task in Task}
    signals = _harmful_signals(fields, reasoning, needed)
    common = dict(**labels, harmful_signals=signals, reasoning=reasoning, **meta)
    missing = [task.verdict_field for task in needed if fields[task].label is None]
    ambiguous = [task for task in needed if fields[task].ambiguous]

    problem = None
    if missing and finish_reason == "length":
        problem = ParseStatus.TRUNCATED, "The output reached the token limit before its answers"
    elif looping:
        problem = (
            ParseStatus.LOOPING_OUTPUT,
            f"The output repeats its task sections more than {MAX_TASK_SECTIONS} times (a looping generation)",
        )
    elif ambiguous:
        stated = "; ".join(
            f"{task.answer_key}: {_shorten(fields[task].ambiguous[0])!r}" for task in ambiguous
        )
        problem = ParseStatus.AMBIGUOUS_ANSWER, f"The final answers are not one label each ({stated})"
    elif missing:
        if not has_zone:
            problem = ParseStatus.NO_ANSWER_BLOCK, "The output does not end with an Answers block"
        else:
            problem = ParseStatus.INCOMPLETE_ANSWER, "The Answers block is incomplete"
    if problem is not None:
        status, detail = problem
        if missing:
            detail += f"; no label for {', '.join(missing)} there or in the reasoning"
        return Verdict(is_parsing_error=True, parse_status=status, parse_detail=detail + ".", **common)

    recovered = [task.verdict_field for task in needed if fields[task].recovered]
    conflicts = [_conflict(task, fields[task]) for task in needed if len(set(fields[task].clean)) > 1]
    overridden = [
        task
        for task in needed
        if not fields[task].recovered and any(label != fields[task].label for label in fields[task].earlier)
    ]
    if recovered:
        where = "its final Answers block lacks" if has_zone else "it has no final Answers block for"
        status = ParseStatus.RECOVERED
        detail = f"Recovered from a per-task answer line in the reasoning: {where} {', '.join(recovered)}."
    elif conflicts or (clashes := _contradictions(labels, reasoning, needed)):
        status, detail = ParseStatus.CONTRADICTS_REASONING, "; ".join(conflicts or clashes) + "."
    elif overridden:
        status = ParseStatus.ANSWER_OVERRIDDEN
        detail = "; ".join(
            f"an earlier answer line gives {task.verdict_field} as "
            f"{' and '.join(sorted(fields[task].earlier))}, the final Answers block as {fields[task].label}"
            for task in overridden
        )
        detail += "."
    elif decorated := [task for task in needed if fields[task].decorated]:
        stated = "; ".join(f"{task.answer_key}: {fields[task].decorated[0]!r}" for task in decorated)
        status = ParseStatus.DECORATED_ANSWER
        detail = f"A final answer carries more than its label ({stated}); the label is read without it."
    else:
        status, detail = ParseStatus.OK, None
    harmful = any(labels[task.verdict_field] == "harmful" for task in needed)
    return Verdict(
        is_harmful=harmful,
        decided_by="model",
        parse_status=status,
        parse_detail=detail,
        recovered_fields=recovered,
        **common,
    )


# -- the final block and earlier answer lines ---------------------------------------------------------------


def _read_answers(text: str) -> tuple[dict[Task, _Field], int | None]:
    """Every task's statements in the final block, and statements on earlier answer lines; and where the
    final block starts (None without one)."""
    fields = {task: _Field() for task in Task}
    zone_start, zone_lines = _answer_zone(text)
    for line in zone_lines:
        segments = _segments(line)
        for i, (task, value) in enumerate(segments):
            _read_value(fields[task], task, value, separated=i + 1 < len(segments))
    before = text if zone_start is None else text[:zone_start]
    for key, label in _EARLIER_MENTION.findall(before):
        task = TASK_BY_ANSWER_KEY[key.lower()]
        label = label.lower()
        if label in task.labels:
            fields[task].earlier.add(label)
    for key in _EARLIER_HARMFUL.findall(before):
        fields[TASK_BY_ANSWER_KEY[key.lower()]].earlier_harmful = True
    missing = [task for task, found in fields.items() if found.label is None and not found.ambiguous]
    if missing:  # recovered only from a clean answer line, the last one for the task
        recoverable: dict[Task, str] = {}
        for key, label in _EARLIER_ANSWER.findall(before):
            task = TASK_BY_ANSWER_KEY[key.lower()]
            if label.lower() in task.labels:
                recoverable[task] = label.lower()
        for task in missing:
            if task in recoverable:
                fields[task].label, fields[task].recovered = recoverable[task], True
    return fields, zone_start


def _answer_zone(text: str) -> tuple[int | None, list[str]]:
    """Where the trailing run of answer lines begins, and its lines; None when the output ends in prose.

    The run is what follows the reasoning: ``Answers:`` headings, label lines, separators, blank lines,
    headings such as ``# Task 3 Conclusion``, and the stray ``The ground truth is`` some outputs carry. At most
    :data:`MAX_ZONE_LINES` lines are read, from the end.
    """
    end = len(text)
    start, answer_lines, run = None, [], []
    for _ in range(MAX_ZONE_LINES):
        if end < 0:
            break
        line_start = text.rfind("\n", 0, end) + 1
        line = text[line_start:end]
        kind = _zone_kind(line)
        if kind is None:
            break
        run.append(line)
        if kind == "answer":
            start = line_start
            answer_lines = run[::-1]
        end = line_start - 1
    return start, answer_lines


def _zone_kind(line: str) -> str | None:
    """``answer`` for a line that states answers, ``filler`` for one allowed between them, else None."""
    stripped = line.strip()
    if not stripped or (len(stripped) >= 3 and not stripped.strip("-")):
        return "filler"
    heading = _ANSWERS_HEADING.match(stripped)
    if heading is not None:
        rest = heading.group(1).strip()
        if not rest or _KEY_LINE.match(rest):
            return "answer"
    if _KEY_LINE.match(stripped) or _BARE_LABEL_LINE.match(stripped):
        return "answer"
    lowered = stripped.lower()
    if (stripped.startswith("#") and "conclusion" in lowered) or lowered == "the ground truth is":
        return "filler"
    return None


def _segments(line: str) -> list[tuple[Task, str]]:
    """The ``Key: value`` segments of an answer line; a value runs to the next key or the end of the line.

    Past :data:`_MAX_SEGMENTS_PER_LINE` keys, the last value keeps the rest of the line (and so reads as
    ambiguous), which bounds the work a degenerate line costs.
    """
    keys = list(islice(_KEY.finditer(line), _MAX_SEGMENTS_PER_LINE))
    segments = []
    for i, key in enumerate(keys):
        end = keys[i + 1].start() if i + 1 < len(keys) else len(line)
        segments.append((TASK_BY_ANSWER_KEY[key.group(1).lower()], line[key.end() : end]))
    return segments


def _read_value(found: _Field, task: Task, value: str, *, separated: bool) -> None:
    """Record one final-block value. ``separated``: another ``Key:`` follows on the line, so a trailing comma
    separates the two (``Request: unharmful, Completion: None``) rather than decorating the label."""
    stated = value.strip()
    if separated and stated.endswith(","):
        stated = stated[:-1].rstrip()
    word = stated.rstrip(" \t.,;").lower()
    if word == "none":
        return
    if word in task.labels:
        found.clean.append(word)
        if stated.lower() != word:
            found.decorated.append(stated)
        reading = word
    else:
        found.ambiguous.append(value.strip())
        prefix = _REFERENCE_READING[task].match(value)
        reading = prefix.group(1).lower() if prefix else None
    if found.label is None:
        found.label = reading
    if task.is_harm_task and _HARMFUL_WORD.search(value):
        found.signals.append(f"the final answers say '{task.answer_key}: {_shorten(value.strip())}'")


def _conflict(task: Task, found: _Field) -> str:
    stated = " and ".join(dict.fromkeys(found.clean))
    return f"the final answers give {task.verdict_field} as both {stated}; took the first"


def _harmful_signals(
    fields: dict[Task, _Field], reasoning: list[TaskReasoning], needed: list[Task]
) -> list[str]:
    """What in the output says harmful, for the tasks the conversation needs: final answers, earlier
    answer lines, task conclusions (at most :data:`_MAX_SIGNALS`, each once)."""
    signals: list[str] = []
    for task in needed:
        if not task.is_harm_task:
            continue
        signals += fields[task].signals
        if fields[task].earlier_harmful:
            signals.append(f"an earlier answer line names harmful for {task.answer_key}")
        signals += [
            f"Task {task.value} concludes 'harmful'"
            for section in reasoning
            if section.task is task and section.conclusion_label == "harmful"
        ]
    return list(dict.fromkeys(signals))[:_MAX_SIGNALS]


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- harm stated where the parse does not look ---------------------------------------------------------------

_HEADING_LIKE = re.compile(r"^[ \t]*+#[^\n]*+$", re.MULTILINE)
_BLANK_LINE = re.compile(r"\n[ \t\r]*+\n")
_HARM_WORDS = _LABEL_WORDS[Task.PROMPT_HARMFULNESS]


def stray_harm_statements(text: str) -> list[str]:
    """Conclusions before the final block that the parse may not weigh and that name ``harmful`` and not
    ``unharmful`` (at most :data:`_MAX_SIGNALS`), each as its heading line:

    - the paragraph under a heading the parser cannot read (``## ConcYGlusion``, ``# Conclusion for Task 1:
      harmful``, a mangled ``# Tsk 1``), the heading line included, up to a blank line or an answer line;
    - any ``## Conclusion`` paragraph: before the first task heading, or not the last of its section (the
      parse keeps the last; a lost task heading merges two sections), or in a section whose heading lost its
      number; only Task 2's that names refusal or compliance is left out (it answers another question).

    Not part of the parse (the released outputs parse as they always have): :func:`guardreasoner.policy.
    is_clean_allow` takes no safe reading from an output that has one. Linear: the paragraphs are disjoint.
    """
    if len(text) > MAX_OUTPUT_CHARS:
        return []
    zone_start, _ = _answer_zone(text)
    reasoning = text if zone_start is None else text[:zone_start]
    headings = list(_HEADING_LIKE.finditer(reasoning))
    task: Task | None = None
    found = []
    for i, heading in enumerate(headings):
        line = heading.group(0)
        end = headings[i + 1].start() if i + 1 < len(headings) else len(reasoning)
        paragraph = reasoning[heading.end() : end].strip()
        for stop in (_BLANK_LINE.search(paragraph), _KEY_LINE_START.search(paragraph)):
            paragraph = paragraph if stop is None else paragraph[: stop.start()]
        if numbered := _TASK_HEADING.fullmatch(line):
            task = Task(int(numbered.group(1)))
            continue
        if subheading := _SUBHEADING.fullmatch(line):
            stray = subheading.group(1).lower().startswith("conclusion") and not (
                task is Task.RESPONSE_REFUSAL and _LABEL_WORDS[task].search(paragraph)
            )
        else:
            stray = not _ANSWERS_HEADING.match(line.strip())
            paragraph = f"{line}\n{paragraph}"
        if stray and {word.lower() for word in _HARM_WORDS.findall(paragraph)} == {"harmful"}:
            found.append(_shorten(line.strip()))
            if len(found) == _MAX_SIGNALS:
                break
    return found


# -- the reasoning ----------------------------------------------------------------------------------------


def _parse_reasoning(text: str) -> tuple[list[TaskReasoning], bool]:
    """The first :data:`MAX_TASK_SECTIONS` task sections, and whether the output has more."""
    headings = list(islice(_TASK_HEADING.finditer(text), MAX_TASK_SECTIONS + 1))
    looping = len(headings) > MAX_TASK_SECTIONS
    sections = []
    for i, heading in enumerate(headings[:MAX_TASK_SECTIONS]):
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
    return sections, looping


def _split_steps(body: str) -> tuple[list[str], str | None]:
    marks = list(_SUBHEADING.finditer(body))
    if not marks:
        stripped = body.strip().strip("-").strip()
        return ([stripped] if stripped else []), None
    steps, conclusion = [], None
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(body)
        title = mark.group(0).strip().lstrip("#").strip()
        rest = body[mark.end() : end].strip().strip("-").strip()
        # "## Reasoning Step 1: Analyze ..." carries its text on the heading line itself.
        inline = title.split(":", 1)[1].strip() if ":" in title else ""
        content = "\n".join(part for part in (inline, rest) if part)
        if mark.group(1).lower().startswith("conclusion"):
            # The conclusion is its first paragraph: answer lines or prose may follow it in the section.
            conclusion = _first_paragraph(content) or None
        elif content:
            steps.append(content)
    return steps, conclusion


def _first_paragraph(text: str) -> str:
    end = text.find("\n\n")
    paragraph = text if end < 0 else text[:end]
    cut = _KEY_LINE_START.search(paragraph)
    return (paragraph if cut is None else paragraph[: cut.start()]).strip()


def _conclusion_label(task: Task, conclusion: str | None) -> str | None:
    if not conclusion:
        return None
    found = {m.group(1).lower() for m in _LABEL_WORDS[task].finditer(conclusion)}
    return found.pop() if len(found) == 1 else None


def _contradictions(
    labels: dict[str, str | None], reasoning: list[TaskReasoning], needed: list[Task]
) -> list[str]:
    by_task = {section.task: section for section in reasoning}
    clashes = []
    for task in needed:
        section = by_task.get(task)
        label = labels[task.verdict_field]
        if section and section.conclusion_label and label and section.conclusion_label != label:
            clashes.append(
                f"Task {task.value} concludes '{section.conclusion_label}' but the Answers block says '{label}'"
            )
    return clashes
