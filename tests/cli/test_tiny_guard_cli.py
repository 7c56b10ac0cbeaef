"""``guardreasoner classify`` on a real (tiny, trained) model through the hf engine, and the offline hub hint."""

from __future__ import annotations

import json

import pytest
from guardreasoner import Verdict
from guardreasoner.testing import TINY_GUARD_CASES


def hf(model) -> tuple:
    return ("--model", model, "--engine", "hf")


@pytest.mark.slow
def test_classify_prints_the_models_verdict_as_json(run, trained_guard_dir):
    case = TINY_GUARD_CASES[1]
    result = run("classify", *hf(trained_guard_dir), "--prompt", case.prompt, "--json")
    assert result.returncode == 0, result.stderr
    verdict = Verdict.model_validate_json(result.stdout)
    assert (
        verdict.decided_by == "model" and verdict.prompt_harmfulness == case.prompt_harmfulness == "unharmful"
    )


@pytest.mark.slow
def test_classify_readable_output_and_harmful_exit_status(run, trained_guard_dir):
    case = TINY_GUARD_CASES[4]
    result = run(
        "classify",
        *hf(trained_guard_dir),
        "--prompt",
        case.prompt,
        "--response",
        case.response,
    )
    assert result.returncode == 1, result.stderr
    assert "Decision: HARMFUL\n" in result.stdout and "Response:   harmful" in result.stdout
    assert "Task 1" in result.stdout


@pytest.mark.slow
def test_classify_file_writes_one_verdict_a_line(run, trained_guard_dir, workdir):
    source = workdir / "in.jsonl"
    source.write_text(
        "\n".join(json.dumps({"prompt": c.prompt, "response": c.response}) for c in TINY_GUARD_CASES)
    )
    result = run(
        "classify",
        *hf(trained_guard_dir),
        "--input",
        source,
        "--output",
        "out.jsonl",
        "--batch-size",
        "2",
    )
    assert result.returncode == 1, result.stderr
    rows = [json.loads(line) for line in (workdir / "out.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rows] == [1, 2, 3, 4, 5]
    verdicts = [Verdict.model_validate(row) for row in rows]
    assert [v.prompt_harmfulness for v in verdicts] == [c.prompt_harmfulness for c in TINY_GUARD_CASES]
    assert all(v.decided_by == "model" for v in verdicts)
    assert "5 conversation(s), 0 from an earlier run: 2 safe, 3 harmful, 0 undecided" in result.stderr


def test_unknown_model_offline_fails_fast_with_the_download_hint(run, error_line):
    result = run("classify", "--model", "nobody/NoSuchGuard", "--engine", "hf", "--prompt", "hi")
    assert result.returncode == 2
    line = error_line(result)
    assert "'nobody/NoSuchGuard'" in line and "--model DIR" in line
    assert "hf download nobody/NoSuchGuard --local-dir DIR" in line
