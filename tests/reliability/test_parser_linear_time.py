"""The parser runs in linear time: adversarial outputs cost no more than their length (issue 16).

An output of ``"Answers" + "\\t" * 8000 + "!"`` used to take 1.9 s (16,000 tabs: 7.5 s) in a backtracking
pattern. Times are CPU time of this process (``time.process_time``), the median of several runs, so that a
loaded machine slows them less; the bound leaves a wide margin over the ~10 ms measured on one loaded core,
and the growth from 10 kB to 100 kB is checked too (linear: about 10x; quadratic: about 100x).
"""

from __future__ import annotations

import statistics
import time

import pytest
from guardreasoner.parsing import MAX_OUTPUT_CHARS, parse_output
from guardreasoner.verdict import ParseStatus

MB = 1_000_000


def fill(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


ADVERSARIAL = {
    "answers_then_tabs": lambda n: "Answers" + "\t" * (n - 8) + "!",
    "key_then_tabs": lambda n: "Request" + "\t" * (n - 9) + ":!",
    "heading_then_blanks": lambda n: "# Task 1\n## " + " \t" * (n // 2),
    "label_lines": lambda n: fill("Request: harmful\n", n),
    "mixed_label_lines": lambda n: fill(
        "Request: unharmful\nResponse: harmful-ish\nCompletion: refusal\n", n
    ),
    "keys_on_one_line": lambda n: fill("Request: ", n),
    "one_long_line": lambda n: fill("a", n),
    "hashes": lambda n: fill("#", n),
    "task_headings": lambda n: fill("# Task 1\n", n),
    "conclusions": lambda n: fill("## Conclusion\nThe request is harmful.\n", n),
    "answers_lines": lambda n: fill("Answers:\n", n),
    "reasoning_steps": lambda n: fill("## Reasoning Step 1: x\n", n),
    "newlines": lambda n: fill("\n", n) + "x",
    "spaces": lambda n: fill(" ", n) + "x",
    "dashes": lambda n: fill("-", n) + "x",
}


def cpu_ms(text: str, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        parse_output(text)
        times.append(time.process_time() - start)
    return 1000 * statistics.median(times)


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_a_megabyte_of_adversarial_text_is_decided_in_under_50_ms(name):
    text = ADVERSARIAL[name](MB)
    assert len(text) >= MB
    verdict = parse_output(text)
    assert verdict.parse_status is ParseStatus.OVERSIZED_OUTPUT and verdict.is_parsing_error
    assert cpu_ms(text) < 50


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_text_up_to_the_size_limit_is_parsed_in_linear_time(name):
    small, large = ADVERSARIAL[name](MAX_OUTPUT_CHARS // 10), ADVERSARIAL[name](MAX_OUTPUT_CHARS - 16)
    assert parse_output(large).parse_status is not ParseStatus.OVERSIZED_OUTPUT
    small_ms, large_ms = cpu_ms(small), cpu_ms(large)
    assert large_ms < 50, f"{name}: {large_ms:.1f} ms for {len(large):,} characters"
    # Ten times the text may cost at most 30 times the time (timer resolution and noise included).
    assert large_ms < 30 * max(small_ms, 0.5), f"{name}: {small_ms:.2f} ms -> {large_ms:.2f} ms"


def test_the_reported_quadratic_case_is_fast():
    for tabs in (8_000, 16_000, 64_000):
        assert cpu_ms("Answers" + "\t" * tabs + "!") < 50
