"""Helpers for the evaluation tests: hand-made prediction folders in the released layout."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner


@pytest.fixture
def write_predictions(tmp_path: Path) -> Callable[[str, list[dict]], Path]:
    """Write ``records`` to ``{tmp}/predictions/{dataset}/generated_predictions.jsonl``; returns the folder."""
    root = tmp_path / "predictions"

    def write(dataset: str, records: list[dict]) -> Path:
        folder = root / dataset
        folder.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps({"prompt": f"{dataset} {i}", **record}) for i, record in enumerate(records)]
        (folder / "generated_predictions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return root

    return write


@pytest.fixture
def cli() -> Callable[..., object]:
    """Invoke the eval and data commands as the main CLI registers them."""
    from guardreasoner.cli.data import app as data_app
    from guardreasoner.cli.eval import eval_command

    app = typer.Typer()
    app.command("eval")(eval_command)
    app.add_typer(data_app, name="data")
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(arg) for arg in args], env={"COLUMNS": "200"})

    return invoke
