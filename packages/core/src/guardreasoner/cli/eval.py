"""``guardreasoner eval``: the paper's three tables, from prediction files or from a live run of a guard."""

from __future__ import annotations

import json
import logging
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from guardreasoner.cli.options import ReasoningBandOption, check_reasoning
from guardreasoner.engines import ENGINE_KINDS
from guardreasoner.errors import EvaluationError, GuardReasonerError
from guardreasoner.eval.answer_first import ReasoningComparison, compare_reasoning
from guardreasoner.eval.benchmarks import select_datasets
from guardreasoner.eval.download import default_data_dir
from guardreasoner.eval.report import (
    comparison_table,
    comparison_title,
    run_table,
    task_table,
    write_report,
)
from guardreasoner.eval.runner import DatasetRun, run_benchmarks
from guardreasoner.eval.scoring import EvalResult, Mode, evaluate_predictions
from guardreasoner.reasoning import DEFAULT_REASONING_BAND, ReasoningMode
from guardreasoner.terminal import WIDE, ExitCode, check_positive, fail, progress_bar, stderr_console

REASONING_MODES = (ReasoningMode.ALWAYS, ReasoningMode.AUTO)


def eval_command(
    predictions: Annotated[
        Path | None,
        typer.Option(
            help="Score this folder of prediction files ({DIR}/{Dataset}/generated_predictions.jsonl, as released)."
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="Run this guard (hub id or local directory) over the benchmarks, then score it."),
    ] = None,
    engine: Annotated[str, typer.Option(help="With --model: auto, hf, vllm or openai.")] = "auto",
    output: Annotated[
        Path | None,
        typer.Option(
            help="With --model: where predictions are written (default ./guardreasoner-eval/<model>). "
            "Rerunning with the same folder resumes."
        ),
    ] = None,
    benchmark_dir: Annotated[
        Path | None,
        typer.Option(
            help="The benchmark files (default: the 'guardreasoner data download' cache). Live runs read their "
            "inputs there; scoring reads WildGuardTest's labels there."
        ),
    ] = None,
    mode: Annotated[
        Mode,
        typer.Option(
            help="reference: exactly the published script's F1. strict: guardreasoner's parser, every failure "
            "counted once, with precision, recall and parse failures."
        ),
    ] = Mode.REFERENCE,
    datasets: Annotated[
        str | None, typer.Option(help="Comma-separated dataset names (default: all).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="With --model: only the first N records of each dataset.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="With --model: conversations per guard call.")] = 32,
    max_new_tokens: Annotated[int, typer.Option(help="With --model: the generation limit.")] = 2048,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print {task: {dataset: F1, 'weighted_average': F1}} as JSON on stdout (tables go to stderr).",
        ),
    ] = False,
    json_path: Annotated[
        Path | None, typer.Option("--json-file", help="Write the same JSON to this file.")
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Write report.md, f1.png and results.json into this folder.")
    ] = None,
    calibrate_: Annotated[
        bool,
        typer.Option(
            "--calibrate",
            help="Pick per-task thresholds on these labelled predictions' scores (the most recall at "
            "--target-fpr) and write the thresholds file that 'classify --thresholds' reads.",
        ),
    ] = False,
    target_fpr: Annotated[
        float, typer.Option(help="With --calibrate: the false-positive rate to stay within (0.01 = 1%).")
    ] = 0.01,
    thresholds_out: Annotated[
        Path | None,
        typer.Option(help="With --calibrate: the thresholds file (default <predictions>/thresholds.json)."),
    ] = None,
    reasoning: Annotated[
        str,
        typer.Option(
            help="always: score the reasoned outputs. auto: also score the answers forced right after the "
            "prompt, and auto (forced answer, reasoned where a score is inside --reasoning-band) and never "
            "against always, per benchmark; with --model, each batch is also run with its answers forced."
        ),
    ] = ReasoningMode.ALWAYS.value,
    reasoning_band: ReasoningBandOption = None,
    calibrate_band_: Annotated[
        bool,
        typer.Option(
            "--calibrate-band",
            help="With --reasoning auto: pick the band with the lowest escalation rate whose labels agree with "
            "always's on at least --target-agreement of them, and write the band file that 'classify "
            "--reasoning-band' reads.",
        ),
    ] = False,
    target_agreement: Annotated[
        float, typer.Option(help="With --calibrate-band: the share of always's labels to keep (0.99 = 99%).")
    ] = 0.99,
    band_out: Annotated[
        Path | None,
        typer.Option(
            help="With --calibrate-band: the band file (default <predictions>/reasoning_band.json)."
        ),
    ] = None,
) -> None:
    """Score a guard on the paper's benchmarks: prompt harmfulness, response harmfulness, refusal detection."""
    if predictions is None and model is None:
        fail(
            "Give --predictions DIR (score existing outputs) or --model MODEL (run a guard over the benchmarks)."
        )
    if predictions is not None and model is not None:
        fail("--predictions and --model exclude each other: score existing outputs or run a guard, not both.")
    check_positive(limit=limit, batch_size=batch_size, max_new_tokens=max_new_tokens)
    if not calibrate_ and thresholds_out is not None:
        fail("--thresholds-out goes with --calibrate.")
    if not 0.0 <= target_fpr < 1.0:
        fail(f"--target-fpr must be a fraction in [0, 1) (0.01 is 1%), not {target_fpr:g}.")
    if engine not in ENGINE_KINDS:
        fail(f"--engine '{engine}' is not an engine; choose one of {', '.join(ENGINE_KINDS)}.")
    reasoning_mode, band = check_reasoning(reasoning, reasoning_band, modes=REASONING_MODES)
    auto = reasoning_mode is ReasoningMode.AUTO
    if calibrate_band_ and not auto:
        fail(
            "--calibrate-band needs --reasoning auto: the band is chosen from the forced answers' scores and "
            "always's labels of the same conversations."
        )
    if not calibrate_band_ and band_out is not None:
        fail("--band-out goes with --calibrate-band.")
    if not 0.0 < target_agreement <= 1.0:
        fail(f"--target-agreement must be a fraction in (0, 1] (0.99 is 99%), not {target_agreement:g}.")
    # Tables and progress go to stderr when stdout carries the JSON.
    console = Console(stderr=json_output, highlight=False)
    if not console.is_terminal:  # a pipe or a file: rows are not wrapped to a terminal's width
        console.width = max(console.width, WIDE)
    data_dir = benchmark_dir or default_data_dir()
    names = [name.strip() for name in datasets.split(",") if name.strip()] if datasets else None
    try:
        selected = select_datasets(names)
        runs = None
        if model is not None:
            predictions = output or Path("guardreasoner-eval") / re.sub(r"[^\w.-]+", "_", model.strip("/"))
            runs = _run(
                model,
                engine,
                predictions,
                data_dir,
                selected,
                limit,
                batch_size,
                max_new_tokens,
                console,
                first_pass=auto,
            )
            names = [dataset.name for dataset in selected]
            if all(run.reason for run in runs):
                raise EvaluationError(
                    f"No benchmark file was found in {data_dir}. Fetch them with 'guardreasoner data download' "
                    "or pass --benchmark-dir."
                )
        result = evaluate_predictions(predictions, mode=mode, benchmark_dir=data_dir, datasets=names)
        _print(result, console)
        comparison = None
        table = result.to_json()
        if auto:
            comparison = compare_reasoning(
                predictions, band or DEFAULT_REASONING_BAND, mode=mode, benchmark_dir=data_dir, datasets=names
            )
            for task in comparison.scored_tasks:
                console.print(_table(comparison_title(comparison, task), *comparison_table(comparison, task)))
            table["reasoning"] = comparison.to_json()
        if json_output:
            typer.echo(json.dumps(table, indent=2))
        if json_path is not None:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
            console.print(Text(f"Wrote {json_path}"))
        if report is not None:
            for path in write_report(result, report, runs, comparison):
                console.print(Text(f"Wrote {path}"))
        if calibrate_:
            if result.mode is not Mode.STRICT:  # the scores and gold labels come from strict scoring
                result = evaluate_predictions(
                    predictions, mode=Mode.STRICT, benchmark_dir=data_dir, datasets=names
                )
            path = thresholds_out or predictions / "thresholds.json"
            _calibrate(result, target_fpr, path, console)
        if calibrate_band_:
            path = band_out or predictions / "reasoning_band.json"
            _calibrate_band(comparison, target_agreement, path, predictions, model, console)
    except GuardReasonerError as exc:
        fail(str(exc), ExitCode.USAGE)


def _calibrate_band(
    comparison: ReasoningComparison | None,
    target: float,
    path: Path,
    predictions: Path,
    model: str | None,
    console: Console,
) -> None:
    """The band from every record scored (each conversation once), written to ``path`` with where it came from."""
    from guardreasoner.eval.band import calibrate_band

    assert comparison is not None, "--calibrate-band goes with --reasoning auto"
    models = [model] if model is not None else comparison.models
    provenance = {
        "data": {"predictions": str(predictions), "datasets": comparison.datasets},
        "model": models[0] if len(models) == 1 else models or None,
    }
    chosen = calibrate_band(comparison.first_passes, target, path=path, provenance=provenance)
    console.print(
        Text(
            f"reasoning band {chosen.band}: agreement with always {chosen.agreement:.2%} of {chosen.labels} "
            f"labels (target {target:.2%}), escalation {chosen.escalation_rate:.2%} of "
            f"{chosen.conversations} conversations"
        )
    )
    console.print(Text(f"Wrote {path}"))


def _calibrate(result: EvalResult, target_fpr: float, path: Path, console: Console) -> None:
    """Thresholds from every scored prediction with a gold label, per task; written to ``path``."""
    from guardreasoner.eval.calibrate import calibrate

    scores, labels = {}, {}
    for task, task_score in result.tasks.items():
        used = [d for d in task_score.scores if d.available and any(s is not None for s in d.scores)]
        if used:
            scores[task.verdict_field] = [s for d in used for s in d.scores]
            labels[task.verdict_field] = [task.positive if g else task.negative for d in used for g in d.gold]
    if not scores:
        raise EvaluationError(
            "No prediction record has scores, so there is nothing to calibrate. Predictions written by "
            "'guardreasoner eval --model' with an engine that gives scores (hf; vllm; openai with a "
            "tokenizer and a server that returns logprobs) carry them."
        )
    calibration = calibrate(scores, labels, target_fpr, path=path)
    for field, task in calibration.tasks.items():
        console.print(
            Text(
                f"{field}: threshold {task.threshold:.4f} (false-positive rate {task.fpr:.2%}, recall "
                f"{task.recall:.2%} on {task.positives + task.negatives} scored; {task.unscored} unscored)"
            )
        )
    console.print(Text(f"Wrote {path}"))


def _run(
    model: str,
    engine: str,
    output: Path,
    data_dir: Path,
    selected: list,
    limit: int | None,
    batch_size: int,
    max_new_tokens: int,
    console: Console,
    *,
    first_pass: bool,
) -> list[DatasetRun]:
    """Run the guard (and with ``first_pass``, a ``reasoning="never"`` guard on the same engine, whose
    prompts are cut as the guard's are) over the datasets."""
    from guardreasoner.guard import GuardReasoner

    console.print(
        Text(f"Running {model} ({engine}) over {len(selected)} dataset(s); predictions go to {output}")
    )
    options = {"max_new_tokens": max_new_tokens, "truncation": "head_tail"}
    with GuardReasoner(model, engine=engine, **options) as guard:
        forced = (
            GuardReasoner(model, engine=guard.engine, reasoning="never", **options) if first_pass else None
        )
        bar = progress_bar(description="{task.description:<22}", console=stderr_console())
        with bar as progress, _quiet_guard_warnings():
            bars: dict[str, int] = {}

            def advance(dataset: str, done: int, total: int) -> None:
                if dataset not in bars:
                    bars[dataset] = progress.add_task(dataset, total=total)
                progress.update(bars[dataset], completed=done)

            runs = run_benchmarks(
                guard,
                output,
                benchmark_dir=data_dir,
                datasets=selected,
                limit=limit,
                batch_size=batch_size,
                on_progress=advance,
                first_pass=forced,
            )
    console.print(_table("Generation", *run_table(runs)))
    return runs


@contextmanager
def _quiet_guard_warnings():
    """Undecided verdicts are expected on benchmarks and counted in the tables; one log line each would bury the bar."""
    logger = logging.getLogger("guardreasoner")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _print(result: EvalResult, console: Console) -> None:
    console.print(Text(f"Predictions: {result.source}   mode: {result.mode.value}"))
    for task, task_score in result.tasks.items():
        console.print(_table(task.title, *task_table(task_score, result.mode)))
    if result.ignored_folders:
        console.print(
            Text(
                f"Ignored prediction folders with unknown names: {', '.join(result.ignored_folders)}",
                "yellow",
            )
        )


def _table(title: str, headers: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for i, header in enumerate(headers):
        table.add_column(
            header, justify="left" if i == 0 or header == "Note" else "right", overflow="fold", no_wrap=i == 0
        )
    for row in rows:
        average = row[0] == "Weighted average"
        if average:
            table.add_section()
        table.add_row(*(Text(cell) for cell in row), style="bold" if average else None)
    return table
