"""Thresholds through the real command lines: ``eval --calibrate`` writes them, ``classify --thresholds`` uses them."""

from __future__ import annotations

import json

import pytest
from guardreasoner import Verdict
from guardreasoner.testing import TINY_GUARD_CASES, guard_output

# P(harmful) with the gold labels: positives 0.9, 0.8, 0.6; negatives 0.7, 0.3, 0.2, 0.1.
SCORED = [("harmful", 0.9), ("harmful", 0.8), ("unharmful", 0.7), ("harmful", 0.6)]
SCORED += [("unharmful", 0.3), ("unharmful", 0.2), ("unharmful", 0.1)]


def write_scored_predictions(root, scored=SCORED):
    folder = root / "predictions" / "HarmBenchPrompt"
    folder.mkdir(parents=True)
    lines = [
        json.dumps(
            {
                "prompt": f"p{i}",
                "label": label,
                "predict": guard_output("harmful" if (score or 0) >= 0.5 else "unharmful"),
                **({"scores": {"prompt_harmfulness": score}} if score is not None else {}),
            }
        )
        for i, (label, score) in enumerate(scored)
    ]
    (folder / "generated_predictions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder.parent


def test_strict_report_and_calibration_write_the_thresholds_file(run, workdir):
    predictions = write_scored_predictions(workdir)
    result = run("eval", "--predictions", predictions, "--mode", "strict", "--calibrate")
    assert result.returncode == 0, result.stderr
    assert "Recall@1% FPR" in result.stdout and "Recall@5% FPR" in result.stdout
    # No negative above 0.8 is allowed at 1% FPR (4 negatives): threshold 0.8 catches 2 of 3.
    written = json.loads((predictions / "thresholds.json").read_text())
    assert written["thresholds"] == {"prompt_harmfulness": 0.8}
    assert written["calibration"]["tasks"]["prompt_harmfulness"]["recall"] == pytest.approx(2 / 3)
    # One false alarm of four is within 25%: 0.6 then catches all three (reference mode scores strictly here).
    out = workdir / "t.json"
    result = run(
        "eval", "--predictions", predictions, "--calibrate", "--target-fpr", "0.25", "--thresholds-out", out
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["thresholds"] == {"prompt_harmfulness": 0.6}


def test_calibration_without_scores_says_where_scores_come_from(run, workdir, error_line):
    predictions = write_scored_predictions(workdir, [("harmful", None), ("unharmful", None)])
    line = error_line(run("eval", "--predictions", predictions, "--calibrate"))
    assert "No prediction record has scores" in line and "hf" in line
    assert not (predictions / "thresholds.json").exists()


def test_classify_rejects_a_bad_thresholds_file(run, workdir, error_line):
    (workdir / "bad.json").write_text('{"thresholds": {"prompt_harmfulness": 2}}')
    line = error_line(
        run("classify", "--engine", "cli_engines:scripted", "--prompt", "hi", "--thresholds", "bad.json")
    )
    assert "bad.json" in line and "[0, 1]" in line


@pytest.mark.slow
def test_classify_with_a_thresholds_file_changes_the_label(run, trained_guard_dir, workdir):
    case = TINY_GUARD_CASES[0]
    assert case.prompt_harmfulness == "harmful"
    args = ("classify", "--model", trained_guard_dir, "--engine", "hf", "--prompt", case.prompt, "--json")
    plain = Verdict.model_validate_json(run(*args).stdout)
    assert plain.prompt_harmfulness == "harmful" and 0.5 < plain.prompt_harmfulness_score < 1.0
    (workdir / "t.json").write_text(json.dumps({"thresholds": {"prompt_harmfulness": 1.0}}))
    result = run(*args, "--thresholds", "t.json")
    assert result.returncode == 0, result.stderr  # safe now: exit status 0
    verdict = Verdict.model_validate_json(result.stdout)
    assert verdict.prompt_harmfulness == "unharmful" and verdict.is_harmful is False
    assert verdict.thresholds == {"prompt_harmfulness": 1.0}
    assert verdict.prompt_harmfulness_score == plain.prompt_harmfulness_score
