"""The Ray runner on a local Ray (2 CPU actors) with the tiny trained guard: the same verdicts as
``classify_batch`` (which the in-process runner matches on the same records, in test_audit_local.py), resume
from a partial output of the in-process runner, rejects reported.

One Ray session for the module (its start costs tens of seconds on a loaded two-core machine)."""

from __future__ import annotations

import json
import shutil

import pytest
from _audit_records import RECORDS, records, write_jsonl
from guardreasoner import GuardReasoner
from guardreasoner.audit import OutputStore, audit, row_to_verdict

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
    assert verdicts_by_id(tmp_path / "ray") == expected
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
    assert verdicts_by_id(tmp_path / "partial") == verdicts_by_id(tmp_path / "whole")
