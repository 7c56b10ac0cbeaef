"""The command line, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from guardreasoner import Verdict
from guardreasoner.testing import TINY_GUARD_CASES

CLI = [sys.executable, "-m", "guardreasoner.cli"]


def run(*args, **kwargs):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, **kwargs)


@pytest.mark.slow
def test_classify_prints_a_verdict_json(trained_guard_dir):
    result = run("classify", "--model", str(trained_guard_dir), "--engine", "hf", "--prompt", "hi", "--json")
    assert result.returncode == 0, result.stderr
    verdict = Verdict.model_validate_json(result.stdout)
    assert verdict.decided_by in ("model", "policy") and verdict.raw_output


@pytest.mark.slow
def test_classify_readable_output(trained_guard_dir):
    case = TINY_GUARD_CASES[4]
    result = run(
        "classify",
        "--model",
        str(trained_guard_dir),
        "--engine",
        "hf",
        "--prompt",
        case.prompt,
        "--response",
        case.response,
    )
    assert result.returncode == 0, result.stderr
    assert "Decision: HARMFUL" in result.stdout and "Response:   harmful" in result.stdout
    assert "Task 1" in result.stdout


@pytest.mark.slow
def test_classify_file_writes_one_verdict_a_line(trained_guard_dir, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(
        "\n".join(json.dumps({"prompt": c.prompt, "response": c.response}) for c in TINY_GUARD_CASES)
    )
    target = tmp_path / "out.jsonl"
    result = run(
        "classify",
        "--model",
        str(trained_guard_dir),
        "--engine",
        "hf",
        "--input",
        str(source),
        "--output",
        str(target),
        "--batch-size",
        "2",
    )
    assert result.returncode == 0, result.stderr
    verdicts = [Verdict.model_validate_json(line) for line in target.read_text().splitlines()]
    assert [v.prompt_harmfulness for v in verdicts] == [c.prompt_harmfulness for c in TINY_GUARD_CASES]
    assert "Classifying" in result.stderr


def test_bad_invocations_explain_themselves(tmp_path):
    both = run("classify", "--prompt", "x", "--input", str(tmp_path / "f.jsonl"))
    assert both.returncode != 0 and "either --prompt" in both.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no prompt"}\n')
    missing = run("classify", "--input", str(bad))
    assert missing.returncode != 0 and "needs a 'prompt' field" in missing.stderr


def test_unknown_model_offline_exits_with_a_clear_error():
    result = run("classify", "--model", "nobody/NoSuchGuard", "--engine", "hf", "--prompt", "hi")
    assert result.returncode == 2
    assert "nobody/NoSuchGuard" in result.stderr and "--model DIR" in result.stderr.replace("\n", " ")
