"""The ``guardreasoner`` command line."""

from __future__ import annotations

import typer

from guardreasoner.cli.classify import classify_command

app = typer.Typer(
    name="guardreasoner",
    help="GuardReasoner: a reasoning-based safety guard for LLM conversations.",
    no_args_is_help=True,
    add_completion=False,
)
app.command("classify")(classify_command)


@app.callback()
def _root() -> None:
    """GuardReasoner: a reasoning-based safety guard for LLM conversations."""


def main() -> None:
    app()
