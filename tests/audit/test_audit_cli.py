"""``guardreasoner audit``: plain error lines and exit 2 on bad usage; a run prints the summary."""

from __future__ import annotations

import pytest
from guardreasoner.cli import app
from typer.testing import CliRunner


def run(*args: str):
    return CliRunner().invoke(app, ["audit", *args])


def test_bad_usage_exits_2_with_a_plain_error_line(tmp_path, input_jsonl):
    result = run(str(tmp_path / "missing.jsonl"), "--output", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: The input") and "does not exist" in result.stderr
    result = run(str(input_jsonl), "--output", str(tmp_path / "out"), "--runner", "spark")
    assert (result.exit_code, result.stderr.strip()) == (
        2,
        "error: --runner must be local or ray, not 'spark'.",
    )
    result = run(str(input_jsonl), "--output", str(tmp_path / "out"), "--prompt-column", "[bold]text")
    assert result.exit_code == 2 and "no column '[bold]text'" in result.stderr  # never read as markup


@pytest.mark.slow
def test_a_run_writes_the_output_and_prints_the_summary(tmp_path, input_jsonl, trained_guard_dir):
    out = tmp_path / "out"
    result = run(str(input_jsonl), "--output", str(out), "--model", str(trained_guard_dir), "--engine", "hf")
    assert result.exit_code == 0, result.output
    assert f"300 verdicts in {out} (300 this run, 0 from before; 0 rejected of 300 records)" in result.stdout
    assert "parse_status: ok 300" in result.stdout
    again = run(str(input_jsonl), "--output", str(out), "--model", str(trained_guard_dir), "--engine", "hf")
    assert "(0 this run, 300 from before" in again.stdout
