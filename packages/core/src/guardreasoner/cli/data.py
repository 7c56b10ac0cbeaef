"""``guardreasoner data``: the paper's benchmark files, fetched and verified."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from guardreasoner.eval.download import (
    BASE_URL_ENV,
    DATA_DIR_ENV,
    DownloadError,
    FileStatus,
    default_data_dir,
    download_benchmarks,
)
from guardreasoner.terminal import fail

app = typer.Typer(help="The paper's benchmark files.", no_args_is_help=True)
_console = Console()


@app.callback()
def _group() -> None:
    """The paper's benchmark files."""


@app.command("download")
def download(
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help=f"Where to keep the files (default: ${DATA_DIR_ENV}, else the user cache directory).",
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            help=f"Fetch {{base}}/{{file}} instead of the paper repository (also ${BASE_URL_ENV}).",
        ),
    ] = None,
) -> None:
    """Fetch the benchmark files, verify their checksums, and keep files already present and verified.

    Exit status: 0 all files present and verified, 1 a file could not be fetched or verified."""
    target = directory or default_data_dir()
    table = Table(title=f"Benchmark files in {escape(str(target))}", title_justify="left")
    for header in ("File", "Status", "SHA-256"):
        table.add_column(header, overflow="fold")
    warnings = []

    def report(status: FileStatus) -> None:
        digest = status.sha256[:16] + "…" if status.sha256 else ""
        style = "red" if status.action == "failed" else None
        table.add_row(Text(status.name), status.action, digest, style=style)
        if status.warning:
            warnings.append(status.warning)

    try:
        with _console.status("Fetching benchmark files…"):
            download_benchmarks(target, url=base_url, on_file=report)
    except DownloadError as exc:
        if table.row_count:
            _console.print(table)
        fail(str(exc), 1)
    _console.print(table)
    for warning in warnings:
        _console.print(Text("Warning: ", "yellow") + Text(warning))
