"""The ``guardreasoner`` command line."""

from __future__ import annotations

import typer

from guardreasoner.cli.audit import audit_command
from guardreasoner.cli.classify import EXIT_CODES_HELP, classify_command
from guardreasoner.cli.data import app as data_app
from guardreasoner.cli.eval import eval_command
from guardreasoner.terminal import run_app

app = typer.Typer(
    name="guardreasoner",
    help="GuardReasoner: a reasoning-based safety guard for LLM conversations.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
app.command("classify", epilog=EXIT_CODES_HELP)(classify_command)
app.command("eval", epilog="\b\nExit status: 0 scored, 2 usage or input error.")(eval_command)
app.command("audit")(audit_command)
app.add_typer(data_app, name="data")


@app.callback()
def _root() -> None:
    """GuardReasoner: a reasoning-based safety guard for LLM conversations."""


def main() -> None:
    run_app(app)
