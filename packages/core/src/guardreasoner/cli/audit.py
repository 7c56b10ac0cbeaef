"""``guardreasoner audit``: classify a file, folder or glob of logged conversations into a folder of verdicts.

Self-contained error handling: plain ``error: ...`` lines on stderr (never rich markup, since messages carry
user paths and data), exit status 2 for bad usage or input, 1 when the run itself fails.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from guardreasoner.cli.options import (
    BaseUrlOption,
    DeviceOption,
    MaxNewTokensOption,
    ModelOption,
    ReasoningBandOption,
    ReasoningOption,
    check_reasoning,
)
from guardreasoner.errors import GuardReasonerError, MissingExtraError
from guardreasoner.model_source import DEFAULT_MODEL

USAGE_ERROR = 2
RUN_ERROR = 1


def audit_command(
    input: Annotated[
        str, typer.Argument(help="JSONL or Parquet: a file, a folder of them, or a glob (any fsspec URL).")
    ],
    output: Annotated[
        str, typer.Option("--output", "-o", help="The folder of verdict parts; rerunning into it resumes.")
    ],
    model: ModelOption = DEFAULT_MODEL,
    engine: Annotated[str, typer.Option(help="auto, hf, vllm or openai.")] = "auto",
    runner: Annotated[
        str, typer.Option(help="local (in this process) or ray (a Ray Data actor pool).")
    ] = "local",
    id_column: Annotated[
        str, typer.Option(help="The input's unique id column, carried to the output.")
    ] = "id",
    prompt_column: Annotated[
        str, typer.Option(help="The input's column with the user's request.")
    ] = "prompt",
    response_column: Annotated[
        str, typer.Option(help="The input's column with the AI's response.")
    ] = "response",
    no_response: Annotated[
        bool, typer.Option("--no-response", help="The input holds requests alone (no response column).")
    ] = False,
    input_format: Annotated[
        str | None, typer.Option(help="jsonl or parquet (default: from the file names).")
    ] = None,
    format: Annotated[str, typer.Option("--format", help="Output parts: parquet or jsonl.")] = "parquet",
    batch_size: Annotated[int, typer.Option(help="Conversations per guard call (and per output part).")] = 64,
    policy: Annotated[str, typer.Option(help="fail_closed, fail_open or raise.")] = "fail_closed",
    max_new_tokens: MaxNewTokensOption = 2048,
    reasoning: ReasoningOption = "always",
    reasoning_band: ReasoningBandOption = None,
    num_actors: Annotated[int, typer.Option(help="With --runner ray: guards in the actor pool.")] = 1,
    num_gpus_per_actor: Annotated[
        float | None,
        typer.Option(
            help="With --runner ray: GPUs per actor (default: tensor_parallel_size for vllm, else 0)."
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            envvar="RAY_ADDRESS", help="With --runner ray: the cluster to join (default: a local Ray)."
        ),
    ] = None,
    base_url: BaseUrlOption = None,
    device: DeviceOption = None,
    tensor_parallel_size: Annotated[
        int | None, typer.Option(help="For --engine vllm: GPUs per model (and per Ray actor).")
    ] = None,
    json_summary: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Audit logged conversations: one verdict row per record, rejects with their reason, a summary."""
    _check_choice("--runner", runner, ("local", "ray"))
    _check_choice("--format", format, ("parquet", "jsonl"))
    if input_format is not None:
        _check_choice("--input-format", input_format, ("parquet", "jsonl"))
    mode, band = check_reasoning(reasoning, reasoning_band)
    engine_options: dict[str, Any] = {
        name: value
        for name, value in (
            ("base_url", base_url),
            ("device", device),
            ("tensor_parallel_size", tensor_parallel_size),
        )
        if value is not None
    }
    from guardreasoner.audit import audit
    from guardreasoner.audit.errors import AuditInputError
    from guardreasoner.terminal import progress_bar

    bar = progress_bar()
    task = None

    def on_progress(done: int, total: int) -> None:
        """Draws the bar from the first written batch on, so errors before it print alone."""
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task("auditing", total=total)
        bar.update(task, completed=done)

    try:
        summary = audit(
            input,
            output,
            model=model,
            engine=engine,
            runner=runner,
            id_column=id_column,
            prompt_column=prompt_column,
            response_column=None if no_response else response_column,
            input_format=input_format,
            output_format=format,
            batch_size=batch_size,
            policy=policy,
            max_new_tokens=max_new_tokens,
            reasoning=mode,
            reasoning_band=band,
            num_actors=num_actors,
            num_gpus_per_actor=num_gpus_per_actor,
            ray_address=ray_address,
            on_progress=on_progress if runner == "local" else None,
            **engine_options,
        )
    except (AuditInputError, MissingExtraError, ValueError, FileNotFoundError) as exc:
        _fail(str(exc), USAGE_ERROR)
    except GuardReasonerError as exc:
        _fail(str(exc), RUN_ERROR)
    finally:
        if task is not None:
            bar.stop()
    if json_summary:
        typer.echo(summary.model_dump_json(indent=2))
    else:
        for line in summary.lines():
            typer.echo(line)
        typer.echo(
            f"rejects: {os.path.join(output, '_rejects.jsonl')}" if summary.rejected else "rejects: none"
        )


def _check_choice(flag: str, value: str, allowed: tuple[str, ...]) -> None:
    """Exits with a usage error naming ``flag``'s choices when ``value`` is not one of them."""
    if value not in allowed:
        _fail(f"{flag} must be {' or '.join(allowed)}, not {value!r}.", USAGE_ERROR)


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)
