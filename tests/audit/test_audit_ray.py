"""The Ray runner on a local Ray (2 CPU actors) with the tiny trained guard: the same verdicts as
``classify_batch`` (which the in-process runner matches on the same records, in test_audit_local.py), resume
from a partial output of the in-process runner, rejects reported; and, with a scripted engine, every actor
classifying part of a single-file input.

One Ray session for the module (its start costs tens of seconds on a loaded two-core machine)."""

from __future__ import annotations

import json
import os
import re
import shutil
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _audit_records import RECORDS, assert_same_verdicts, records, write_jsonl
from guardreasoner import GuardReasoner
from guardreasoner.audit import OutputStore, audit, row_to_verdict
from guardreasoner.testing import ScriptedEngine, guard_output

ray = pytest.importorskip(
    "ray", reason="the Ray runner needs the 'ray' extra (pip install 'guardreasoner[ray]')"
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1")
    yield
    ray.shutdown()


def verdicts_by_id(output) -> dict:
    table = OutputStore(str(output), "parquet").read()
    ids = table.column("id").to_pylist()
    assert len(ids) == len(set(ids)), "an id was written twice"
    return {row["id"]: row_to_verdict(row) for row in table.to_pylist()}


def test_ray_gives_the_classify_batch_verdicts(tmp_path, trained_guard_dir):
    rows = records()
    rows[5]["prompt"] = ""
    source = write_jsonl(tmp_path / "logs.jsonl", rows)
    options = dict(model=trained_guard_dir, engine="hf", batch_size=50)

    on_ray = audit(source, tmp_path / "ray", runner="ray", num_actors=2, **options)

    guard = GuardReasoner(trained_guard_dir, engine="hf", truncation="head_tail")
    valid = [r for r in rows if r["prompt"]]
    expected = dict(
        zip((r["id"] for r in valid), guard.classify_batch([(r["prompt"], r["response"]) for r in valid]))
    )
    assert_same_verdicts(verdicts_by_id(tmp_path / "ray"), expected)
    assert (on_ray.runner, on_ray.classified, on_ray.rejected) == ("ray", RECORDS - 1, 1)
    rejects = [json.loads(line) for line in (tmp_path / "ray" / "_rejects.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rejects] == ["r0005"]


def test_ray_resumes_a_partial_output_without_duplicates(tmp_path, trained_guard_dir):
    """An in-process run stopped after its first parts: Ray classifies only the ids not written yet."""
    source = write_jsonl(tmp_path / "logs.jsonl", records(120))
    options = dict(model=trained_guard_dir, engine="hf", batch_size=50)
    audit(source, tmp_path / "whole", **options)
    (tmp_path / "partial").mkdir()
    for part in sorted((tmp_path / "whole").glob("part-*"))[:2]:  # 100 of the 120 done "before the kill"
        shutil.copy(part, tmp_path / "partial" / part.name)

    summary = audit(source, tmp_path / "partial", runner="ray", num_actors=2, **options)
    assert (summary.already_done, summary.classified, summary.output_records) == (100, 20, 120)
    assert_same_verdicts(verdicts_by_id(tmp_path / "partial"), verdicts_by_id(tmp_path / "whole"))


def pid_noting_engine(arrived) -> ScriptedEngine:
    """Notes its process id in every output. Each actor's first call waits (60 s at most) until another actor
    has made its first call too, so that a quick actor cannot take every block before the other starts: with
    work for both, both are seen; with one block (the bug), the test fails after the wait."""

    def script(prompt: str) -> str:
        pid = os.getpid()
        mark = arrived / str(pid)
        if not mark.exists():
            mark.touch()
            deadline = time.monotonic() + 60
            while len(list(arrived.iterdir())) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
        return guard_output("harmful", reasoning=f"Classified in process {pid}.")

    return ScriptedEngine(script)


@pytest.mark.parametrize(
    ("fmt", "batch_size"),
    [("parquet", 20), ("jsonl", 1000)],
    ids=["parquet-many-batches", "jsonl-fewer-records-than-2-batches"],
)
def test_every_actor_classifies_part_of_a_single_file(tmp_path, fmt, batch_size):
    """One small Parquet file reads as one Ray Data block, which one actor would classify alone, and Ray
    bundles blocks up to ``batch_size`` rows per task (so a JSONL file's few blocks went to one task too);
    the runner cuts the input into blocks small enough that both actors get some."""
    if fmt == "parquet":
        source = tmp_path / "logs.parquet"
        pq.write_table(pa.Table.from_pylist(records()), source)
    else:
        source = write_jsonl(tmp_path / "logs.jsonl", records())
    arrived = tmp_path / "arrived"
    arrived.mkdir()

    summary = audit(
        source,
        tmp_path / "out",
        engine=pid_noting_engine(arrived),
        runner="ray",
        num_actors=2,
        batch_size=batch_size,
    )

    table = OutputStore(str(tmp_path / "out"), "parquet").read(["id", "raw_output"])
    noted = [re.search(r"Classified in process (\d+)", raw) for raw in table["raw_output"].to_pylist()]
    pids = [int(match.group(1)) for match in noted]
    per_actor = {pid: pids.count(pid) for pid in set(pids)}
    assert len(per_actor) == 2, f"records classified per actor process: {per_actor}"
    assert os.getpid() not in per_actor
    assert (summary.classified, summary.output_records) == (RECORDS, RECORDS)
