"""Answer-first: when the guard reasons, and the band of scores it reasons on.

The released models reason step by step, then answer. Most checks are easy and their answer is settled
before the reasoning is written, so a guard can first force the answer block right after the prompt (the
separator and ``Answers:`` heading, then a few greedy tokens: ``engines/forcing.py``), score its labels, and
reason in full only where the forced answer is unsure:

- ``always`` (the default): reason, then answer (the paper's setting).
- ``never``: the forced answer alone; a label whose score is inside the band is not a clean allow under
  ``fail_closed`` (``policy.py``).
- ``auto``: the forced answer first; a conversation whose every applicable task scores outside the band is
  decided there, the others are reasoned in full (``GuardReasoner.classify_batch`` sends them in one call).

The band is a closed interval ``[low, high]`` of scores (the probability of ``harmful`` or ``refusal``) that
count as unsure; a band with ``low == high`` is empty (nothing is unsure). ``(0, 1)`` escalates everything,
``(0.5, 0.5)`` nothing. :data:`DEFAULT_REASONING_BAND` is a starting point, not a calibration: calibrate it
for the weights you run on your own labelled data (``guardreasoner eval --calibrate-band``).

The band file (written by :func:`write_reasoning_band`, read by ``GuardReasoner(reasoning_band=path)``) is
JSON::

    {"reasoning_band": {"low": 0.03, "high": 0.97}, "calibration": {"target_agreement": 0.99, ...}}

``calibration`` (optional) records how the band was chosen and is not read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from guardreasoner.errors import GuardReasonerError
from guardreasoner.settings_files import read_setting, write_setting

__all__ = [
    "DEFAULT_REASONING_BAND",
    "ReasoningBand",
    "ReasoningBandError",
    "ReasoningBandLike",
    "ReasoningMode",
    "load_reasoning_band",
    "reasoning_mode",
    "write_reasoning_band",
]


class ReasoningMode(str, Enum):
    """When the guard writes its reasoning (see the module docstring)."""

    ALWAYS = "always"
    AUTO = "auto"
    NEVER = "never"


class ReasoningBandError(GuardReasonerError, ValueError):
    """A reasoning band that cannot be used as given: the message says what is wrong and where."""


class ReasoningBand(BaseModel):
    """The scores a forced answer is unsure at: the closed interval ``[low, high]``, empty when ``low == high``."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    low: float
    high: float

    @model_validator(mode="after")
    def _ordered_in_unit_interval(self) -> ReasoningBand:
        for name in ("low", "high"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:  # NaN fails too
                raise ValueError(f"{name} must be a number in [0, 1], not {value!r}")
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not be above high ({self.high})")
        return self

    def contains(self, score: float) -> bool:
        """Whether ``score`` is unsure: inside ``[low, high]`` (never, for an empty band)."""
        return self.low < self.high and self.low <= score <= self.high

    def __str__(self) -> str:
        return f"[{self.low:g}, {self.high:g}]"


DEFAULT_REASONING_BAND = ReasoningBand(low=0.05, high=0.95)
"""Scores between 5% and 95% are reasoned on. Not calibrated for any weights: calibrate your own."""

ReasoningBandLike = ReasoningBand | tuple[float, float] | str | os.PathLike | None
"""A band, a ``(low, high)`` pair, a band file's path, or None for :data:`DEFAULT_REASONING_BAND`."""


def reasoning_mode(value: ReasoningMode | str) -> ReasoningMode:
    """``value`` as a :class:`ReasoningMode`, or :class:`ValueError` naming the modes."""
    try:
        return ReasoningMode(value)
    except ValueError:
        allowed = ", ".join(repr(mode.value) for mode in ReasoningMode)
        raise ValueError(f"reasoning must be one of {allowed}, got {value!r}.") from None


def load_reasoning_band(source: ReasoningBandLike) -> ReasoningBand:
    """A validated band from a band, a ``(low, high)`` pair or a band file's path; the default for None."""
    if source is None:
        return DEFAULT_REASONING_BAND
    if isinstance(source, ReasoningBand):
        return source
    if isinstance(source, (str, os.PathLike)):
        return _read_file(Path(source))
    if isinstance(source, (tuple, list)):
        return _from_pair(source, "reasoning_band")
    raise ReasoningBandError(
        "reasoning_band must be a (low, high) pair, a ReasoningBand or a band file's path, "
        f"not {type(source).__name__}."
    )


def write_reasoning_band(
    path: str | os.PathLike, band: ReasoningBandLike, calibration: Mapping[str, Any] | None = None
) -> Path:
    """Write a band file (validated first, so that what is written can be read back)."""
    if band is None:
        raise ReasoningBandError("write_reasoning_band needs a band, not None.")
    return write_setting(path, "reasoning_band", load_reasoning_band(band).model_dump(), calibration)


def _from_pair(pair: tuple | list, where: str) -> ReasoningBand:
    if len(pair) != 2:
        raise ReasoningBandError(f"{where} must be two numbers (low, high) in [0, 1], not {pair!r}.")
    return _validated({"low": pair[0], "high": pair[1]}, where)


def _validated(fields: Any, where: str) -> ReasoningBand:
    try:
        return ReasoningBand.model_validate(fields)
    except ValidationError as exc:
        reasons = "; ".join(_reason(error) for error in exc.errors())
        raise ReasoningBandError(
            f"{where} is not a reasoning band ({reasons}); give low <= high, both in [0, 1]."
        ) from None


def _reason(error: Mapping[str, Any]) -> str:
    if error["type"] == "value_error":
        return error["msg"].removeprefix("Value error, ")
    where = ".".join(map(str, error["loc"])) or "the band"
    return f"{where}: {error['msg'].lower()}, not {error['input']!r}"


def _read_file(path: Path) -> ReasoningBand:
    band = read_setting(
        path,
        "reasoning_band",
        error=ReasoningBandError,
        name="reasoning band",
        shape='{"low": ..., "high": ...}',
        command="guardreasoner eval --calibrate-band",
    )
    if not isinstance(band, dict):
        raise ReasoningBandError(
            f'\'reasoning_band\' in {path} must be an object {{"low": ..., "high": ...}}, not {band!r}.'
        )
    return _validated(band, f"'reasoning_band' in {path}")
