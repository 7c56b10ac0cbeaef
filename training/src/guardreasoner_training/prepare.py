"""Stage 2: GuardReasonerTrain-format records from local JSON/JSONL files or a hub dataset, into a training set.

Every record is checked: it needs ``instruction``, ``input`` and ``output``, and the output's final ``Answers:``
block must give at least the request label (the labels are what ``mine`` later compares samples with). Records
whose labels cannot be read stop the stage with a list of them, unless ``drop_unreadable`` is set.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guardreasoner_training.errors import TrainingDataError
from guardreasoner_training.records import TrainRecord, read_rows, to_train_records, write_jsonl


@dataclass
class PrepareReport:
    sources: dict[str, int] = field(default_factory=dict)
    train: int = 0
    eval: int = 0
    duplicates: int = 0
    dropped_unreadable: int = 0
    labels: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def prepare(
    sources: list[str],
    out_dir: str | Path,
    *,
    split: str | None = None,
    max_samples: int | None = None,
    drop_unreadable: bool = False,
    eval_fraction: float = 0.0,
    seed: int = 0,
) -> PrepareReport:
    """Write ``train.jsonl`` (and ``eval.jsonl`` when ``eval_fraction`` > 0) and ``prepare.json`` to ``out_dir``."""
    if not sources:
        raise TrainingDataError("Give at least one input: a .json/.jsonl file or a hub dataset id.")
    if not 0.0 <= eval_fraction < 1.0:
        raise TrainingDataError(f"--eval-fraction must be in [0, 1), got {eval_fraction}.")
    report = PrepareReport()
    records: list[TrainRecord] = []
    seen: set[str] = set()
    label_counts: dict[str, Counter[str]] = {
        "request": Counter(),
        "completion": Counter(),
        "response": Counter(),
    }
    for source in sources:
        rows = read_rows(source, split=split)
        if not rows:
            raise TrainingDataError(f"{source} holds no records.")
        if max_samples is not None:
            rows = rows[:max_samples]  # LLaMA-Factory's max_samples: the first N of each source
        checked = to_train_records(rows, where=str(source))
        unreadable = []
        kept = 0
        for index, record in enumerate(checked):
            labels = record.labels()
            if labels is None:
                unreadable.append(index)
                continue
            if record.id in seen:
                report.duplicates += 1
                continue
            seen.add(record.id)
            if record.source is None:
                record = TrainRecord(
                    record.instruction, record.input, record.output, record.id, Path(str(source)).stem
                )
            records.append(record)
            kept += 1
            for name, value in labels.as_dict().items():
                label_counts[name][value or "None"] += 1
        if unreadable and not drop_unreadable:
            shown = ", ".join(str(i) for i in unreadable[:10])
            raise TrainingDataError(
                f"{source}: the labels of {len(unreadable)} of {len(checked)} records cannot be read (records "
                f"{shown}{', ...' if len(unreadable) > 10 else ''}): their 'output' must end with an answer block "
                "such as 'Answers: \\nRequest: harmful\\nCompletion: None\\nResponse: None'. Fix them, or pass "
                "--drop-unreadable to leave them out."
            )
        report.dropped_unreadable += len(unreadable)
        report.sources[str(source)] = kept
    if not records:
        raise TrainingDataError("No usable records are left; see the counts above.")
    evaluation: list[TrainRecord] = []
    if eval_fraction:
        order = list(range(len(records)))
        random.Random(seed).shuffle(order)
        cut = max(1, round(len(records) * eval_fraction))
        held = set(order[:cut])
        evaluation = [r for i, r in enumerate(records) if i in held]
        records = [r for i, r in enumerate(records) if i not in held]
    out_dir = Path(out_dir)
    write_jsonl(out_dir / "train.jsonl", (r.as_row() for r in records))
    if evaluation:
        write_jsonl(out_dir / "eval.jsonl", (r.as_row() for r in evaluation))
    report.train, report.eval = len(records), len(evaluation)
    report.labels = {name: dict(counter) for name, counter in label_counts.items()}
    (out_dir / "prepare.json").write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
    return report


def load_training_records(path: str | Path) -> list[TrainRecord]:
    """The records of a prepared training set (or any GuardReasonerTrain-format file)."""
    return to_train_records(read_rows(path), where=str(path))
