"""Records for the audit tests: a few hundred over the tiny guard's five conversations, with ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from guardreasoner.tasks import Task
from guardreasoner.testing import TINY_GUARD_CASES

RECORDS = 300


def records(count: int = RECORDS) -> list[dict]:
    """``count`` records cycling through the tiny guard's cases (requests alone and with responses)."""
    cases = TINY_GUARD_CASES
    return [
        {
            "id": f"r{i:04d}",
            "prompt": cases[i % len(cases)].prompt,
            "response": cases[i % len(cases)].response,
        }
        for i in range(count)
    ]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


SCORE_FIELDS = [f"{task.verdict_field}_score" for task in Task]


def assert_same_verdicts(got: dict, expected: dict) -> None:
    """Equal verdicts, the scores within float32 rounding: the hf engine pads each batch to its longest
    prompt, and an audit's batches are not ``classify_batch``'s, so a score can move in its seventh digit."""
    assert got.keys() == expected.keys()
    for key, verdict in expected.items():
        other = got[key]
        assert other.model_copy(update=dict.fromkeys(SCORE_FIELDS)) == verdict.model_copy(
            update=dict.fromkeys(SCORE_FIELDS)
        ), key
        for field in SCORE_FIELDS:
            assert getattr(other, field) == pytest.approx(getattr(verdict, field), abs=1e-5), (key, field)
