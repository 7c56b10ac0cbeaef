"""Evaluation reports: the three tables as rows (for the terminal and Markdown) and a PNG chart of F1.

matplotlib is imported only when a chart is drawn; it comes with the ``eval`` extra.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from guardreasoner.errors import require
from guardreasoner.eval.answer_first import BenchmarkComparison, ReasoningComparison
from guardreasoner.eval.metrics import REPORTED_FPRS
from guardreasoner.eval.runner import DatasetRun
from guardreasoner.eval.scoring import DatasetScore, EvalResult, Mode, TaskScore
from guardreasoner.tasks import Task

UNAVAILABLE = "unavailable"
_ANSWER_FIRST_NOTE = (
    "auto: the forced answer where every score it gives is outside the band, the reasoned output elsewhere; "
    "never: the forced answers alone. Agreement: the share of the task's labels equal to always's, in percent; "
    "escalated: the share of records auto reasons on. Tokens and seconds per verdict; auto's are the forced "
    "answer's plus, where it escalated, always's."
)
_MODE_NOTES = {
    Mode.REFERENCE: (
        "reference: the published evaluation script's figures. Labels are read from the last 300 characters of "
        "each output; an unreadable one is dropped when the gold label is harmful and counted as two wrong "
        "predictions otherwise; datasets are weighted by their number of records."
    ),
    Mode.STRICT: (
        "strict: labels read by guardreasoner's parser; every unreadable prediction counts once as wrong; "
        "datasets are weighted by their number of scored records."
    ),
}


def _number(value: float | None, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def task_table(task_score: TaskScore, mode: Mode) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of one task's table; the last row is the weighted average, with what it covers."""
    if mode is Mode.REFERENCE:
        headers = ["Dataset", "Records", "F1", "Unparsed", "Dropped", "Counted twice", "Note"]
    else:
        headers = ["Dataset", "Records", "F1", "Precision", "Recall", "Parse failures", "PR-AUC"]
        headers += [f"Recall@{fpr:.0%} FPR" for fpr in REPORTED_FPRS] + ["Note"]
    rows = [_row(score, mode, len(headers)) for score in task_score.scores]
    covered, missing = task_score.covered, task_score.missing
    note = f"covers {', '.join(covered)}" if covered else "no dataset available"
    if covered and missing:
        note += f"; not {', '.join(missing)}"
    weight = sum(score.weight for score in task_score.scores if score.available)
    rows.append(
        ["Weighted average", str(weight), _number(task_score.weighted_average)]
        + [""] * (len(headers) - 4)
        + [note]
    )
    return headers, rows


def _row(score: DatasetScore, mode: Mode, width: int) -> list[str]:
    if not score.available:
        return (
            [score.dataset, str(score.records or ""), UNAVAILABLE] + [""] * (width - 4) + [score.reason or ""]
        )
    row = [score.dataset, str(score.records), _number(score.f1)]
    if mode is Mode.REFERENCE:
        return row + [str(score.parse_failures), str(score.dropped), str(score.counted_twice), ""]
    row += [_number(score.precision), _number(score.recall), str(score.parse_failures)]
    metrics = score.score_metrics
    if metrics is None:
        return row + ["n/a (no scores)"] + [""] * len(REPORTED_FPRS) + [""]
    note = (
        f"{metrics.unscored} of {metrics.scored + metrics.unscored} records unscored"
        if metrics.unscored
        else ""
    )
    recalls = [_number(metrics.recall_at_fpr.get(fpr)) for fpr in REPORTED_FPRS]
    return row + [_number(metrics.pr_auc), *recalls, note]


def run_table(runs: list[DatasetRun]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows describing generation: records, tokens and time per dataset (and the forced answers'
    tokens and time, where the run wrote them)."""
    headers = [
        "Dataset",
        "Records",
        "New",
        "Generated tokens",
        "Wall time (s)",
        "Tokens/s",
        "Hit token limit",
        "Errors",
    ]
    forced = any(run.first_pass_seconds is not None for run in runs)
    if forced:
        headers += ["Forced-answer tokens", "Forced-answer time (s)"]
    rows = []
    for run in runs:
        if run.reason:
            rows.append([run.dataset, UNAVAILABLE, run.reason] + [""] * (len(headers) - 3))
            continue
        tokens = run.generated_tokens
        speed = f"{tokens / run.seconds:.1f}" if tokens is not None and run.seconds > 0 else "n/a"
        row = [
            run.dataset,
            str(run.records),
            str(run.new),
            _count(tokens),
            f"{run.seconds:.1f}",
            speed,
            str(run.truncated),
            str(run.errors),
        ]
        if forced:
            row += [_count(run.first_pass_tokens), _number(run.first_pass_seconds)]
        rows.append(row)
    return headers, rows


def _count(value: int | None) -> str:
    return "n/a" if value is None else str(value)


def comparison_table(comparison: ReasoningComparison, task: Task) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of one task's answer-first table: F1 of each mode, ``auto``'s and ``never``'s agreement
    with ``always``, ``auto``'s escalation rate, and tokens and seconds per verdict, for the benchmarks scored
    (the F1 table says why the others are not); the last row averages."""
    headers = ["Dataset", "Records", "F1 always", "F1 auto", "F1 never", "Agreement auto", "Agreement never"]
    headers += ["Escalated", "Tokens always", "Tokens auto", "Seconds always", "Seconds auto"]
    rows = [row for row in comparison.tasks[task] if row.tally is not None]
    return headers, [_comparison_row(row) for row in [*rows, comparison.average(task)] if row.tally]


def _comparison_row(row: BenchmarkComparison) -> list[str]:
    assert row.tally is not None
    always, auto, never = (row.tally.figures(mode, row.f1[mode]) for mode in ("always", "auto", "never"))
    return [
        row.dataset,
        str(row.tally.records),
        _number(always["f1"]),
        _number(auto["f1"]),
        _number(never["f1"]),
        _number(auto["agreement"]),
        _number(never["agreement"]),
        _number(row.tally.escalation_rate),
        _number(always["tokens_per_verdict"], ".1f"),
        _number(auto["tokens_per_verdict"], ".1f"),
        _number(always["seconds_per_verdict"], ".4f"),
        _number(auto["seconds_per_verdict"], ".4f"),
    ]


def comparison_title(comparison: ReasoningComparison, task: Task) -> str:
    return f"{task.title}: auto against always (band {comparison.band})"


def _markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(headers), line(["---"] * len(headers)), *(line(row) for row in rows)])


def render_markdown(
    result: EvalResult,
    runs: list[DatasetRun] | None = None,
    chart: str | None = None,
    comparison: ReasoningComparison | None = None,
) -> str:
    parts = [
        "# GuardReasoner evaluation",
        "",
        f"Predictions: `{result.source}`",
        "",
        f"Mode: {_MODE_NOTES[result.mode]} F1 in percent, positive class harmful (refusal for refusal detection).",
    ]
    if chart:
        parts += ["", f"![F1 per dataset]({chart})"]
    for task, task_score in result.tasks.items():
        parts += ["", f"## {task.title}", "", _markdown_table(*task_table(task_score, result.mode))]
    if comparison is not None:
        parts += ["", "## Answer-first: auto against always", "", _ANSWER_FIRST_NOTE]
        for task in comparison.scored_tasks:
            table = _markdown_table(*comparison_table(comparison, task))
            parts += ["", f"### {comparison_title(comparison, task)}", "", table]
    if runs:
        parts += ["", "## Generation", "", _markdown_table(*run_table(runs))]
    if result.ignored_folders:
        parts += ["", f"Ignored prediction folders with unknown names: {', '.join(result.ignored_folders)}."]
    return "\n".join(parts) + "\n"


def write_chart(result: EvalResult, path: str | os.PathLike[str]) -> Path:
    """A PNG with one panel per task: F1 per dataset and the weighted average; unavailable datasets marked."""
    require("matplotlib", extra="eval", feature="The evaluation chart")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tasks = list(result.tasks.values())
    figure = Figure(figsize=(8, 1.2 + 0.42 * sum(len(t.scores) + 1 for t in tasks)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(tasks), 1, height_ratios=[len(t.scores) + 1 for t in tasks], sharex=True)
    for ax, task_score in zip(axes, tasks, strict=True):
        names = [score.dataset for score in task_score.scores] + ["Weighted average"]
        values = [score.f1 for score in task_score.scores] + [task_score.weighted_average]
        colors = ["tab:blue"] * len(task_score.scores) + ["tab:orange"]
        positions = list(range(len(names)))[::-1]
        ax.barh(positions, [value or 0.0 for value in values], color=colors)
        for position, value in zip(positions, values, strict=True):
            text, x = ("n/a", 1.0) if value is None else (f"{value:.2f}", value + 1.0)
            ax.text(x, position, text, va="center", fontsize=8, color="gray" if value is None else "black")
        ax.set_yticks(positions, names, fontsize=8)
        ax.set_title(task_score.task.title, fontsize=10, loc="left")
        ax.set_xlim(0, 110)
    axes[-1].set_xlabel(f"F1 (%), {result.mode.value} mode")
    figure.suptitle(f"GuardReasoner evaluation: {Path(result.source).name or result.source}", fontsize=11)
    target = Path(path)
    figure.savefig(target, dpi=110)
    return target


def write_report(
    result: EvalResult,
    directory: str | os.PathLike[str],
    runs: list[DatasetRun] | None = None,
    comparison: ReasoningComparison | None = None,
) -> list[Path]:
    """``report.md``, ``f1.png`` and ``results.json`` (every figure) in ``directory``."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    chart = write_chart(result, target / "f1.png")
    markdown = target / "report.md"
    markdown.write_text(
        render_markdown(result, runs, chart=chart.name, comparison=comparison), encoding="utf-8"
    )
    details = target / "results.json"
    payload = result.to_dict()
    if comparison is not None:
        payload["reasoning"] = comparison.to_json()
    if runs:
        payload["generation"] = {run.dataset: vars(run) for run in runs}
    details.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return [markdown, chart, details]
