"""The ``guardreasoner`` command line."""

from __future__ import annotations

import typer

from guardreasoner.cli.audit import audit_command
from guardreasoner.cli.classify import classify_command
from guardreasoner.cli.data import app as data_app
from guardreasoner.cli.eval import eval_command

app = typer.Typer(
    name="guardreasoner",
    help="GuardReasoner: a reasoning-based safety guard for LLM conversations.",
    no_args_is_help=True,
    add_completion=False,
)
app.command("classify")(classify_command)
app.command("eval")(eval_command)
app.command("audit")(audit_command)
app.add_typer(data_app, name="data")


@app.callback()
def _root() -> None:
    """GuardReasoner: a reasoning-based safety guard for LLM conversations."""


def main() -> None:
    app()
