"""The output row: the input's id, then every field of :class:`~guardreasoner.verdict.Verdict`.

Built from ``Verdict.model_fields`` rather than a hand-kept list, so a field added to the verdict (the scores,
say) becomes a column without touching this file. Scalars keep their type; enums and literals are strings;
lists of strings stay lists; anything structured (the per-task reasoning) is stored as its JSON, so the row
reads back into the same verdict (:func:`row_to_verdict`).
"""

from __future__ import annotations

import enum
import json
import types
import typing
from typing import Any

from guardreasoner.errors import require
from guardreasoner.verdict import Verdict


def _strip_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _arrow_type(annotation: Any):
    """The arrow type of one verdict field, or None for a field stored as JSON text."""
    pa = require("pyarrow", extra="audit", feature="Writing audit output")
    annotation = _strip_optional(annotation)
    origin = typing.get_origin(annotation)
    if annotation is bool:
        return pa.bool_()
    if annotation is int:
        return pa.int64()
    if annotation is float:
        return pa.float64()
    if annotation is str or origin is typing.Literal:
        return pa.string()
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return pa.string()
    if origin is list and typing.get_args(annotation) == (str,):
        return pa.list_(pa.string())
    return None


def json_fields() -> list[str]:
    """The verdict fields stored as JSON text (structured values such as ``reasoning``)."""
    return [name for name, info in Verdict.model_fields.items() if _arrow_type(info.annotation) is None]


def verdict_schema(id_column: str, id_type):
    """The output's arrow schema: ``id_column`` (the input's type), then the verdict's fields in order."""
    pa = require("pyarrow", extra="audit", feature="Writing audit output")
    if id_column in Verdict.model_fields:
        raise ValueError(
            f"The id column {id_column!r} has the name of a verdict field; rename it in the input "
            "or pick another --id-column."
        )
    fields = [pa.field(id_column, id_type)]
    for name, info in Verdict.model_fields.items():
        fields.append(pa.field(name, _arrow_type(info.annotation) or pa.string()))
    return pa.schema(fields)


def verdict_to_row(record_id: Any, verdict: Verdict, id_column: str) -> dict[str, Any]:
    row = {id_column: record_id}
    structured = set(json_fields())
    for name, value in verdict.model_dump(mode="json").items():
        row[name] = json.dumps(value) if name in structured and value is not None else value
    return row


def rows_to_table(rows: list[dict[str, Any]], schema):
    pa = require("pyarrow", extra="audit", feature="Writing audit output")
    return pa.Table.from_pylist(rows, schema=schema)


def row_to_verdict(row: dict[str, Any]) -> Verdict:
    """Read an output row back into the :class:`Verdict` it was written from (the id is dropped)."""
    structured = set(json_fields())
    return Verdict.model_validate(
        {
            name: json.loads(row[name]) if name in structured and row.get(name) is not None else row.get(name)
            for name in Verdict.model_fields
            if name in row
        }
    )
