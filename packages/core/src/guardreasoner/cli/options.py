"""Options that mean the same in several commands, declared once: ``name: ModelOption = DEFAULT_MODEL``.

Options whose value needs reading (``--reasoning-band`` takes a pair or a file) are checked here too, before
any model loads, with the command line's one ``error:`` line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from guardreasoner.reasoning import ReasoningBand, ReasoningBandError, ReasoningMode, load_reasoning_band
from guardreasoner.terminal import fail

ModelOption = Annotated[str, typer.Option(help="Hub id or local directory of the guard model.")]
MaxNewTokensOption = Annotated[int, typer.Option(help="Token limit for the reasoning and answers.")]
BaseUrlOption = Annotated[str | None, typer.Option(help="For --engine openai: the server's /v1 URL.")]
DeviceOption = Annotated[str | None, typer.Option(help="For --engine hf: cpu, cuda, cuda:1, ...")]
ReasoningOption = Annotated[
    str,
    typer.Option(
        help="always: reason, then answer (the paper's). never: the answer forced right after the prompt, "
        "its labels scored. auto: the forced answer first; conversations with a score inside "
        "--reasoning-band are then reasoned in full."
    ),
]
ReasoningBandOption = Annotated[
    str | None,
    typer.Option(
        help="With an answer-first --reasoning (auto, never): the scores that count as unsure, LOW,HIGH "
        "(default 0.05,0.95, not calibrated for any weights), or a band file ('guardreasoner eval "
        "--calibrate-band' writes one)."
    ),
]


def check_reasoning(
    reasoning: str, band: str | None, *, modes: tuple[ReasoningMode, ...] = tuple(ReasoningMode)
) -> tuple[ReasoningMode, ReasoningBand | None]:
    """``--reasoning`` (one of ``modes``) and ``--reasoning-band`` read and checked; None: the default band."""
    names = [mode.value for mode in modes]
    if reasoning not in names:
        fail(f"--reasoning '{reasoning}' is not a mode; choose one of {', '.join(names)}.")
    mode = ReasoningMode(reasoning)
    if band is None:
        return mode, None
    if mode is ReasoningMode.ALWAYS:
        others = " or ".join(name for name in names if name != ReasoningMode.ALWAYS.value)
        fail(
            f"--reasoning-band goes with --reasoning {others}; --reasoning always reasons on every conversation."
        )
    return mode, read_reasoning_band(band)


def read_reasoning_band(text: str) -> ReasoningBand:
    """``LOW,HIGH`` or a band file's path (a file of that name wins over the pair)."""
    source: tuple[float, ...] | Path = Path(text)
    if "," in text and not Path(text).exists():
        try:
            source = tuple(float(part) for part in text.split(","))
        except ValueError:
            fail(
                f"--reasoning-band '{text}' is neither LOW,HIGH (two numbers in [0, 1], such as 0.05,0.95) "
                "nor a band file."
            )
    try:
        return load_reasoning_band(source)
    except ReasoningBandError as exc:
        message = str(exc)
        if message.startswith("reasoning_band "):  # the pair's message, in the command line's words
            fail(f"--reasoning-band '{text}' " + message.removeprefix("reasoning_band "))
        fail(f"--reasoning-band: {message}")
