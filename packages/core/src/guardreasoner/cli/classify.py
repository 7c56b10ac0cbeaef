"""``guardreasoner classify``: one conversation from flags, or many from a JSONL file."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from guardreasoner.cli.progress import progress_bar
from guardreasoner.errors import GuardReasonerError
from guardreasoner.model_source import DEFAULT_MODEL
from guardreasoner.verdict import Verdict

console = Console(stderr=True)


def classify_command(
    prompt: Annotated[str | None, typer.Option(help="The user's request.")] = None,
    response: Annotated[
        str | None, typer.Option(help="The AI's response (omit to classify the request alone).")
    ] = None,
    input: Annotated[
        Path | None,
        typer.Option("--input", help="A JSONL file of records with 'prompt' and optional 'response'."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(help="With --input: where to write one verdict per line (default: stdout)."),
    ] = None,
    model: Annotated[str, typer.Option(help="Hub id or local directory of the guard model.")] = DEFAULT_MODEL,
    engine: Annotated[str, typer.Option(help="auto, hf, vllm or openai.")] = "auto",
    json_output: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
    policy: Annotated[
        str, typer.Option(help="fail_closed, fail_open or raise: what an unusable verdict means.")
    ] = "fail_closed",
    max_new_tokens: Annotated[int, typer.Option(help="Token limit for the reasoning and answers.")] = 2048,
    batch_size: Annotated[int, typer.Option(help="With --input: conversations per engine call.")] = 32,
    base_url: Annotated[str | None, typer.Option(help="For --engine openai: the server's /v1 URL.")] = None,
    device: Annotated[str | None, typer.Option(help="For --engine hf: cpu, cuda, cuda:1, ...")] = None,
) -> None:
    """Classify a conversation (--prompt/--response) or a JSONL file of them (--input)."""
    if (prompt is None) == (input is None):
        raise typer.BadParameter("Give either --prompt (one conversation) or --input FILE.jsonl (many).")
    if input is not None and response is not None:
        raise typer.BadParameter(
            "--response goes with --prompt; in --input files put 'response' in each record."
        )
    records = _read_jsonl(input) if input is not None else []

    from guardreasoner.guard import GuardReasoner

    options: dict[str, object] = {}
    if base_url is not None:
        options["base_url"] = base_url
    if device is not None:
        options["device"] = device
    try:
        with console.status(f"Loading {model} ({engine})"):
            guard = GuardReasoner(
                model, engine=engine, policy=policy, max_new_tokens=max_new_tokens, **options
            )
        if input is None:
            verdict = guard.classify(prompt, response)
            if json_output:
                typer.echo(verdict.model_dump_json(indent=2))
            else:
                _show(verdict)
            return
        _classify_file(guard, records, output, batch_size)
    except GuardReasonerError as exc:
        console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from exc


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        raise typer.BadParameter(f"{path} does not exist.", param_hint="--input")
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise typer.BadParameter(
                    f"line {number} of {path} is not JSON: {exc}", param_hint="--input"
                ) from exc
            if not isinstance(record, dict) or "prompt" not in record:
                raise typer.BadParameter(
                    f"line {number} of {path} needs a 'prompt' field (and optionally 'response').",
                    param_hint="--input",
                )
            records.append({"prompt": record["prompt"], "response": record.get("response")})
    return records


def _classify_file(guard, records: list[dict], output: Path | None, batch_size: int) -> None:
    sink = output.open("w", encoding="utf-8") if output else sys.stdout
    try:
        with progress_bar(console=console) as progress:
            task = progress.add_task("Classifying", total=len(records))
            for start in range(0, len(records), batch_size):
                for verdict in guard.classify_batch(records[start : start + batch_size]):
                    sink.write(verdict.model_dump_json() + "\n")
                sink.flush()
                progress.advance(task, min(batch_size, len(records) - start))
    finally:
        if output:
            sink.close()


def _show(verdict: Verdict) -> None:
    out = Console()
    decision = "[red]HARMFUL[/red]" if verdict.is_harmful else "[green]SAFE[/green]"
    if verdict.decided_by == "policy":
        decision += f" (decided by policy {verdict.policy}: {verdict.parse_status.value})"
    out.print(f"Decision: {decision}")
    out.print(f"  Request:    {verdict.prompt_harmfulness or '-'}")
    out.print(f"  Completion: {verdict.response_refusal or '-'}")
    out.print(f"  Response:   {verdict.response_harmfulness or '-'}")
    if verdict.parse_detail:
        out.print(f"[yellow]Note:[/yellow] {verdict.parse_detail}")
    for section in verdict.reasoning:
        out.print(f"\n[bold]Task {section.task.value}[/bold]")
        for number, step in enumerate(section.steps, 1):
            out.print(f"  {number}. {step}")
        if section.conclusion:
            out.print(f"  => {section.conclusion}")
