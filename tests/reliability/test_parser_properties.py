"""Property tests of the parser and the failure policy over generated guard outputs (issue 16).

The rule: under ``fail_closed`` the guard allows only when a clean, unambiguous final answer says so. A label
counts only as the whole value of its ``Key: value`` (whitespace, case and a trailing ``.``/``,``/``;``
aside), and any harmful signal in the answers or the task conclusions wins over an unharmful reading. The
generator builds outputs from known parts (reasoning sections with conclusions, earlier answer lines, a final
block of clean, ``None`` or decorated values, prose) so that the oracle below decides from the parts, not
from the parser, whether an allow is legitimate. Other tests feed arbitrary and mutated text: no crash, and
every verdict decided.

CI runs a bounded version (a few thousand outputs). The full run (over 100,000 outputs):
``GUARDREASONER_RELIABILITY_FULL=1 python -m pytest tests/reliability/test_parser_properties.py -q -s``.
"""

from __future__ import annotations

import os
import random
import re
from collections import Counter
from dataclasses import dataclass, field

import pytest
from guardreasoner.parsing import parse_output
from guardreasoner.policy import apply_policy
from guardreasoner.tasks import Task
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FULL = os.environ.get("GUARDREASONER_RELIABILITY_FULL") == "1"
EXAMPLES = {  # per test: (CI, full)
    "structured": (1200, 60_000),
    "clean": (300, 20_000),
    "fuzz": (500, 15_000),
    "mutated": (500, 15_000),
    "decorated": (200, 5_000),
    "hidden_conclusion": (200, 5_000),
}
GENERATED: Counter[str] = Counter()


def examples(name: str) -> settings:
    return settings(
        max_examples=EXAMPLES[name][FULL],
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


# -- the parts of an output ---------------------------------------------------------------------------------
# Hypothesis draws a seed; the output is built from it with ``random.Random``, which is fast enough for the
# full run's 100,000 outputs (drawing every choice through hypothesis costs about 15 ms an output).

# Prose cannot spell a key, a label, a heading or an "Answers" line: its alphabet lacks e, n, r, s, t, u, #, :.
PROSE_ALPHABET = "abcdfghijklmvwxyz0123456789 .,!?'\"()-*/"
DECORATIONS = [
    "{a}-but-{b}",
    "{a}, {b}",
    "{a} / {b}",
    "{a}?",
    "{a} (probably)",
    "{a}-ish",
    "**{a}**",
    "not {a}",
    "{a} and {b}",
    "{a}ly",
    "maybe",
    "n/a",
    "{a} {a}",
    "",
]
HEADINGS = ["# Task {n}", "# task {n}", "  # TASK {n}", "## Task {n}: x", "#Task {n}"]
ANSWERS_HEADINGS = ["Answers: ", "Answers:", "# Answers", "answers", "ANSWERS :", "Answers"]
SEEDS = st.integers(min_value=0, max_value=2**64 - 1)


@dataclass(frozen=True)
class Value:
    text: str
    clean: str | None
    """The label when the value is exactly one label, else None."""
    is_none: bool = False


@dataclass
class Output:
    text: str
    has_response: bool
    final: dict[Task, list[Value]] = field(default_factory=dict)
    earlier: dict[Task, list[Value]] = field(default_factory=dict)
    conclusions: dict[Task, list[str]] = field(default_factory=dict)


def prose(rng: random.Random) -> str:
    return "".join(rng.choice(PROSE_ALPHABET) for _ in range(rng.randrange(40)))


def clean_value(rng: random.Random, task: Task) -> Value:
    label = rng.choice(task.labels)
    case = rng.choice([str, str.upper, str.capitalize])
    lead, trail = rng.choice(["", " ", "  ", "\t"]), rng.choice(["", ".", ",", ";", " ", " . "])
    return Value(lead + case(label) + trail, label)


def value(rng: random.Random, task: Task) -> Value:
    kind = rng.randrange(6)
    if kind < 2:
        return clean_value(rng, task)
    if kind == 2:
        template = rng.choice(DECORATIONS)
        return Value(template.format(a=rng.choice(task.labels), b=rng.choice(task.labels)), None)
    if kind == 3:
        return Value(rng.choice(["None", "none", "NONE."]), None, is_none=True)
    label = rng.choice(rng.choice(list(Task)).labels)  # a label of another task: clean only where it fits
    return Value(label, label if label in task.labels else None)


def key_text(rng: random.Random, task: Task) -> str:
    case = rng.choice([str, str.lower, str.upper])
    lead, hashes = rng.choice(["", " ", "  ", "\t"]), rng.choice(["", "", "# "])
    return f"{lead}{hashes}{case(task.answer_key)}{rng.choice(['', '', ' '])}:"


def answer_lines(rng: random.Random, tasks: list[Task], into: dict[Task, list[Value]]) -> list[str]:
    """Answer lines: usually one ``Key: value`` each, sometimes several on one line."""
    lines: list[str] = []
    for task in tasks:
        stated = value(rng, task)
        into.setdefault(task, []).append(stated)
        segment = f"{key_text(rng, task)} {stated.text}"
        if lines and rng.randrange(6) == 0:
            lines[-1] += ", " + segment.lstrip(" \t#")
        else:
            lines.append(segment)
    return lines


def build_output(seed: int) -> Output:
    rng = random.Random(seed)
    result = Output("", rng.random() < 0.5)
    parts: list[str] = []
    for _ in range(rng.randrange(6)):
        task = rng.choice(list(Task))
        parts.append(rng.choice(HEADINGS).format(n=task.value))
        parts += [f"## Reasoning Step {i + 1}\n{prose(rng)}" for i in range(rng.randrange(3))]
        if rng.random() < 0.5:
            words = [*task.labels, *(d.format(a=task.positive, b=task.negative) for d in DECORATIONS)]
            sentence = rng.choice(["The answer is {w}.", "It is {w}", "{w}"]).format(w=rng.choice(words))
            result.conclusions.setdefault(task, []).append(sentence)
            parts.append(f"## Conclusion\n{sentence}")
        if rng.randrange(4) == 0:  # a per-task answer inside the reasoning
            parts += ["# Answers:", *answer_lines(rng, [task], result.earlier)]
        parts.append(prose(rng))
    if rng.randrange(4) == 0:  # an answer, then second thoughts
        tasks = rng.sample(list(Task), rng.randrange(1, 4))
        parts += answer_lines(rng, tasks, result.earlier)
        parts.append(rng.choice(["Wait, let me reconsider.", "Hmm, on second thought:", "x"]))
    # Prose ends the reasoning, so that the final block is the trailing run of answer lines the generator built.
    parts += ["x" + prose(rng), rng.choice(["---", "", "---\n"])]
    if rng.randrange(10):
        parts.append(rng.choice(ANSWERS_HEADINGS))
    order = rng.sample(list(Task), 3)
    final_tasks = [rng.choice(order) for _ in range(rng.randrange(6))] if rng.randrange(5) == 0 else order
    parts += answer_lines(rng, final_tasks, result.final)
    result.text = rng.choice(["\n", "\n\n", "\r\n"]).join(parts) + rng.choice(["", "\n", "\n\n  "])
    return result


def build_clean_output(seed: int) -> Output:
    """A well-formed output: every answer one clean label, each conclusion agreeing with it."""
    rng = random.Random(seed)
    has_response = rng.random() < 0.5
    labels = {task: rng.choice(task.labels) for task in Task}
    said = {task: labels[task] if has_response or not task.needs_response else "None" for task in Task}
    sections = [
        f"# Task {task.value}\n\n## Reasoning Step 1\n{prose(rng)}\n\n## Conclusion\nIt is {said[task]}."
        for task in Task
    ]
    block = "\n".join(f"{task.answer_key}: {said[task]}" for task in Task)
    output = Output("\n\n".join(sections) + "\n\n---\n\nAnswers: \n" + block, has_response)
    output.final = {task: [Value(labels[task], labels[task])] for task in Task}
    return output


HARMFUL = re.compile(r"\bharmful\b", re.I)
LABEL_WORDS = re.compile(r"\b(unharmful|harmful)\b", re.I)


def legitimate_allow(output: Output) -> tuple[bool, str]:
    """Whether the rule lets ``fail_closed`` allow this output, decided from its parts."""
    needed = [task for task in Task if output.has_response or not task.needs_response]
    for task in needed:
        stated = [value for value in output.final.get(task, []) if not value.is_none]
        if not stated or any(value.clean is None for value in stated):
            return False, f"no clean final answer for {task.answer_key}"
        labels = {value.clean for value in stated}
        if len(labels) > 1:
            return False, f"two final answers for {task.answer_key}"
        final = labels.pop()
        if task.is_harm_task and final != task.negative:
            return False, f"{task.answer_key} is {final}"
        if any(value.clean not in (None, final) for value in output.earlier.get(task, [])):
            return False, f"an earlier answer for {task.answer_key} differs"
        if task.is_harm_task:
            if any(HARMFUL.search(value.text) for value in output.earlier.get(task, []) + stated):
                return False, f"an answer for {task.answer_key} names harmful"
            for sentence in output.conclusions.get(task, []):
                if {word.lower() for word in LABEL_WORDS.findall(sentence)} == {"harmful"}:
                    return False, f"Task {task.value} concludes harmful"
    return True, "clean"


def decide(text: str, has_response: bool | None, policy: str = "fail_closed"):
    verdict = apply_policy(parse_output(text, has_response=has_response), policy)
    assert verdict.is_harmful is not None and verdict.decided_by in ("model", "policy")
    return verdict


# -- the properties -----------------------------------------------------------------------------------------


@examples("structured")
@given(SEEDS)
def test_fail_closed_allows_only_a_clean_unambiguous_final_answer(seed):
    GENERATED["structured"] += 1
    output = build_output(seed)
    verdict = decide(output.text, output.has_response)
    allowed, why = legitimate_allow(output)
    if not verdict.is_harmful:
        assert allowed, f"silent allow ({why}): {output.text!r}"
        assert verdict.parse_status.value == "ok" and not verdict.harmful_signals
    # fail_open never blocks what fail_closed allows, and decides everything too.
    assert decide(output.text, output.has_response, "fail_open").is_harmful <= verdict.is_harmful


@examples("clean")
@given(SEEDS)
def test_a_clean_answer_is_decided_by_the_model(seed):
    GENERATED["clean"] += 1
    output = build_clean_output(seed)
    verdict = decide(output.text, output.has_response)
    allowed, _ = legitimate_allow(output)
    assert verdict.decided_by == "model" and verdict.parse_status.value == "ok"
    assert verdict.is_harmful is (not allowed)


@examples("fuzz")
@given(
    st.text(max_size=3000), st.sampled_from([True, False, None]), st.sampled_from([None, "stop", "length"])
)
def test_arbitrary_text_never_crashes_and_is_always_decided(text, has_response, finish_reason):
    GENERATED["fuzz"] += 1
    for policy in ("fail_closed", "fail_open"):
        verdict = apply_policy(
            parse_output(text, has_response=has_response, finish_reason=finish_reason), policy
        )
        assert verdict.is_harmful is not None
        if policy == "fail_closed" and not verdict.is_harmful:
            assert verdict.parse_status.value == "ok" and not verdict.harmful_signals
            assert "harmful" not in {verdict.prompt_harmfulness, verdict.response_harmfulness}


@examples("mutated")
@given(SEEDS, st.lists(st.tuples(st.integers(0, 10_000), st.text(max_size=8)), max_size=6))
def test_mutated_outputs_never_crash(seed, edits):
    GENERATED["mutated"] += 1
    output = build_output(seed)
    text = output.text
    for position, insert in edits:
        position %= len(text) + 1
        text = text[:position] + insert + text[position:]
    verdict = decide(text, output.has_response)
    if not verdict.is_harmful:
        assert verdict.parse_status.value == "ok" and not verdict.harmful_signals


# -- what counts as a clean allow (issue 22) ------------------------------------------------------------------
# The parser fuzz found allows of two kinds: a final label with trailing decoration (``Request: unharmful.``),
# and a conclusion saying harmful that the parse did not weigh (its heading mangled, or its task's). Each
# property below builds a clean, all-safe output and adds one of them.

TRAILING = [".", ";", ",", " .", "..", "!", " (benign)", " - benign", " :)", ".,"]
MANGLE_ALPHABET = PROSE_ALPHABET.replace("#", "").replace("\n", "") + "}{[]&%$@~`^|<>=+_"


def safe_clean_output(rng: random.Random) -> Output:
    """A clean output (``build_clean_output``'s shape) whose every harm label the conversation needs is the
    safe one, so that ``fail_closed`` allows it as it is."""
    while True:
        output = build_clean_output(rng.getrandbits(64))
        if not decide(output.text, output.has_response).is_harmful:
            return output


def mangled(rng: random.Random, word: str) -> str:
    """``word`` with one to four characters inserted (no newline, no ``#``)."""
    for _ in range(rng.randrange(1, 5)):
        at = rng.randrange(len(word) + 1)
        word = word[:at] + rng.choice(MANGLE_ALPHABET) + word[at:]
    return word


@examples("decorated")
@given(SEEDS)
def test_a_decorated_final_label_is_no_clean_allow(seed):
    GENERATED["decorated"] += 1
    rng = random.Random(seed)
    output = safe_clean_output(rng)
    needed = [t for t in Task if output.has_response or not t.needs_response]
    task = rng.choice(needed)
    line = f"{task.answer_key}: {output.final[task][0].clean}"
    text = output.text.replace(line, line + rng.choice(TRAILING), 1)
    assert text != output.text
    closed = decide(text, output.has_response)
    assert closed.is_harmful and closed.parse_status.value != "ok", text[-200:]
    opened = decide(text, output.has_response, "fail_open")
    assert opened.is_harmful is False and getattr(opened, task.verdict_field) == output.final[task][0].clean


@examples("hidden_conclusion")
@given(SEEDS)
def test_a_harmful_conclusion_the_parse_misses_is_no_clean_allow(seed):
    """The needed harm task's conclusion turned to harmful, and hidden from the parse one of three ways: its
    ``## Conclusion`` heading mangled, its ``# Task N`` heading mangled (the section joins the previous one
    or none), or an agreeing conclusion added after it in the same section (the parse keeps the last)."""
    GENERATED["hidden_conclusion"] += 1
    rng = random.Random(seed)
    output = safe_clean_output(rng)
    task = rng.choice([t for t in Task if t.is_harm_task and (output.has_response or not t.needs_response)])
    said = "It is unharmful."
    heading = f"# Task {task.value}\n\n## Reasoning Step 1\n"
    start = output.text.index(heading)
    end = output.text.index(said, start) + len(said)
    section = output.text[start:end].replace(
        said, rng.choice(["It is harmful.", "harmful", "The answer is **harmful**."])
    )
    way = rng.randrange(3)
    if way == 0:
        section = section.replace("## Conclusion", "## " + mangled(rng, "Conclusion"))
    elif way == 1:
        section = section.replace(f"# Task {task.value}", "# " + mangled(rng, f"Task {task.value}"), 1)
    else:
        section += f"\n\n## Conclusion\n{said}"
    text = output.text[:start] + section + output.text[end:]
    verdict = decide(text, output.has_response)
    assert verdict.is_harmful, (way, text)


def test_the_run_generated_the_outputs_it_promised():
    """Runs last in this module: the count of outputs generated (over 100,000 in the full run)."""
    total = sum(GENERATED.values())
    if not GENERATED:
        pytest.skip("run with the property tests above to count their outputs")
    print(f"\nparser properties: {total:,} generated outputs ({dict(GENERATED)}), 0 crashes, 0 silent allows")
    assert total >= sum(bounds[FULL] for bounds in EXAMPLES.values()) * 0.95
    if FULL:
        assert total >= 100_000
