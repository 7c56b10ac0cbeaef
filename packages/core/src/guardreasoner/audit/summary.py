"""What an audit found and how fast: counts by label and status over the whole output, and this run's pace."""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel, ConfigDict

LABEL_COLUMNS = ("prompt_harmfulness", "response_refusal", "response_harmfulness", "is_harmful")
COUNTED_COLUMNS = (*LABEL_COLUMNS, "parse_status", "decided_by", "reasoned")
"""What the summary reads of the output: never the reasoning or raw outputs, the bulk of its bytes."""


class AuditSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    output: str
    runner: str
    input_records: int
    rejected: int
    already_done: int
    """Records a previous run had written (skipped by this one)."""
    classified: int
    """Records this run classified."""
    output_records: int
    labels: dict[str, dict[str, int]]
    """Per label column, counts of each value (``null`` where the task does not apply)."""
    parse_status: dict[str, int]
    decided_by: dict[str, int]
    reasoned: dict[str, int] = {}
    """Counts of ``true`` (the model wrote its reasoning) and ``false`` (an answer-first verdict decided by
    the forced answer, ``reasoning="auto"`` or ``"never"``)."""
    seconds: float
    """Wall time of this run's classification, loading the model included."""

    @property
    def verdicts_per_second(self) -> float:
        return self.classified / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        """The summary as plain lines for a terminal."""
        out = [
            f"{self.output_records} verdicts in {self.output} ({self.classified} this run, "
            f"{self.already_done} from before; {self.rejected} rejected of {self.input_records} records)",
            f"{self.runner} runner: {self.seconds:.1f} s, {self.verdicts_per_second:.2f} verdicts/s",
        ]
        for column, counts in self.labels.items():
            out.append(f"{column}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        out.append("parse_status: " + ", ".join(f"{k} {v}" for k, v in self.parse_status.items()))
        out.append("decided_by: " + ", ".join(f"{k} {v}" for k, v in self.decided_by.items()))
        out.append("reasoned: " + ", ".join(f"{k} {v}" for k, v in self.reasoned.items()))
        return out


def count_values(table, column: str) -> dict[str, int]:
    if table is None or column not in table.column_names:
        return {}
    counts = Counter("null" if v is None else str(v).lower() for v in table.column(column).to_pylist())
    return dict(counts.most_common())


def summarize(table, **run: object) -> AuditSummary:
    """Count the output ``table`` (a ``pyarrow.Table`` of every part) and attach the run's figures."""
    return AuditSummary(
        output_records=0 if table is None else table.num_rows,
        labels={column: count_values(table, column) for column in LABEL_COLUMNS},
        parse_status=count_values(table, "parse_status"),
        decided_by=count_values(table, "decided_by"),
        reasoned=count_values(table, "reasoned"),
        **run,
    )
