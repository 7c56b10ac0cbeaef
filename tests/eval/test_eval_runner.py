"""The live runner with a scripted engine: released layout, resuming, and refusing foreign files."""

from __future__ import annotations

import json

import pytest
from guardreasoner.eval import EvaluationError, evaluate_predictions
from guardreasoner.eval.benchmarks import select_datasets
from guardreasoner.eval.runner import run_benchmarks
from guardreasoner.guard import GuardReasoner
from guardreasoner.tasks import Task
from guardreasoner.testing import ScriptedEngine, guard_output

DATASETS = select_datasets(["SimpleSafetyTests", "XSTestResponseRefusal"])


def answer(prompt: str) -> str:
    """Harmful for every request; for conversations with a response: a refusal, unharmful."""
    if prompt.endswith("AI assistant:\nNone\n\n"):
        return guard_output("harmful")
    return guard_output("unharmful", "refusal", "unharmful")


@pytest.fixture
def benchmark_dir(shared_data):
    return shared_data / "benchmark"


@pytest.fixture
def generate(benchmark_dir, tmp_path):
    """``run_benchmarks`` of ``guard`` from the shared benchmark files into ``tmp_path``."""

    def generate(guard, datasets=DATASETS, **options):
        return run_benchmarks(guard, tmp_path, benchmark_dir=benchmark_dir, datasets=datasets, **options)

    return generate


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_writes_the_released_layout_and_scores_it(generate, benchmark_dir, tmp_path):
    engine = ScriptedEngine(answer)
    runs = generate(GuardReasoner(engine=engine), limit=3, batch_size=2)
    assert [(run.dataset, run.records, run.new) for run in runs] == [
        ("SimpleSafetyTests", 3, 3),
        ("XSTestResponseRefusal", 3, 3),
    ]
    source = json.loads((benchmark_dir / "0_7_xstest_response_refusal.json").read_text())[:3]
    written = lines(tmp_path / "XSTestResponseRefusal" / "generated_predictions.jsonl")
    assert [r["prompt"] for r in written] == [r["instruction"] + "\n" + r["input"] for r in source]
    assert [r["label"] for r in written] == [r["output"] for r in source]
    assert all(r["predict"] == answer(r["prompt"]) and r["finish_reason"] == "stop" for r in written)
    assert runs[1].generated_tokens == sum(r["num_generated_tokens"] for r in written)
    # The engine saw exactly the benchmark's raw prompts, two per call.
    assert [len(call) for call in engine.calls] == [2, 1, 2, 1]
    assert engine.calls[2] + engine.calls[3] == [r["prompt"] for r in written]

    table = evaluate_predictions(tmp_path).to_json()
    gold = [r["output"] for r in source]
    refusals = gold.count("refusal")  # every prediction is "refusal": TP = refusals, FP = the rest
    assert table["refusal"]["XSTestResponseRefusal"] == pytest.approx(
        100 * 2 * refusals / (2 * refusals + 3 - refusals)
    )
    assert table["prompt"]["SimpleSafetyTests"] == pytest.approx(100.0)  # its first three prompts are harmful
    assert table["prompt"]["ToxicChat"] is None


class Interrupted(Exception):
    pass


def test_an_interrupted_run_continues_where_it_stopped(generate, benchmark_dir, tmp_path):
    calls = []

    def flaky(prompt: str) -> str:
        calls.append(prompt)
        if len(calls) == 3:
            raise Interrupted
        return answer(prompt)

    with pytest.raises(Interrupted):
        generate(GuardReasoner(engine=ScriptedEngine(flaky)), DATASETS[:1], limit=5, batch_size=2)
    path = tmp_path / "SimpleSafetyTests" / "generated_predictions.jsonl"
    assert len(lines(path)) == 2  # the first batch was written before the second failed

    engine = ScriptedEngine(answer)
    (resumed,) = generate(GuardReasoner(engine=engine), DATASETS[:1], limit=5, batch_size=2)
    assert (resumed.records, resumed.new) == (5, 3)
    assert sum(len(call) for call in engine.calls) == 3
    source = json.loads((benchmark_dir / "0_0_SimpleSafetyTests.json").read_text())[:5]
    assert [r["prompt"] for r in lines(path)] == [r["instruction"] + "\n" + r["input"] for r in source]


def test_a_partly_written_last_line_is_replaced(generate, tmp_path):
    guard = GuardReasoner(engine=ScriptedEngine(answer))
    generate(guard, DATASETS[:1], limit=1)
    path = tmp_path / "SimpleSafetyTests" / "generated_predictions.jsonl"
    with path.open("a") as handle:
        handle.write('{"prompt": "You are a classif')
    (resumed,) = generate(guard, DATASETS[:1], limit=2)
    assert (resumed.records, resumed.new) == (2, 1)
    assert len(lines(path)) == 2


def test_a_file_written_for_other_inputs_is_refused(generate, tmp_path):
    path = tmp_path / "SimpleSafetyTests" / "generated_predictions.jsonl"
    path.parent.mkdir()
    path.write_text(json.dumps({"prompt": "something else", "label": "harmful", "predict": ""}) + "\n")
    guard = GuardReasoner(engine=ScriptedEngine(answer))
    with pytest.raises(EvaluationError, match="different input.*delete the file"):
        generate(guard, DATASETS[:1], limit=2)


def test_a_missing_benchmark_file_is_reported_not_run(tmp_path):
    engine = ScriptedEngine(answer)
    (run,) = run_benchmarks(
        GuardReasoner(engine=engine), tmp_path / "out", benchmark_dir=tmp_path, datasets=DATASETS[:1]
    )
    assert "0_0_SimpleSafetyTests.json not found" in run.reason and "data download" in run.reason
    assert engine.calls == [] and not (tmp_path / "out").exists()


def test_unknown_dataset_names_are_an_error_listing_the_known_ones():
    with pytest.raises(
        EvaluationError, match="Unknown dataset.*XSTestResponseHarmful.*Known:.*XSTestReponseHarmful"
    ):
        select_datasets(["XSTestResponseHarmful"])


def test_outputs_cut_at_the_token_limit_are_counted_and_score_as_failures(generate, tmp_path):
    guard = GuardReasoner(engine=ScriptedEngine(lambda prompt: "# Task 1\n", finish_reason="length"))
    (truncated,) = generate(guard, DATASETS[:1], limit=2)
    assert truncated.truncated == 2
    score = evaluate_predictions(tmp_path, mode="strict").tasks[Task.PROMPT_HARMFULNESS].scores[4]
    assert (score.dataset, score.parse_failures, score.f1) == ("SimpleSafetyTests", 2, 0.0)


def test_records_carry_the_verdicts_scores_and_strict_mode_reports_them(generate, benchmark_dir, tmp_path):
    generate(GuardReasoner(engine=ScriptedEngine(answer, label_probability=0.9)), limit=3, batch_size=2)
    written = lines(tmp_path / "XSTestResponseRefusal" / "generated_predictions.jsonl")
    scores = {"prompt_harmfulness": 0.1, "response_refusal": 0.9, "response_harmfulness": 0.1}
    assert all(r["scores"] == pytest.approx(scores) for r in written)
    requests = lines(tmp_path / "SimpleSafetyTests" / "generated_predictions.jsonl")
    assert all(r["scores"] == pytest.approx({"prompt_harmfulness": 0.9}) for r in requests)
    refusal = evaluate_predictions(tmp_path, mode="strict", benchmark_dir=benchmark_dir)
    metrics = next(s for s in refusal.tasks[Task.RESPONSE_REFUSAL].scores if s.available).score_metrics
    assert (metrics.scored, metrics.unscored) == (3, 0)
