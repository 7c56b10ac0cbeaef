"""The in-process runner: rejects, duplicate ids, resume after a SIGKILL, and the same verdicts as
``classify_batch`` on the tiny trained guard."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _audit_records import RECORDS, assert_same_verdicts, records, write_jsonl
from guardreasoner import GuardReasoner, Verdict
from guardreasoner.audit import AuditInputError, OutputStore, audit, row_to_verdict
from guardreasoner.testing import ScriptedEngine, guard_output


def scripted(prompt: str) -> str:
    return guard_output("harmful" if "bomb" in prompt or "poison" in prompt else "unharmful")


def read_rows(output: Path, fmt: str = "parquet") -> dict:
    table = OutputStore(str(output), fmt).read()
    return {row["id"]: row for row in table.to_pylist()}


def test_rejects_go_to_the_rejects_file_with_their_reason(tmp_path):
    rows = records(20)
    rows[3]["prompt"] = "   "
    rows[7]["response"] = ""
    rows[11]["prompt"] = None
    rows[12]["id"] = None
    summary = audit(
        write_jsonl(tmp_path / "in.jsonl", rows),
        tmp_path / "out",
        engine=ScriptedEngine(scripted),
        batch_size=4,
    )

    rejects = [json.loads(line) for line in (tmp_path / "out" / "_rejects.jsonl").read_text().splitlines()]
    reasons = {r["id"]: r["reason"] for r in rejects}
    assert set(reasons) == {"r0003", "r0007", "r0011", None}
    assert "prompt is empty" in reasons["r0003"]
    assert "response is empty" in reasons["r0007"]
    assert "must be a string" in reasons["r0011"]
    assert "id column 'id' is empty" in reasons[None]
    written = read_rows(tmp_path / "out")
    assert set(written) == {r["id"] for i, r in enumerate(rows) if i not in (3, 7, 11, 12)}
    assert (summary.input_records, summary.rejected, summary.classified) == (20, 4, 16)
    assert json.loads((tmp_path / "out" / "_summary.json").read_text())["rejected"] == 4


def test_duplicate_ids_stop_the_audit_before_anything_is_classified(tmp_path):
    rows = records(10)
    rows[8]["id"] = rows[2]["id"]
    seen: list[str] = []
    engine = ScriptedEngine(lambda prompt: seen.append(prompt) or scripted(prompt))
    with pytest.raises(AuditInputError, match=r"not unique: 1 id\(s\) repeat, e.g. 'r0002' \(2 times\)"):
        audit(write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out", engine=engine)
    assert seen == []
    assert not list((tmp_path / "out").glob("part-*"))


def test_a_missing_column_names_the_option_to_pass(tmp_path, input_jsonl):
    with pytest.raises(AuditInputError, match=r"no column 'text'.*--prompt-column"):
        audit(input_jsonl, tmp_path / "out", engine=ScriptedEngine(scripted), prompt_column="text")
    with pytest.raises(AuditInputError, match="does not exist"):
        audit(tmp_path / "nope.jsonl", tmp_path / "out", engine=ScriptedEngine(scripted))


def test_parquet_folders_globs_and_jsonl_give_the_same_output(tmp_path):
    rows = records(40)
    folder = tmp_path / "logs"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(rows[:25]), folder / "a.parquet")
    pq.write_table(pa.Table.from_pylist(rows[25:]), folder / "b.parquet")
    (folder / "_SUCCESS").write_text("")
    jsonl = write_jsonl(tmp_path / "all.jsonl", rows)
    outputs = {}
    for name, source in (("folder", folder), ("glob", f"{folder}/*.parquet"), ("jsonl", jsonl)):
        audit(source, tmp_path / name, engine=ScriptedEngine(scripted), batch_size=16)
        outputs[name] = read_rows(tmp_path / name)
    audit(jsonl, tmp_path / "as-jsonl", engine=ScriptedEngine(scripted), output_format="jsonl")
    outputs["jsonl-out"] = read_rows(tmp_path / "as-jsonl", "jsonl")
    reference = {i: row_to_verdict(r) for i, r in outputs["jsonl"].items()}
    assert len(reference) == 40
    columns = list(next(iter(outputs["folder"].values())))
    assert columns == ["id", *Verdict.model_fields]  # every verdict field, in order
    for name, rows_by_id in outputs.items():
        assert {i: row_to_verdict(r) for i, r in rows_by_id.items()} == reference, name


def test_a_run_killed_midway_resumes_to_the_same_output(tmp_path, input_jsonl):
    """A subprocess is SIGKILLed once some parts are written; the rerun writes each id exactly once and the
    verdicts match an uninterrupted run."""
    script = textwrap.dedent(
        f"""
        import time
        from guardreasoner.audit import audit
        from guardreasoner.testing import ScriptedEngine, guard_output

        def slow(prompt):
            time.sleep(0.02)
            return guard_output("harmful" if "bomb" in prompt or "poison" in prompt else "unharmful")

        audit({str(input_jsonl)!r}, {str(tmp_path / "killed")!r}, engine=ScriptedEngine(slow), batch_size=10)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 120
    while len(list((tmp_path / "killed").glob("part-*"))) < 3 and time.monotonic() < deadline:
        assert process.poll() is None, "the audit ended before it could be killed"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    parts_at_kill = len(list((tmp_path / "killed").glob("part-*")))
    assert 3 <= parts_at_kill < RECORDS // 10, parts_at_kill

    summary = audit(input_jsonl, tmp_path / "killed", engine=ScriptedEngine(scripted), batch_size=10)
    assert summary.already_done == parts_at_kill * 10
    assert summary.classified == RECORDS - parts_at_kill * 10
    table = OutputStore(str(tmp_path / "killed"), "parquet").read()
    ids = table.column("id").to_pylist()
    assert len(ids) == len(set(ids)) == RECORDS

    audit(input_jsonl, tmp_path / "whole", engine=ScriptedEngine(scripted), batch_size=10)
    assert read_rows(tmp_path / "killed") == read_rows(tmp_path / "whole")


def test_a_part_cut_short_is_moved_aside_and_its_ids_classified_again(tmp_path, input_jsonl, caplog):
    audit(input_jsonl, tmp_path / "out", engine=ScriptedEngine(scripted), batch_size=100)
    part = sorted((tmp_path / "out").glob("part-*"))[1]
    part.write_bytes(part.read_bytes()[:200])  # what a writer killed mid-file leaves
    summary = audit(input_jsonl, tmp_path / "out", engine=ScriptedEngine(scripted), batch_size=100)
    assert (summary.already_done, summary.classified, summary.output_records) == (200, 100, RECORDS)
    assert (tmp_path / "out" / f"_unreadable-{part.name}").exists()
    assert "does not read back" in caplog.text


def test_an_output_folder_of_another_audit_is_refused(tmp_path, input_jsonl):
    audit(input_jsonl, tmp_path / "out", engine=ScriptedEngine(scripted))
    other = write_jsonl(tmp_path / "other.jsonl", [{"id": "x1", "prompt": "hello", "response": None}])
    with pytest.raises(AuditInputError, match="belongs to another audit"):
        audit(other, tmp_path / "out", engine=ScriptedEngine(scripted))


@pytest.mark.slow
def test_the_tiny_guard_gives_classify_batch_verdicts(tmp_path, input_jsonl, trained_guard_dir):
    summary = audit(input_jsonl, tmp_path / "out", model=trained_guard_dir, engine="hf", batch_size=50)
    written = read_rows(tmp_path / "out")
    guard = GuardReasoner(trained_guard_dir, engine="hf", truncation="head_tail")
    rows = records()
    expected = guard.classify_batch([(r["prompt"], r["response"]) for r in rows])
    assert_same_verdicts(
        {r["id"]: row_to_verdict(written[r["id"]]) for r in rows},
        {r["id"]: v for r, v in zip(rows, expected)},
    )
    assert summary.parse_status == {"ok": RECORDS}
    assert summary.labels["prompt_harmfulness"] == {"unharmful": 120, "harmful": 180}
