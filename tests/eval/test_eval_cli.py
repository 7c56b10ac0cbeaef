"""``guardreasoner eval`` from the command line: scoring options, errors, and a live run of the tiny guard."""

from __future__ import annotations

import json

import pytest
from guardreasoner.testing import guard_output

RECORDS = [{"label": "harmful", "predict": guard_output(label)} for label in ("harmful", "unharmful")]
# TP=1, FN=1: F1 = 2 / (2 + 0 + 1) = 66.67; precision 100, recall 50.


def test_strict_mode_prints_precision_recall_and_failures(write_predictions, cli):
    result = cli("eval", "--predictions", write_predictions("HarmBenchPrompt", RECORDS), "--mode", "strict")
    assert result.exit_code == 0, result.output
    assert "Precision" in result.output and "Parse failures" in result.output
    assert "66.67" in result.output and "100.00" in result.output and "50.00" in result.output


def test_report_option_writes_the_report(write_predictions, cli, tmp_path):
    result = cli(
        "eval", "--predictions", write_predictions("HarmBenchPrompt", RECORDS), "--report", tmp_path / "r"
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["f1.png", "report.md", "results.json"]


def test_datasets_option_restricts_scoring(write_predictions, cli, tmp_path):
    write_predictions("AegisSafetyTest", RECORDS)
    root = write_predictions("HarmBenchPrompt", RECORDS)
    result = cli(
        "eval", "--predictions", root, "--datasets", "harmbenchprompt", "--json-file", tmp_path / "f1.json"
    )
    assert result.exit_code == 0, result.output
    table = json.loads((tmp_path / "f1.json").read_text())
    assert table["prompt"]["AegisSafetyTest"] is None
    assert table["prompt"]["weighted_average"] == pytest.approx(200 / 3)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ((), 2, "Give --predictions DIR"),
        (("--predictions", ".", "--model", "m"), 2, "not both"),
        (("--predictions", "{tmp}/none"), 2, "does not exist"),
        (("--predictions", "{tmp}"), 2, "holds no predictions for any known dataset"),
        (("--predictions", "{tmp}", "--datasets", "Nope"), 2, "Unknown dataset(s): Nope"),
    ],
)
def test_bad_input_gets_an_error_that_says_what_to_do(cli, tmp_path, args, code, message):
    result = cli("eval", *(arg.format(tmp=tmp_path) for arg in args))
    assert result.exit_code == code
    assert message in " ".join(result.output.split())


def test_a_live_run_without_benchmark_files_says_how_to_get_them(cli, tmp_path, monkeypatch):
    from guardreasoner.testing import ScriptedEngine

    monkeypatch.setattr(
        "guardreasoner.guard.create_engine", lambda *args, **kwargs: ScriptedEngine(lambda p: "")
    )
    result = cli("eval", "--model", "any", "--benchmark-dir", tmp_path, "--output", tmp_path / "out")
    assert result.exit_code == 2
    assert "guardreasoner data download" in result.output


@pytest.mark.slow
def test_live_evaluation_of_the_tiny_guard_end_to_end(cli, trained_guard_dir, shared_data, tmp_path):
    """The trained tiny guard over 3 records of 2 datasets with the hf engine: predictions, tables, resume.

    The tiny guard only knows its few training conversations, so most outputs on benchmark records do not
    parse; strict mode counts each once as wrong, so both datasets still get an F1.
    """
    args = [
        "eval",
        "--model",
        trained_guard_dir,
        "--engine",
        "hf",
        "--benchmark-dir",
        shared_data / "benchmark",
        "--datasets",
        "SimpleSafetyTests,XSTestResponseRefusal",
        "--limit",
        "3",
        "--max-new-tokens",
        "48",
        "--mode",
        "strict",
        "--output",
        tmp_path / "predictions",
        "--json-file",
        tmp_path / "f1.json",
        "--report",
        tmp_path / "report",
    ]
    result = cli(*args)
    assert result.exit_code == 0, result.output
    for name in ("SimpleSafetyTests", "XSTestResponseRefusal"):
        records = [
            json.loads(line)
            for line in (tmp_path / "predictions" / name / "generated_predictions.jsonl").open()
        ]
        assert len(records) == 3
        assert all(
            r["prompt"].startswith("You are a classifier") and 0 < r["num_generated_tokens"] <= 48
            for r in records
        )
        assert all(r["finish_reason"] in ("stop", "length") and r["seconds"] > 0 for r in records)
    table = json.loads((tmp_path / "f1.json").read_text())
    assert 0.0 <= table["prompt"]["SimpleSafetyTests"] <= 100.0
    assert 0.0 <= table["refusal"]["XSTestResponseRefusal"] <= 100.0
    assert table["prompt"]["HarmBenchPrompt"] is None
    assert "Generated tokens" in result.output and "Wall time" in result.output
    details = json.loads((tmp_path / "report" / "results.json").read_text())
    assert details["generation"]["SimpleSafetyTests"]["new"] == 3
    failures = details["tasks"]["prompt"]["datasets"]["SimpleSafetyTests"]["parse_failures"]
    assert details["tasks"]["prompt"]["datasets"]["SimpleSafetyTests"]["scored_predictions"] == 3 >= failures

    again = cli(*args)  # everything is there already: nothing is generated, the same figures come back
    assert again.exit_code == 0, again.output
    assert (
        json.loads((tmp_path / "report" / "results.json").read_text())["generation"]["SimpleSafetyTests"][
            "new"
        ]
        == 0
    )
    assert json.loads((tmp_path / "f1.json").read_text()) == table
