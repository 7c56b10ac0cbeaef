"""Which records can be classified: one scan of the input before any generation.

A record that fails the guard's own input validation (``guardreasoner.conversation.validate``) or has no id is
a reject: it goes to the rejects file with the reason, never silently skipped. Ids must be unique, since
resume and the output's join key rest on them; a duplicate stops the audit before anything is classified.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from guardreasoner.audit.errors import AuditInputError
from guardreasoner.audit.sources import Source
from guardreasoner.conversation import validate
from guardreasoner.errors import InvalidInputError

SCAN_BATCH_ROWS = 65_536
"""Rows per pyarrow batch in the scan: only three columns are read, so large batches stay small in memory."""


def reject_reason(record_id: Any, prompt: Any, response: Any, *, id_column: str) -> str | None:
    """Why the guard would refuse this record, or None when it can be classified."""
    if record_id is None:
        return f"The id column {id_column!r} is empty."
    try:
        validate(prompt, response)
    except InvalidInputError as exc:
        return str(exc)
    return None


@dataclass
class ScanResult:
    """The input's ids, split into those to classify and the rejects (with their reasons)."""

    valid_ids: set = field(default_factory=set)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0


def scan(source: Source) -> ScanResult:
    """Read the input's id/prompt/response columns once; raise :class:`AuditInputError` on duplicate ids."""
    columns = source.columns
    result, counts = ScanResult(), Counter()
    for batch in source.batches(SCAN_BATCH_ROWS):
        ids = batch.column(columns.id).to_pylist()
        prompts = batch.column(columns.prompt).to_pylist()
        responses = batch.column(columns.response).to_pylist() if columns.response else [None] * len(ids)
        for record_id, prompt, response in zip(ids, prompts, responses):
            result.total += 1
            reason = reject_reason(record_id, prompt, response, id_column=columns.id)
            if record_id is not None:
                counts[record_id] += 1
            if reason is None:
                result.valid_ids.add(record_id)
            else:
                result.rejects.append({columns.id: record_id, "reason": reason})
    duplicates = [(i, n) for i, n in counts.most_common(5) if n > 1]
    if duplicates:
        shown = ", ".join(f"{i!r} ({n} times)" for i, n in duplicates)
        number = sum(1 for n in counts.values() if n > 1)
        raise AuditInputError(
            f"The id column {columns.id!r} is not unique: {number} id(s) repeat, e.g. {shown}. Resume and the "
            "output's join key need one row per id: deduplicate the input or pick another --id-column."
        )
    return result


def write_rejects(path, rejects: list[dict[str, Any]], filesystem) -> None:
    """Write the rejects as JSONL (one ``{id, reason}`` per line), replacing an earlier run's file."""
    with filesystem.open(path, "w") as out:
        for reject in rejects:
            out.write(json.dumps(reject, default=str) + "\n")
