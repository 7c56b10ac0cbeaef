"""Reports: the Markdown tables, the PNG chart, and a clear error without matplotlib."""

from __future__ import annotations

import json
import sys

import pytest
from guardreasoner.errors import MissingExtraError
from guardreasoner.eval import evaluate_predictions
from guardreasoner.eval.report import render_markdown, write_chart, write_report
from guardreasoner.testing import guard_output

RECORDS = [
    {"label": "harmful", "predict": guard_output(label)} for label in ("harmful", "harmful", "unharmful")
]
# TP=2, FN=1: F1 = 4 / (4 + 0 + 1) = 80.00


def test_report_writes_markdown_chart_and_details(write_predictions, tmp_path):
    result = evaluate_predictions(write_predictions("HarmBenchPrompt", RECORDS), mode="strict")
    paths = write_report(result, tmp_path / "report")
    assert [path.name for path in paths] == ["report.md", "f1.png", "results.json"]
    markdown = paths[0].read_text()
    assert "| HarmBenchPrompt | 3 | 80.00 | 100.00 | 66.67 | 0 | n/a (no scores) |  |" in markdown
    assert "| ToxicChat |  | unavailable |" in markdown
    assert (
        "| Weighted average | 3 | 80.00 |" in markdown and "covers HarmBenchPrompt; not ToxicChat" in markdown
    )
    assert "![F1 per dataset](f1.png)" in markdown
    assert paths[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    details = json.loads(paths[2].read_text())
    assert details["tasks"]["prompt"]["datasets"]["HarmBenchPrompt"]["recall"] == pytest.approx(200 / 3)
    assert details["tasks"]["response"]["weighted_average"] is None


def test_reference_markdown_shows_the_failure_accounting(write_predictions):
    records = [*RECORDS, {"label": "harmful", "predict": "no answer"}, {"label": "unharmful", "predict": "?"}]
    markdown = render_markdown(evaluate_predictions(write_predictions("HarmBenchPrompt", records)))
    # One failure dropped (gold harmful), one counted twice (gold unharmful): TP=2, FN=1, FP=2 -> F1 4/7.
    assert "| HarmBenchPrompt | 5 | 57.14 | 2 | 1 | 1 |  |" in markdown


def test_chart_without_matplotlib_names_the_extra(write_predictions, tmp_path, monkeypatch):
    result = evaluate_predictions(write_predictions("HarmBenchPrompt", RECORDS))
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    with pytest.raises(MissingExtraError, match=r"guardreasoner\[eval\]") as error:
        write_chart(result, tmp_path / "f1.png")
    assert (error.value.extra, error.value.package) == ("eval", "matplotlib")
