"""The files calibration writes and the guard reads (thresholds, the reasoning band): one JSON object with the
setting under its key and, optionally, how it was chosen under ``"calibration"``, which is not read."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CALIBRATION = "calibration"


def read_setting(path: Path, key: str, *, error: type[Exception], name: str, shape: str, command: str) -> Any:
    """The value under ``key`` in the ``name`` file at ``path``; ``error`` says what is wrong with the file
    (``shape`` shows the value's form, ``command`` what writes such a file)."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"Cannot read the {name} file {path}: {exc}.") from exc
    except ValueError as exc:
        raise error(f"The {name} file {path} is not valid JSON: {exc}.") from exc
    if not isinstance(content, dict) or key not in content:
        raise error(
            f"The {name} file {path} must hold a JSON object {{\"{key}\": {shape}}} (as '{command}' writes)."
        )
    unknown = sorted(set(content) - {key, CALIBRATION})
    if unknown:
        raise error(
            f"The {name} file {path} has unknown keys {unknown}; it may hold only {[key, CALIBRATION]}."
        )
    return content[key]


def write_setting(
    path: str | os.PathLike, key: str, value: Any, calibration: Mapping[str, Any] | None = None
) -> Path:
    """Write ``{key: value}`` (and ``calibration``, when given) as the file at ``path``."""
    content: dict[str, Any] = {key: value}
    if calibration is not None:
        content[CALIBRATION] = dict(calibration)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    return path
