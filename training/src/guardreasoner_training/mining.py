"""Stage 5: hard-sample mining, from the ``sample`` stage's k outputs per training prompt.

A prompt is hard when some of its samples are right and some wrong. For it, as the reference pipeline does:

- the task judged is the first of request harmfulness, response harmfulness, refusal whose gold label is known
  (and, for the response tasks, whose conversation has a response) on which the samples disagree in correctness;
- chosen is the longest right output, rejected the longest wrong one (the first of equal length);
- the raw weight is ``#wrong - #right`` among the samples whose answers could be read; weights are then min-max
  scaled to [0.8, 1.2] over the mined set (all 1.0 when they are all equal).

Samples whose answers cannot be read (no request label: cut off, no Answers block) are left out of the counts, as
the reference does (``unreadable="skip"``); ``unreadable="wrong"`` counts them as wrong and lets them be rejected.

The paper also mines from "diversity" models trained on subsets of the data; :func:`merge_pairs` merges several
mined sets, keeping the first pair for each ``input``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guardreasoner.tasks import PAPER_ORDER

from guardreasoner_training.errors import TrainingDataError
from guardreasoner_training.records import GoldLabels, TrainRecord, labels_from_output, read_rows, write_jsonl

WEIGHT_RANGE = (0.8, 1.2)


@dataclass(frozen=True)
class SampleSet(TrainRecord):
    """One training record (its prompt and gold output) and the k outputs sampled for it."""

    samples: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, row: dict[str, Any], where: str) -> SampleSet:
        missing = [name for name in ("instruction", "input", "output", "samples") if name not in row]
        if missing:
            raise TrainingDataError(
                f"{where}: a row lacks {', '.join(missing)}; mine reads the JSONL the `sample` stage writes "
                "(id, instruction, input, output, samples)."
            )
        if not isinstance(row["samples"], list) or not all(isinstance(s, str) for s in row["samples"]):
            raise TrainingDataError(f"{where}: 'samples' of row {row.get('id')} must be a list of strings.")
        return cls(
            row["instruction"],
            row["input"],
            row["output"],
            str(row.get("id", "")),
            samples=tuple(row["samples"]),
        )


@dataclass
class MiningReport:
    """What mining saw: how many prompts, how many hard, why the others were left."""

    prompts: int = 0
    pairs: int = 0
    by_task: dict[str, int] = field(default_factory=dict)
    unreadable_gold: int = 0
    unreadable_samples: int = 0
    all_right: int = 0
    all_wrong: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def sample_labels(text: str, has_response: bool) -> GoldLabels | None:
    """The labels a sample states, or None when it states no request label (no readable answers at all).

    A sample that answers the request but says ``None`` (or nothing) for a response task keeps None there, which
    then counts as wrong for that task, as in the reference (its regexes read ``None`` as a label).
    """
    return labels_from_output(text, has_response=has_response, partial=True)


def mine_pairs(
    sample_sets: Iterable[SampleSet],
    *,
    unreadable: str = "skip",
    report: MiningReport | None = None,
) -> list[dict[str, Any]]:
    """Hard pairs with scaled weights (see the module docstring)."""
    if unreadable not in ("skip", "wrong"):
        raise ValueError(f"unreadable must be 'skip' or 'wrong', got '{unreadable}'.")
    report = report if report is not None else MiningReport()
    pairs = []
    for item in sample_sets:
        report.prompts += 1
        has_response = item.has_response
        gold = item.labels()
        if gold is None:
            report.unreadable_gold += 1
            continue
        read = [(text, sample_labels(text, has_response)) for text in item.samples]
        report.unreadable_samples += sum(1 for _, labels in read if labels is None)
        pair = _hard_pair(item, gold, read, has_response, unreadable, report)
        if pair is not None:
            pairs.append(pair)
            report.by_task[pair["task"]] = report.by_task.get(pair["task"], 0) + 1
    report.pairs = len(pairs)
    return scale_weights(pairs)


def _hard_pair(
    item: SampleSet,
    gold: GoldLabels,
    read: list[tuple[str, GoldLabels | None]],
    has_response: bool,
    unreadable: str,
    report: MiningReport,
) -> dict[str, Any] | None:
    seen_all_right = seen_all_wrong = False
    for task in PAPER_ORDER:  # the reference's order: request harmfulness, response harmfulness, refusal
        expected = gold.get(task)
        if expected is None or (task.needs_response and not has_response):
            continue
        right, wrong = [], []
        for text, labels in read:
            if labels is None:
                if unreadable == "wrong":
                    wrong.append(text)
                continue
            (right if labels.get(task) == expected else wrong).append(text)
        if right and wrong:
            return {
                "id": item.id,
                "instruction": item.instruction,
                "input": item.input,
                "chosen": _longest(right),
                "rejected": _longest(wrong),
                "task": task.answer_key.lower(),
                "num_right": len(right),
                "num_wrong": len(wrong),
                "raw_weight": len(wrong) - len(right),
            }
        seen_all_right |= bool(right) and not wrong
        seen_all_wrong |= bool(wrong) and not right
    if seen_all_wrong:
        report.all_wrong += 1
    elif seen_all_right:
        report.all_right += 1
    return None


def _longest(texts: Sequence[str]) -> str:
    best = texts[0]
    for text in texts[1:]:
        if len(text) > len(best):
            best = text
    return best


def scale_weights(
    pairs: list[dict[str, Any]], low: float = WEIGHT_RANGE[0], high: float = WEIGHT_RANGE[1]
) -> list[dict[str, Any]]:
    """Min-max scale ``raw_weight`` to ``sample_weight`` in [low, high]; all at the middle when they are equal."""
    if not pairs:
        return pairs
    raw = [pair["raw_weight"] for pair in pairs]
    smallest, largest = min(raw), max(raw)
    for pair, value in zip(pairs, raw, strict=True):
        if largest == smallest:
            pair["sample_weight"] = (low + high) / 2
        else:
            pair["sample_weight"] = low + (value - smallest) * (high - low) / (largest - smallest)
    return pairs


def merge_pairs(pair_sets: Iterable[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Concatenate mined sets (each already scaled), keeping the first pair for each ``input``."""
    seen: set[str] = set()
    merged = []
    for pairs in pair_sets:
        for pair in pairs:
            if pair["input"] in seen:
                continue
            seen.add(pair["input"])
            merged.append(pair)
    return merged


def mine_files(
    samples: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    unreadable: str = "skip",
    on_file: Callable[[Path, MiningReport], None] | None = None,
) -> list[dict[str, Any]]:
    """The ``mine`` stage over files: mine each sample file on its own, merge the sets (:func:`merge_pairs`),
    write the pairs to ``output`` and a summary to ``{output}.report.json``; returns the merged pairs.

    ``on_file(path, report)`` is called after each file is mined.
    """
    sets, reports = [], []
    for path in map(Path, samples):
        report = MiningReport()
        rows = read_rows(path)
        sets.append(
            mine_pairs(
                (SampleSet.from_row(row, str(path)) for row in rows), unreadable=unreadable, report=report
            )
        )
        reports.append(report)
        if on_file is not None:
            on_file(path, report)
    merged = merge_pairs(sets)
    output = Path(output)
    write_jsonl(output, merged)
    summary = {
        "files": [str(p) for p in samples],
        "reports": [r.as_dict() for r in reports],
        "pairs": len(merged),
    }
    output.with_name(output.name + ".report.json").write_text(
        json.dumps(summary, indent=2) + "\n", encoding="utf-8"
    )
    return merged
