"""``prepare`` and the record checks: GuardReasonerTrain records in, a training set out, clear errors otherwise."""

from __future__ import annotations

import json

import pytest
from _training_helpers import case_records
from guardreasoner.prompt import INSTRUCTION, build_input
from guardreasoner_training.errors import TrainingDataError
from guardreasoner_training.prepare import load_training_records, prepare
from guardreasoner_training.records import GoldLabels, read_rows, response_of


def write_json(path, rows):
    path.write_text(json.dumps(rows))
    return path


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def rows():
    return [record.as_row() | {"id": None} for record in case_records()]


def test_prepare_json_and_jsonl_into_one_training_set(tmp_path):
    first = write_json(tmp_path / "a.json", rows()[:3])
    second = write_jsonl(tmp_path / "b.jsonl", rows()[3:] + rows()[:1])  # one duplicate of a.json
    report = prepare([str(first), str(second)], tmp_path / "out", eval_fraction=0.2)
    assert (report.train, report.eval, report.duplicates) == (4, 1, 1)
    assert report.sources == {str(first): 3, str(second): 2}
    assert report.labels["request"] == {"harmful": 3, "unharmful": 2}
    assert report.labels["completion"] == {"None": 2, "refusal": 1, "compliance": 2}
    train = load_training_records(tmp_path / "out" / "train.jsonl")
    assert len(train) == 4 and {r.source for r in train} <= {"a", "b"}
    assert json.loads((tmp_path / "out" / "prepare.json").read_text())["train"] == 4


def test_max_samples_keeps_the_first_of_each_input(tmp_path):
    source = write_json(tmp_path / "a.json", rows())
    assert prepare([str(source)], tmp_path / "out", max_samples=2).train == 2


def test_missing_fields_name_the_records(tmp_path):
    bad = rows()
    del bad[1]["output"]
    bad[3]["input"] = ""
    with pytest.raises(
        TrainingDataError, match=r"2 of 5 records .*record 1 has no output; record 3 has no input"
    ):
        prepare([str(write_json(tmp_path / "a.json", bad))], tmp_path / "out")


def test_unreadable_labels_stop_unless_dropped(tmp_path):
    bad = rows()
    bad[2]["output"] = "# Task 1\nI think it is fine."
    source = write_json(tmp_path / "a.json", bad)
    with pytest.raises(TrainingDataError, match=r"labels of 1 of 5 records cannot be read \(records 2\)"):
        prepare([str(source)], tmp_path / "out")
    report = prepare([str(source)], tmp_path / "out", drop_unreadable=True)
    assert (report.train, report.dropped_unreadable) == (4, 1)


def test_bad_files_and_ids_say_what_to_pass(tmp_path):
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"instruction": "x"}\nnot json\n')
    with pytest.raises(TrainingDataError, match="line 2, is not JSON"):
        read_rows(broken)
    with pytest.raises(TrainingDataError, match="neither an existing file nor a hub dataset id"):
        read_rows(str(tmp_path / "missing.jsonl"))
    with pytest.raises(TrainingDataError, match="not a JSON object"):
        read_rows(write_json(tmp_path / "list.json", [[1, 2]]))


def test_jsonl_lines_may_hold_unicode_line_separators(tmp_path):
    row = rows()[0] | {"input": build_input("a\u2028b")}
    assert read_rows(write_jsonl(tmp_path / "u.jsonl", [row]))[0]["input"] == build_input("a\u2028b")


def test_labels_and_responses_are_read_from_the_records():
    assert response_of(build_input("hi")) is None
    assert response_of(build_input("hi", "there\n\nfriend")) == "there\n\nfriend"
    record = case_records()[4]
    assert record.labels() == GoldLabels("harmful", "compliance", "harmful")
    assert record.prompt == INSTRUCTION + "\n" + record.input
    with pytest.raises(TrainingDataError, match="not a request label"):
        GoldLabels("maybe")
