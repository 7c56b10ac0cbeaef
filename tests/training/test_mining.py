"""Hard-sample mining on hand-built sample sets with known pairs and weights."""

from __future__ import annotations

import pytest
from guardreasoner.prompt import INSTRUCTION, build_input
from guardreasoner.testing import guard_output
from guardreasoner_training.errors import TrainingDataError
from guardreasoner_training.mining import MiningReport, SampleSet, merge_pairs, mine_pairs, scale_weights


def out(request, completion=None, response=None, pad: str = "") -> str:
    """A well-formed output with the given labels; ``pad`` lengthens its reasoning (to test 'longest')."""
    return guard_output(request, completion, response, reasoning="Step." + pad)


def item(name, prompt, response, gold, samples) -> SampleSet:
    return SampleSet(INSTRUCTION, build_input(prompt, response), out(*gold), name, samples=tuple(samples))


def test_pairs_chosen_rejected_and_weights():
    sets = [
        # request task: 1 right (harmful), 3 wrong -> raw weight 2; the longest of each side is taken
        item(
            "a",
            "Make a bomb",
            None,
            ("harmful",),
            [
                out("unharmful", pad=" x"),
                out("harmful"),
                out("unharmful", pad=" longer text"),
                out("unharmful"),
            ],
        ),
        # request task: 3 right, 1 wrong -> raw weight -2
        item(
            "b",
            "Bake bread",
            None,
            ("unharmful",),
            [
                out("unharmful"),
                out("unharmful", pad=" the longest right one"),
                out("harmful"),
                out("unharmful"),
            ],
        ),
        # request all right, response task mixed 2/2 -> raw weight 0, task 'response'
        item(
            "c",
            "Hi",
            "Here is how to hurt people",
            ("unharmful", "compliance", "harmful"),
            [
                out("unharmful", "compliance", "harmful"),
                out("unharmful", "compliance", "unharmful", pad=" long"),
                out("unharmful", "compliance", "harmful", pad=" longer"),
                out("unharmful", "compliance", "unharmful"),
            ],
        ),
        # request and response all right, refusal mixed 1 right / 3 wrong -> task 'completion', raw weight 2
        item(
            "d",
            "Hi",
            "Sorry, I can't.",
            ("unharmful", "refusal", "unharmful"),
            [out("unharmful", "refusal", "unharmful")] + [out("unharmful", "compliance", "unharmful")] * 3,
        ),
        # all samples right: no pair
        item("e", "Hi", None, ("unharmful",), [out("unharmful")] * 4),
        # all samples wrong: no pair
        item("f", "Make a bomb", None, ("harmful",), [out("unharmful")] * 4),
    ]
    report = MiningReport()
    pairs = mine_pairs(sets, report=report)
    by_id = {p["id"]: p for p in pairs}
    assert set(by_id) == {"a", "b", "c", "d"}
    assert by_id["a"]["task"] == "request"
    assert by_id["a"]["chosen"] == out("harmful")
    assert by_id["a"]["rejected"] == out("unharmful", pad=" longer text")
    assert by_id["b"]["chosen"] == out("unharmful", pad=" the longest right one")
    assert by_id["b"]["rejected"] == out("harmful")
    assert by_id["c"]["task"] == "response"
    assert by_id["c"]["chosen"] == out("unharmful", "compliance", "harmful", pad=" longer")
    assert by_id["c"]["rejected"] == out("unharmful", "compliance", "unharmful", pad=" long")
    assert by_id["d"]["task"] == "completion"
    assert [by_id[k]["raw_weight"] for k in "abcd"] == [2, -2, 0, 2]
    # min-max to [0.8, 1.2]: -2 -> 0.8, 0 -> 1.0, 2 -> 1.2
    assert [by_id[k]["sample_weight"] for k in "abcd"] == pytest.approx([1.2, 0.8, 1.0, 1.2])
    assert by_id["a"]["instruction"] == INSTRUCTION and by_id["a"]["input"] == build_input("Make a bomb")
    assert (report.prompts, report.pairs, report.all_right, report.all_wrong) == (6, 4, 1, 1)
    assert report.by_task == {"request": 2, "response": 1, "completion": 1}


def test_ties_take_the_first_and_equal_weights_sit_at_one():
    sets = [
        item(
            "t",
            "Make a bomb",
            None,
            ("harmful",),
            [
                out("unharmful", pad="A"),
                out("harmful", pad="B"),
                out("unharmful", pad="C"),
                out("harmful", pad="D"),
            ],
        )
    ]
    (pair,) = mine_pairs(sets)
    assert pair["chosen"] == out("harmful", pad="B")
    assert pair["rejected"] == out("unharmful", pad="A")
    assert pair["sample_weight"] == pytest.approx(1.0)  # a single pair: max == min, no NaN


def test_unreadable_samples_are_skipped_or_counted_wrong():
    cut_off = "# Task 1\n\n## Reasoning Step 1\nThe request asks for"
    sets = [
        item(
            "u",
            "Make a bomb",
            None,
            ("harmful",),
            [out("harmful"), out("harmful"), cut_off, out("unharmful")],
        )
    ]
    report = MiningReport()
    (skipped,) = mine_pairs(sets, report=report)
    assert (skipped["num_right"], skipped["num_wrong"]) == (2, 1)
    assert report.unreadable_samples == 1
    (counted,) = mine_pairs(sets, unreadable="wrong")
    assert (counted["num_right"], counted["num_wrong"]) == (2, 2)
    assert counted["rejected"] == out("unharmful")  # longer than the cut-off text


def test_response_tasks_need_a_response_and_a_gold_label():
    # no AI response: a mix on the response labels must not make a pair
    sets = [
        item("n", "Hi", None, ("unharmful",), [out("unharmful", "refusal", "harmful"), out("unharmful")] * 2)
    ]
    assert mine_pairs(sets) == []


def test_scale_weights_range():
    pairs = scale_weights([{"raw_weight": v} for v in (-2, -1, 0, 2)])
    assert [p["sample_weight"] for p in pairs] == pytest.approx([0.8, 0.9, 1.0, 1.2])


def test_merge_keeps_first_pair_per_input():
    first = [{"input": "x", "chosen": "1"}, {"input": "y", "chosen": "2"}]
    second = [{"input": "y", "chosen": "3"}, {"input": "z", "chosen": "4"}]
    assert [p["chosen"] for p in merge_pairs([first, second])] == ["1", "2", "4"]


def test_bad_rows_say_what_is_missing():
    with pytest.raises(TrainingDataError, match="samples"):
        SampleSet.from_row({"instruction": "i", "input": "x", "output": "y"}, "s.jsonl")
