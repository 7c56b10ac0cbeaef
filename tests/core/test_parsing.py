"""The parser against the released models' real outputs and hand-written edge cases."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
from guardreasoner.errors import GuardUndecidedError
from guardreasoner.parsing import MAX_OUTPUT_CHARS, MAX_TASK_SECTIONS, parse_output, stray_harm_statements
from guardreasoner.policy import apply_policy
from guardreasoner.testing import guard_output
from guardreasoner.verdict import ParseStatus, Task, Verdict

# The reference evaluation's regexes, applied to the last 300 characters of the output.
REFERENCE = {
    "prompt_harmfulness": re.compile(r"Request:\s*(harmful|unharmful)", re.I),
    "response_refusal": re.compile(r"Completion:\s*(compliance|refusal)", re.I),
    "response_harmfulness": re.compile(r"Response:\s*(harmful|unharmful)", re.I),
}


@pytest.fixture(scope="module")
def released_outputs(shared_data) -> list[str]:
    outputs = []
    for path in sorted((shared_data / "predictions").glob("*/*/generated_predictions.jsonl")):
        outputs += [
            json.loads(line)["predict"] for line in path.read_text(encoding="utf-8").split("\n") if line
        ]
    return outputs


def test_agrees_with_reference_regex_on_every_released_output(released_outputs):
    assert len(released_outputs) == 6585
    compared = 0
    for text in released_outputs:
        verdict = parse_output(text)
        for field, pattern in REFERENCE.items():
            match = pattern.search(text[-300:])
            if match:
                assert getattr(verdict, field) == match.group(1).lower(), (field, text[-400:])
                compared += 1
    assert compared > 9000


def test_says_why_wherever_the_reference_finds_no_label(released_outputs):
    statuses = Counter()
    for text in released_outputs:
        verdict = parse_output(text)
        statuses[verdict.parse_status] += 1
        if not REFERENCE["prompt_harmfulness"].search(text[-300:]):
            # Either recovered from the reasoning (and marked so) or an error that explains itself.
            assert verdict.parse_status is not ParseStatus.OK
            assert verdict.parse_detail
            if verdict.parse_status is ParseStatus.RECOVERED:
                assert "prompt_harmfulness" in verdict.recovered_fields
                assert not verdict.is_parsing_error
            else:
                assert verdict.is_parsing_error and verdict.is_harmful is None
    assert statuses[ParseStatus.OK] > 6400
    assert statuses[ParseStatus.RECOVERED] > 0 and statuses[ParseStatus.NO_ANSWER_BLOCK] > 0


def test_no_released_output_decorates_a_label_or_hides_a_conclusion(released_outputs):
    """The two rules of issue 22 change no released output: none carries more than its label in a final
    answer, and no allow has a stray harmful conclusion (``benchmarks/parser_probe.py`` compares every
    output's reading with main's)."""
    for text in released_outputs:
        verdict = parse_output(text)
        assert verdict.parse_status is not ParseStatus.DECORATED_ANSWER, text[-300:]
        if (
            verdict.is_harmful is False
            and verdict.parse_status is ParseStatus.OK
            and not verdict.harmful_signals
        ):
            assert not stray_harm_statements(text), text[:600]


def test_clean_output_with_reasoning():
    text = guard_output("harmful", "refusal", "unharmful", reasoning="It asks for a weapon.")
    verdict = parse_output(text, has_response=True, finish_reason="stop", num_generated_tokens=90)
    assert (verdict.prompt_harmfulness, verdict.response_refusal, verdict.response_harmfulness) == (
        "harmful",
        "refusal",
        "unharmful",
    )
    assert verdict.parse_status is ParseStatus.OK and not verdict.is_parsing_error
    assert verdict.is_harmful is True and verdict.decided_by == "model"
    assert [s.task for s in verdict.reasoning] == [
        Task.PROMPT_HARMFULNESS,
        Task.RESPONSE_REFUSAL,
        Task.RESPONSE_HARMFULNESS,
    ]
    assert verdict.reasoning[0].steps == ["It asks for a weapon."]
    assert verdict.reasoning[1].conclusion_label == "refusal"
    assert verdict.num_generated_tokens == 90 and verdict.finish_reason == "stop"


def test_verdict_json_uses_wildguard_field_names():
    data = json.loads(parse_output(guard_output("unharmful", None, None)).model_dump_json())
    for key in ("prompt_harmfulness", "response_refusal", "response_harmfulness", "is_parsing_error"):
        assert key in data
    assert data["prompt_harmfulness"] == "unharmful" and data["response_refusal"] is None
    assert Verdict.model_validate_json(json.dumps(data)).prompt_harmfulness == "unharmful"


def test_labels_are_case_insensitive_and_lowercased():
    verdict = parse_output("Answers:\nRequest: Harmful\nCompletion: REFUSAL\nResponse: Unharmful\n")
    assert (verdict.prompt_harmfulness, verdict.response_refusal, verdict.response_harmfulness) == (
        "harmful",
        "refusal",
        "unharmful",
    )


def test_recovers_a_label_stated_per_task_when_the_final_block_says_none():
    text = (
        "# Task 1\n\n## Reasoning Step 1: It asks how to hurt someone.\n\n# Answers: \nRequest: harmful\n\n"
        "# Task 2\n\n## Reasoning Step 1: It refuses.\n\n# Answers: \nCompletion: refusal\n\n"
        "# Task 3\n\n## Reasoning Step 1: Nothing harmful.\n\n# Answers: \nResponse: unharmful\n\n"
        "---\n\nAnswers: \nRequest: None\nCompletion: None\nResponse: unharmful\n"
    )
    verdict = parse_output(text, has_response=True)
    assert verdict.parse_status is ParseStatus.RECOVERED
    assert verdict.recovered_fields == ["prompt_harmfulness", "response_refusal"]
    assert (verdict.prompt_harmfulness, verdict.response_refusal, verdict.response_harmfulness) == (
        "harmful",
        "refusal",
        "unharmful",
    )
    assert not verdict.is_parsing_error and verdict.is_harmful is True
    assert verdict.reasoning[0].steps == ["It asks how to hurt someone."]


def test_flags_an_answer_that_contradicts_the_tasks_conclusion():
    text = (
        "# Task 1\n\n## Reasoning Step 1\nA recipe question.\n\n## Conclusion\nThe human user's request is unharmful.\n\n"
        "---\n\nAnswers: \nRequest: harmful\nCompletion: None\nResponse: None\n"
    )
    verdict = parse_output(text)
    assert verdict.parse_status is ParseStatus.CONTRADICTS_REASONING
    assert verdict.prompt_harmfulness == "harmful"  # the answer, as the reference reads it
    assert "Task 1 concludes 'unharmful'" in verdict.parse_detail
    assert verdict.is_usable


def test_truncated_output_is_an_error_that_says_so():
    text = "# Task 1\n\n## Reasoning Step 1\nThe user asks . . . . . . . ."
    verdict = parse_output(text, finish_reason="length", num_generated_tokens=2048)
    assert verdict.parse_status is ParseStatus.TRUNCATED and verdict.is_parsing_error
    assert "token limit" in verdict.parse_detail
    assert verdict.is_harmful is None and verdict.decided_by is None
    assert parse_output(text, finish_reason="stop").parse_status is ParseStatus.NO_ANSWER_BLOCK


def test_empty_output():
    verdict = parse_output("  \n")
    assert verdict.parse_status is ParseStatus.EMPTY_OUTPUT and verdict.is_parsing_error


def test_missing_response_label_is_incomplete_only_when_a_response_was_given():
    text = "Answers: \nRequest: unharmful\nCompletion: None\nResponse: None\n"
    assert parse_output(text, has_response=False).parse_status is ParseStatus.OK
    verdict = parse_output(text, has_response=True)
    assert verdict.parse_status is ParseStatus.INCOMPLETE_ANSWER and verdict.is_parsing_error
    assert "response_refusal" in verdict.parse_detail and "response_harmfulness" in verdict.parse_detail


def test_prompt_only_conversation_drops_response_labels():
    verdict = parse_output(guard_output("harmful", "refusal", "unharmful"), has_response=False)
    assert verdict.response_refusal is None and verdict.response_harmfulness is None
    assert verdict.is_harmful is True


def test_bare_label_lines_without_heading_are_read():
    verdict = parse_output("Request: unharmful\nCompletion: compliance\nResponse: harmful")
    assert verdict.parse_status is ParseStatus.OK
    assert verdict.response_harmfulness == "harmful" and verdict.is_harmful is True


def test_prose_mentioning_labels_is_not_an_answer():
    text = "The user asks whether Response: harmful is a valid label, and keeps talking about it at length"
    verdict = parse_output(text)
    assert verdict.is_parsing_error and verdict.parse_status is ParseStatus.NO_ANSWER_BLOCK


# -- the whole-word rule and fail_closed (issue 16) ----------------------------------------------------------

REASONED = (
    "# Task 1\n\n## Reasoning Step 1\nThe user asks about baking.\n\n## Conclusion\nThe request is {conclusion}.\n\n"
    "---\n\nAnswers: \n{answers}\n"
)


def closed_and_open(verdict: Verdict) -> tuple[Verdict, Verdict]:
    return apply_policy(verdict, "fail_closed"), apply_policy(verdict, "fail_open")


@pytest.mark.parametrize(
    "value",
    [
        "unharmful-but-harmful",
        "unharmful, harmful",
        "unharmful / harmful",
        "unharmful?",
        "unharmful (probably)",
        "unharmful-ish",
        "**unharmful**",
        "maybe",
    ],
)
def test_a_label_counts_only_as_the_whole_value(value):
    verdict = parse_output(f"Answers: \nRequest: {value}\nCompletion: None\nResponse: None\n")
    assert verdict.parse_status is ParseStatus.AMBIGUOUS_ANSWER and verdict.is_parsing_error
    assert value in verdict.parse_detail
    closed, opened = closed_and_open(verdict)
    assert closed.is_harmful is True and closed.decided_by == "policy"
    assert opened.is_harmful is False and opened.decided_by == "policy"


@pytest.mark.parametrize("value", ["unharmful", "  UNHARMFUL ", "Unharmful"])
def test_whitespace_and_case_are_allowed(value):
    verdict = apply_policy(parse_output(f"Answers:\nRequest: {value}\nCompletion: None\nResponse: None"))
    assert verdict.parse_status is ParseStatus.OK and verdict.is_harmful is False


@pytest.mark.parametrize("value", ["Unharmful.", "unharmful;", "unharmful ,", "unharmful . "])
def test_trailing_punctuation_is_read_but_is_no_clean_allow(value):
    verdict = parse_output(f"Answers:\nRequest: {value}\nCompletion: None\nResponse: None")
    assert verdict.parse_status is ParseStatus.DECORATED_ANSWER and not verdict.is_parsing_error
    assert verdict.prompt_harmfulness == "unharmful" and value.strip() in verdict.parse_detail
    closed, opened = closed_and_open(verdict)
    assert closed.is_harmful is True and closed.decided_by == "policy"
    assert "decorated_answer" in closed.parse_detail
    assert opened.is_harmful is False and opened.decided_by == "model"
    harmful = apply_policy(parse_output(f"Answers:\nRequest: {value.lower().replace('un', '', 1)}"))
    assert harmful.prompt_harmfulness == "harmful" and harmful.is_harmful and harmful.decided_by == "model"


def test_a_comma_before_the_next_answer_on_the_line_separates_it():
    verdict = parse_output("Answers: \nRequest: unharmful, Completion: None, Response: None")
    assert verdict.parse_status is ParseStatus.OK and apply_policy(verdict).is_harmful is False


def test_an_ambiguous_label_keeps_the_reference_reading_in_the_field():
    verdict = parse_output("Answers: \nRequest: unharmful-but-harmful\n")
    assert verdict.prompt_harmfulness == "unharmful"  # the reference regex reads the prefix
    assert "the final answers say 'Request: unharmful-but-harmful'" in verdict.harmful_signals


def test_several_answers_on_one_line_are_read_each():
    verdict = parse_output("Answers: \nRequest: unharmful, Completion: compliance, Response: unharmful\n")
    assert verdict.parse_status is ParseStatus.OK
    assert (verdict.prompt_harmfulness, verdict.response_refusal, verdict.response_harmfulness) == (
        "unharmful",
        "compliance",
        "unharmful",
    )


def test_an_overridden_final_answer_is_not_an_allow_under_fail_closed():
    verdict = parse_output("Request: harmful\nWait, let me reconsider.\nRequest: unharmful")
    assert verdict.parse_status is ParseStatus.ANSWER_OVERRIDDEN and verdict.prompt_harmfulness == "unharmful"
    assert "earlier answer line gives prompt_harmfulness as harmful" in verdict.parse_detail
    closed, opened = closed_and_open(verdict)
    assert closed.is_harmful is True and closed.decided_by == "policy" and closed.policy == "fail_closed"
    assert "an earlier answer line names harmful for Request" in closed.parse_detail
    assert opened.is_harmful is False and opened.decided_by == "model"  # the final block, as before


def test_an_override_towards_harmful_is_harmful_under_both_policies():
    verdict = parse_output("Request: unharmful\nWait.\nRequest: harmful")
    assert verdict.parse_status is ParseStatus.ANSWER_OVERRIDDEN
    assert all(v.is_harmful and v.decided_by == "model" for v in closed_and_open(verdict))


@pytest.mark.parametrize("heading", ["# Task 1", "# task 1", "   # TASK 1", "\t## Task 1: the request"])
def test_task_headings_are_matched_in_any_case_and_indented(heading):
    text = REASONED.format(conclusion="harmful", answers="Request: unharmful").replace("# Task 1", heading)
    verdict = parse_output(text)
    assert verdict.parse_status is ParseStatus.CONTRADICTS_REASONING
    assert verdict.reasoning[0].conclusion_label == "harmful"
    closed, opened = closed_and_open(verdict)
    assert closed.is_harmful is True and "Task 1 concludes 'harmful'" in closed.parse_detail
    assert opened.is_harmful is False  # fail_open keeps the reference's reading: the answer


def test_a_contradiction_towards_harmful_stays_the_models_harmful():
    verdict = parse_output(REASONED.format(conclusion="unharmful", answers="Request: harmful"))
    assert verdict.parse_status is ParseStatus.CONTRADICTS_REASONING
    assert all(v.is_harmful and v.decided_by == "model" for v in closed_and_open(verdict))


def test_a_recovered_safe_label_is_not_a_clean_allow():
    text = (
        "# Task 1\n\n## Reasoning Step 1\nIt asks about baking.\n\n# Answers: \nRequest: unharmful\n\n"
        "## Reasoning Step 2\nNothing else.\n\n---\n\nAnswers: \nRequest: None\n"
    )
    verdict = parse_output(text)
    assert verdict.parse_status is ParseStatus.RECOVERED and verdict.prompt_harmfulness == "unharmful"
    closed, opened = closed_and_open(verdict)
    assert closed.is_harmful is True and "recovered_from_reasoning" in closed.parse_detail
    assert opened.is_harmful is False and opened.decided_by == "model"
    with pytest.raises(
        GuardUndecidedError, match="is not a clean allow: the answer is recovered_from_reasoning"
    ):
        apply_policy(verdict, "raise")


def test_a_clean_allow_stands_under_every_policy():
    verdict = parse_output(REASONED.format(conclusion="unharmful", answers="Request: unharmful"))
    assert verdict.parse_status is ParseStatus.OK and verdict.harmful_signals == []
    assert all(v.is_harmful is False and v.decided_by == "model" for v in closed_and_open(verdict))
    assert apply_policy(verdict, "raise") is verdict


def test_a_harmful_conclusion_in_an_earlier_section_still_blocks_under_fail_closed():
    text = (
        "# Task 1\n## Conclusion\nThe request is harmful.\n\n# Task 1\n## Conclusion\nThe request is unharmful.\n\n"
        "Answers: \nRequest: unharmful\n"
    )
    verdict = parse_output(text)
    assert verdict.parse_status is ParseStatus.OK and verdict.harmful_signals == [
        "Task 1 concludes 'harmful'"
    ]
    assert apply_policy(verdict, "fail_closed").is_harmful is True
    assert apply_policy(verdict, "fail_open").is_harmful is False


def test_a_looping_output_is_a_parse_problem():
    text = (
        "# Task 1\n## Conclusion\nThe request is unharmful.\n" * (MAX_TASK_SECTIONS + 1)
        + "Answers:\nRequest: unharmful"
    )
    verdict = parse_output(text)
    assert verdict.parse_status is ParseStatus.LOOPING_OUTPUT and verdict.is_parsing_error
    assert len(verdict.reasoning) == MAX_TASK_SECTIONS


def test_an_oversized_output_is_not_read():
    text = "x" * MAX_OUTPUT_CHARS + "\nAnswers:\nRequest: unharmful"
    verdict = parse_output(text)
    assert verdict.parse_status is ParseStatus.OVERSIZED_OUTPUT and verdict.prompt_harmfulness is None
    assert apply_policy(verdict).is_harmful is True


SAFE_BLOCK = "\n\n---\n\nAnswers: \nRequest: unharmful\nCompletion: None\nResponse: None\n"


@pytest.mark.parametrize(
    "reasoning, heading",
    [
        (
            "# Task 1\n\n## Reasoning Step 1\nA question.\n\n## ConcYGlusion\nIt is harmful.",
            "## ConcYGlusion",
        ),
        (
            "# Conclusion for Task 1: harmful\n\n# Task 1\n\n## Reasoning Step 1\nA question.",
            "# Conclusion for",
        ),
        ("# Tas?k 1\n\n## Reasoning Step 1\nA question.\n\n## Conclusion\nharmful", "## Conclusion"),
        (  # a lost task heading merges two sections; the parse keeps the last conclusion
            "# Task 1\n\n## Conclusion\nThe request is harmful.\n\n# Tsk 2\n\n## Conclusion\nIt is fine.",
            "## Conclusion",
        ),
    ],
)
def test_a_harmful_conclusion_the_parse_does_not_weigh_is_no_clean_allow(reasoning, heading):
    verdict = parse_output(reasoning + SAFE_BLOCK)
    assert verdict.parse_status is ParseStatus.OK and not verdict.harmful_signals  # the parse as it was
    assert stray_harm_statements(reasoning + SAFE_BLOCK)[0].startswith(heading)
    closed, opened = closed_and_open(verdict)
    assert closed.is_harmful is True and closed.decided_by == "policy"
    assert "a conclusion outside the tasks' sections says harmful" in closed.parse_detail
    assert opened.is_harmful is False


@pytest.mark.parametrize(
    "reasoning",
    [
        "# Task 1\n\n## Reasoning Step 1\nNothing harmful is asked.\n\n## Conclusion\nThe request is unharmful.",
        "# Task 2\n\n## Conclusion\nA refusal, so nothing harmful is said.\n\n# Task 1\n\n## Conclusion\nunharmful",
        "# Conclusion for Task 1: the request is unharmful, not harmful\n\n# Task 1\n\n## Reasoning Step 1\nFine.",
    ],
)
def test_harm_words_that_conclude_no_harm_leave_a_clean_allow(reasoning):
    assert not stray_harm_statements(reasoning + SAFE_BLOCK)
    assert apply_policy(parse_output(reasoning + SAFE_BLOCK)).is_harmful is False
