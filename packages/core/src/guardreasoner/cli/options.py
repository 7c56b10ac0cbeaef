"""Options that mean the same in several commands, declared once: ``name: ModelOption = DEFAULT_MODEL``."""

from __future__ import annotations

from typing import Annotated

import typer

ModelOption = Annotated[str, typer.Option(help="Hub id or local directory of the guard model.")]
MaxNewTokensOption = Annotated[int, typer.Option(help="Token limit for the reasoning and answers.")]
BaseUrlOption = Annotated[str | None, typer.Option(help="For --engine openai: the server's /v1 URL.")]
DeviceOption = Annotated[str | None, typer.Option(help="For --engine hf: cpu, cuda, cuda:1, ...")]
