"""Records for the audit tests: a few hundred over the tiny guard's five conversations, with ids."""

from __future__ import annotations

import json
from pathlib import Path

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
