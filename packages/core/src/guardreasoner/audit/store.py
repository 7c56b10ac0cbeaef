"""The output folder: verdict parts, the rejects file, the summary.

Every part is complete or absent: the in-process runner writes each batch to a hidden temporary name and
renames it into place, so a SIGKILL loses at most the batch in flight. Ray Data's writers write in place, so
a killed Ray run can leave a part cut short; resume moves any part that does not read back to a hidden
``_unreadable-*`` name (its ids are then classified again) and says so. Names starting with ``_`` or ``.``
are skipped by pyarrow's and Ray's readers, so the rejects and summary never read as verdicts.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any, Literal

from guardreasoner.errors import require

logger = logging.getLogger("guardreasoner.audit")

OutputFormat = Literal["parquet", "jsonl"]
EXTENSIONS: dict[OutputFormat, str] = {"parquet": ".parquet", "jsonl": ".json"}
"""Ray's ``write_json`` names its JSONL files ``*.json``; the in-process runner does the same."""
REJECTS_NAME = "_rejects.jsonl"
SUMMARY_NAME = "_summary.json"


class OutputStore:
    """An output folder on any fsspec filesystem, in one format."""

    def __init__(self, path: str, format: OutputFormat):
        if format not in EXTENSIONS:
            raise ValueError(f"The output format must be 'parquet' or 'jsonl', got {format!r}.")
        fsspec = require("fsspec", extra="audit", feature="Writing audit output")
        self.fs, self.root = fsspec.core.url_to_fs(path)
        self.path = path
        self.format = format
        self.run_id = uuid.uuid4().hex[:8]
        self._parts_written = 0
        if self.fs.exists(self.root) and not self.fs.isdir(self.root):
            raise ValueError(f"The output {path} is a file; the audit writes a folder of parts there.")
        self.fs.makedirs(self.root, exist_ok=True)

    def join(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{name}"

    def parts(self) -> list[str]:
        """The verdict parts present, in name order; other formats' files are an error (mixed output)."""
        names = sorted(self.fs.ls(self.root, detail=False))
        parts = [n for n in names if not n.rsplit("/", 1)[-1].startswith(("_", "."))]
        foreign = [n for n in parts if not n.endswith(EXTENSIONS[self.format])]
        if foreign:
            raise ValueError(
                f"The output folder {self.path} holds files that are not {self.format} parts "
                f"({foreign[0].rsplit('/', 1)[-1]}, ...): give an empty folder or the one an earlier "
                f"{self.format} audit wrote."
            )
        return parts

    def read(self, columns: list[str] | None = None):
        """Every verdict part as one ``pyarrow.Table`` (None when nothing is written yet)."""
        pa = require("pyarrow", extra="audit", feature="Reading audit output")
        tables = []
        for part in self.parts():
            try:
                tables.append(self._read_part(part, columns))
            except Exception as exc:  # a part cut short by a kill; its ids are classified again
                moved = self.join(f"_unreadable-{part.rsplit('/', 1)[-1]}")
                self.fs.mv(part, moved)
                logger.warning("Output part %s does not read back (%s); moved it to %s.", part, exc, moved)
        tables = [t for t in tables if t.num_rows]
        return pa.concat_tables(tables, promote_options="permissive") if tables else None

    def written_ids(self, id_column: str) -> list:
        table = self.read([id_column])
        return [] if table is None else table.column(id_column).to_pylist()

    def write_part(self, table) -> str:
        """Write ``table`` as the next part: to a hidden name first, then renamed, so it is whole or absent."""
        name = f"part-{self.run_id}-{self._parts_written:06d}{EXTENSIONS[self.format]}"
        temporary, final = self.join(f".tmp-{name}"), self.join(name)
        with self.fs.open(temporary, "wb") as out:
            if self.format == "parquet":
                require("pyarrow.parquet", extra="audit", feature="Writing audit output").write_table(
                    table, out
                )
            else:
                for row in table.to_pylist():
                    out.write((json.dumps(row) + "\n").encode())
        self.fs.mv(temporary, final)
        self._parts_written += 1
        return final

    def write_text(self, name: str, text: str) -> None:
        with self.fs.open(self.join(name), "w") as out:
            out.write(text)

    def _read_part(self, part: str, columns: list[str] | None) -> Any:
        pa = require("pyarrow", extra="audit", feature="Reading audit output")
        with self.fs.open(part, "rb") as handle:
            if self.format == "parquet":
                return require("pyarrow.parquet", extra="audit", feature="Reading audit output").read_table(
                    handle, columns=columns
                )
            rows = [json.loads(line) for line in handle.read().decode().splitlines() if line.strip()]
        table = pa.Table.from_pylist(rows)
        return table.select(columns) if columns else table
