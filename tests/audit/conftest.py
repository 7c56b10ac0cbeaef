"""Fixtures of the audit tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from _audit_records import records, write_jsonl


@pytest.fixture
def input_jsonl(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "logs.jsonl", records())
