"""Answer-first (``reasoning="auto"``) scored against ``always`` on one run's prediction records.

``guardreasoner eval --model M --reasoning auto`` writes each record's forced answer beside its reasoned
output (``first_pass``: ``eval/runner.py``). From those, at any band and without the model:

- ``never``: the forced answers alone;
- ``auto``: a record's forced answer where it decides at the band (:func:`guardreasoner.policy.first_pass_doubt`,
  as the guard escalates), its reasoned output elsewhere: the labels ``auto`` gives with greedy decoding.
  Its cost per verdict is the forced answer's plus, where it escalated, the reasoned output's;
- agreement: the share of ``auto``'s (``never``'s) labels equal to ``always``'s on the same records, on the
  benchmark's task; escalation: the share of records ``auto`` reasons on.

F1 comes from the same scorers as ``always``'s (``evaluate_predictions`` with a view of the records).
:func:`first_pass` holds one conversation's forced answer against its reasoned verdict, the input of
:func:`guardreasoner.eval.band.calibrate_band` (for eval's records or your own verdicts).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from guardreasoner.errors import EvaluationError
from guardreasoner.eval.band import EMPTY_BAND, FirstPass
from guardreasoner.eval.benchmarks import Dataset
from guardreasoner.eval.files import predictions_path
from guardreasoner.eval.metrics import record_score
from guardreasoner.eval.scoring import EvalResult, Mode, evaluate_predictions
from guardreasoner.parsing import parse_output
from guardreasoner.policy import first_pass_doubt
from guardreasoner.reasoning import ReasoningBand
from guardreasoner.scores import TASKS
from guardreasoner.tasks import Task
from guardreasoner.verdict import Verdict

MODES = ("always", "auto", "never")
"""Reasoned in full, the forced answer first, the forced answer alone."""
FIRST_PASS_KEY = "first_pass"


def first_pass(never: Verdict, always: Verdict, *, has_response: bool) -> FirstPass:
    """One conversation's forced answer (a ``reasoning="never"`` verdict) against its ``always`` verdict: its
    scores where it can decide at some band, and how many of its labels are ``always``'s."""
    fields = _fields(has_response)
    doubt = first_pass_doubt(never.model_copy(update={"reasoning_band": EMPTY_BAND}))
    scores = (
        None if doubt is not None else tuple(never.first_pass_scores[f] for f in fields if getattr(never, f))
    )
    agreeing = sum(getattr(never, f) == getattr(always, f) for f in fields)
    return FirstPass(scores, len(fields), agreeing)


@dataclass
class Tally:
    """Sums over records, so that datasets pool into their task's average."""

    records: int = 0
    escalated: int = 0
    agreeing: Counter = field(default_factory=Counter)
    """Per mode (``auto``, ``never``): records whose label on the task is ``always``'s."""
    tokens: Counter = field(default_factory=Counter)
    counted: Counter = field(default_factory=Counter)
    """Per mode: records with a token count (the engine reports one)."""
    seconds: Counter = field(default_factory=Counter)

    def add(self, other: Tally) -> None:
        self.records += other.records
        self.escalated += other.escalated
        for name in ("agreeing", "tokens", "counted", "seconds"):
            getattr(self, name).update(getattr(other, name))

    def figures(self, mode: str, f1: float | None) -> dict:
        """One mode's figures, rates in percent (as F1 is)."""
        figures = {
            "f1": f1,
            "tokens_per_verdict": self.tokens[mode] / self.counted[mode] if self.counted[mode] else None,
            "seconds_per_verdict": self.seconds[mode] / self.records if self.records else None,
        }
        if mode != "always":
            figures["agreement"] = 100.0 * self.agreeing[mode] / self.records if self.records else None
        return figures

    @property
    def escalation_rate(self) -> float | None:
        return 100.0 * self.escalated / self.records if self.records else None


@dataclass
class BenchmarkComparison:
    dataset: str
    task: Task
    f1: dict[str, float | None]
    """Per mode."""
    tally: Tally | None
    """None when the benchmark is unavailable (``reason``)."""
    reason: str | None = None

    def to_dict(self) -> dict | None:
        if self.tally is None:
            return None
        return {
            "records": self.tally.records,
            "escalation_rate": self.tally.escalation_rate,
            **{mode: self.tally.figures(mode, self.f1[mode]) for mode in MODES},
        }


@dataclass
class ReasoningComparison:
    """``auto`` and ``never`` against ``always``, per benchmark, at one band."""

    band: ReasoningBand
    results: dict[str, EvalResult]
    """Per mode: the F1 tables as ``evaluate_predictions`` gives them."""
    tasks: dict[Task, list[BenchmarkComparison]]
    first_passes: list[FirstPass]
    """Every record of the selected datasets, once (WildGuardTest's three tasks are one conversation)."""
    datasets: dict[str, int]
    """The datasets those records come from, and how many each."""
    models: list[str]
    """The models the records' first passes name."""

    @property
    def scored_tasks(self) -> list[Task]:
        """The tasks with a benchmark scored."""
        return [task for task, rows in self.tasks.items() if any(row.tally for row in rows)]

    def average(self, task: Task) -> BenchmarkComparison:
        """The task's weighted average: F1 as each mode's table weighs it, the rest pooled over records."""
        pooled = Tally()
        for comparison in self.tasks[task]:
            if comparison.tally is not None:
                pooled.add(comparison.tally)
        f1 = {mode: result.tasks[task].weighted_average for mode, result in self.results.items()}
        return BenchmarkComparison("Weighted average", task, f1, pooled if pooled.records else None)

    def to_json(self) -> dict:
        """``{"band": {...}, task slug: {dataset: {records, escalation_rate, always, auto, never} or null,
        "weighted_average": ...}}``."""
        table: dict = {"band": self.band.model_dump()}
        for task, comparisons in self.tasks.items():
            row = {comparison.dataset: comparison.to_dict() for comparison in comparisons}
            row["weighted_average"] = self.average(task).to_dict()
            table[task.slug] = row
        return table


def compare_reasoning(
    predictions_dir: str | os.PathLike[str],
    band: ReasoningBand,
    *,
    mode: Mode | str = Mode.REFERENCE,
    benchmark_dir: str | os.PathLike[str] | None = None,
    datasets: list[str] | None = None,
) -> ReasoningComparison:
    """Score ``always``, ``auto`` at ``band`` and ``never`` on a folder written by ``eval --reasoning auto``."""
    passes = _Passes(Path(predictions_dir), band)
    options = {"mode": mode, "benchmark_dir": benchmark_dir, "datasets": datasets}
    results = {
        "always": evaluate_predictions(predictions_dir, **options),
        "auto": evaluate_predictions(predictions_dir, view=passes.auto, **options),
        "never": evaluate_predictions(predictions_dir, view=passes.never, **options),
    }
    tasks: dict[Task, list[BenchmarkComparison]] = {}
    for task, task_score in results["always"].tasks.items():
        rows = []
        for index, score in enumerate(task_score.scores):
            f1 = {mode: result.tasks[task].scores[index].f1 for mode, result in results.items()}
            tally = passes.tally(score.dataset, task) if score.available else None
            rows.append(BenchmarkComparison(score.dataset, task, f1, tally, score.reason))
        tasks[task] = rows
    counts = {name: len(pairs) for name, (_, pairs) in passes.datasets.items()}
    return ReasoningComparison(band, results, tasks, passes.first_passes(), counts, sorted(passes.models))


@dataclass(frozen=True)
class _Record:
    """One prediction record's two passes."""

    always: Verdict
    never: Verdict
    escalated: bool
    """At the comparison's band."""
    tokens: dict[str, int | None]
    seconds: dict[str, float]


class _Passes:
    """A folder's records read once per dataset, each with its forced answer's verdict at the band."""

    def __init__(self, root: Path, band: ReasoningBand):
        self.root, self.band = root, band
        self.datasets: dict[str, tuple[Dataset, list[_Record]]] = {}
        self.models: set[str] = set()

    def records(self, dataset: Dataset, records: list[dict]) -> list[_Record]:
        if dataset.name not in self.datasets:
            path = predictions_path(self.root, dataset)
            passes = [self._record(record, dataset, path, i) for i, record in enumerate(records)]
            self.datasets[dataset.name] = (dataset, passes)
        return self.datasets[dataset.name][1]

    def never(self, dataset: Dataset, records: list[dict]) -> list[dict]:
        """The records with their forced answer in place of their reasoned output."""
        self.records(dataset, records)
        return [_forced(record) for record in records]

    def auto(self, dataset: Dataset, records: list[dict]) -> list[dict]:
        """The records as ``auto`` answers them: the reasoned output where it escalated, else the forced."""
        passes = self.records(dataset, records)
        return [record if pair.escalated else _forced(record) for record, pair in zip(records, passes)]

    def tally(self, name: str, task: Task) -> Tally:
        tally = Tally()
        field_ = task.verdict_field
        for pair in self.datasets[name][1]:
            tally.records += 1
            tally.escalated += pair.escalated
            auto = pair.always if pair.escalated else pair.never
            tally.agreeing["auto"] += getattr(auto, field_) == getattr(pair.always, field_)
            tally.agreeing["never"] += getattr(pair.never, field_) == getattr(pair.always, field_)
            for mode in MODES:
                tally.seconds[mode] += pair.seconds[mode]
                if pair.tokens[mode] is not None:
                    tally.tokens[mode] += pair.tokens[mode]
                    tally.counted[mode] += 1
        return tally

    def first_passes(self) -> list[FirstPass]:
        """Every record scored, once, for :func:`~guardreasoner.eval.band.calibrate_band`."""
        return [
            first_pass(pair.never, pair.always, has_response=dataset.has_response)
            for dataset, pairs in self.datasets.values()
            for pair in pairs
        ]

    def _record(self, record: dict, dataset: Dataset, path: Path, index: int) -> _Record:
        forced = record.get(FIRST_PASS_KEY)
        if not isinstance(forced, dict):
            raise EvaluationError(
                f"{path} record {index + 1} has no first pass (forced answer): score it without --reasoning auto, "
                "or write predictions that have one with 'guardreasoner eval --model MODEL --reasoning auto' "
                "into a new --output folder."
            )
        if isinstance(forced.get("model"), str):
            self.models.add(forced["model"])
        always = _verdict(record, dataset)
        never = _verdict(forced, dataset).model_copy(
            update={"first_pass_scores": _scores(forced), "reasoning_band": self.band}
        )
        escalated = first_pass_doubt(never) is not None
        tokens = {"always": _tokens(record), "never": _tokens(forced)}
        tokens["auto"] = (
            None
            if tokens["never"] is None or (escalated and tokens["always"] is None)
            else tokens["never"] + (tokens["always"] if escalated else 0)
        )
        seconds = {"always": _seconds(record), "never": _seconds(forced)}
        seconds["auto"] = seconds["never"] + (seconds["always"] if escalated else 0.0)
        return _Record(always, never, escalated, tokens, seconds)


def _verdict(output: dict, dataset: Dataset) -> Verdict:
    """The verdict of one output of a record (the reasoned one, or its ``first_pass``)."""
    predict = output.get("predict")
    verdict = parse_output(
        predict if isinstance(predict, str) else "",
        has_response=dataset.has_response,
        finish_reason=output.get("finish_reason"),
    )
    return verdict.model_copy(update={"error": output["error"]}) if output.get("error") else verdict


def _forced(record: dict) -> dict:
    forced = {key: value for key, value in record[FIRST_PASS_KEY].items() if key != "model"}
    return {"prompt": record.get("prompt"), "label": record.get("label"), **forced}


def _scores(output: dict) -> dict[str, float]:
    return {f: score for f in TASKS if (score := record_score(output, f)) is not None}


def _tokens(output: dict) -> int | None:
    count = output.get("num_generated_tokens")
    return count if isinstance(count, int) and not isinstance(count, bool) else None


def _seconds(output: dict) -> float:
    seconds = output.get("seconds")
    return float(seconds) if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) else 0.0


def _fields(has_response: bool) -> list[str]:
    return [task.verdict_field for task in Task if has_response or not task.needs_response]
