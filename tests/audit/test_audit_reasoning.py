"""Audits with ``reasoning="auto"``: the rows carry how each verdict was reached and read back to the verdict
``classify_batch`` gives; the summary counts the verdicts reasoned in full."""

from __future__ import annotations

import pytest
from _audit_records import write_jsonl
from guardreasoner import GuardReasoner
from guardreasoner.audit import OutputStore, audit, row_to_verdict
from guardreasoner.cli import app
from guardreasoner.reasoning import ReasoningBand, ReasoningBandError
from typer.testing import CliRunner

from tests.adapters import answer_first_engine

# The scripted guard (tests/conftest.py): forced answers sure, but wrong at 0.6 on requests saying "unsure".
RECORDS = [
    {"id": "a", "prompt": "Capital of Peru?", "response": "Lima."},
    {"id": "b", "prompt": "unsure: the best bomb design?", "response": None},
    {"id": "c", "prompt": "Best bomb design?", "response": "sorry, no."},
    {"id": "d", "prompt": "unsure: capital of Peru?", "response": "Lima."},
]


def test_rows_carry_the_reasoning_fields_and_read_back_to_classify_batch_verdicts(tmp_path):
    source = write_jsonl(tmp_path / "logs.jsonl", RECORDS)
    band = ReasoningBand(low=0.1, high=0.9)
    summary = audit(
        source,
        tmp_path / "out",
        engine=answer_first_engine(),
        reasoning="auto",
        reasoning_band=band,
        batch_size=3,
    )
    rows = {row["id"]: row for row in OutputStore(str(tmp_path / "out"), "parquet").read().to_pylist()}
    assert {key: rows[key]["reasoned"] for key in rows} == {"a": False, "b": True, "c": False, "d": True}
    assert (
        rows["b"]["reasoning_mode"] == "auto"
        and "inside the reasoning band" in rows["b"]["escalation_reason"]
    )
    guard = GuardReasoner(engine=answer_first_engine(), reasoning="auto", reasoning_band=band)
    expected = guard.classify_batch([(r["prompt"], r["response"]) for r in RECORDS])
    for record, verdict in zip(RECORDS, expected):
        assert row_to_verdict(rows[record["id"]]) == verdict
    assert expected[3].first_pass_scores["prompt_harmfulness"] == pytest.approx(0.6)  # kept when escalated
    assert summary.reasoned == {"false": 2, "true": 2}
    assert "reasoned: false 2, true 2" in summary.lines()


def test_bad_reasoning_options_stop_the_audit_before_the_input_is_read(tmp_path):
    with pytest.raises(ValueError, match="reasoning must be one of"):
        audit(
            tmp_path / "missing.jsonl", tmp_path / "out", engine=answer_first_engine(), reasoning="sometimes"
        )
    with pytest.raises(ReasoningBandError, match="Cannot read the reasoning band file"):
        audit(
            tmp_path / "missing.jsonl", tmp_path / "out", reasoning="auto", reasoning_band=tmp_path / "b.json"
        )
    assert not (tmp_path / "out").exists()


def test_the_command_passes_the_options_and_prints_the_reasoned_count(tmp_path, monkeypatch):
    monkeypatch.setattr("guardreasoner.guard.create_engine", lambda *a, **k: answer_first_engine())
    source = str(write_jsonl(tmp_path / "logs.jsonl", RECORDS))
    args = ["audit", source, "--output", str(tmp_path / "out"), "--engine", "hf", "--format", "jsonl"]
    result = CliRunner().invoke(app, [*args, "--reasoning", "auto", "--reasoning-band", "0.1,0.9"])
    assert result.exit_code == 0, result.output
    assert "reasoned: false 2, true 2" in result.stdout
    bad = CliRunner().invoke(app, [*args, "--reasoning", "auto", "--reasoning-band", "0.9,0.1"])
    assert bad.exit_code == 2 and bad.stderr.startswith(
        "error: --reasoning-band '0.9,0.1' is not a reasoning band"
    )
