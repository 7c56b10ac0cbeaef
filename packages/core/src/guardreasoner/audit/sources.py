"""Where the conversations come from: JSONL or Parquet files, a folder of them, or a glob, on any filesystem
fsspec knows (local paths, ``s3://``, ``gs://``, ...), read with pyarrow in batches of the needed columns only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from guardreasoner.audit.errors import AuditInputError
from guardreasoner.errors import require

InputFormat = Literal["jsonl", "parquet"]
SUFFIXES: dict[str, InputFormat] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


@dataclass(frozen=True)
class Columns:
    """The input's column names. ``response=None``: the input holds requests alone."""

    id: str = "id"
    prompt: str = "prompt"
    response: str | None = "response"

    def names(self) -> list[str]:
        return [self.id, self.prompt] + ([self.response] if self.response else [])


@dataclass(frozen=True)
class Source:
    """The resolved input: its files, their format and filesystem, and the columns to read."""

    files: list[str]
    format: InputFormat
    filesystem: Any  # pyarrow.fs.FileSystem
    columns: Columns

    def dataset(self):
        """The files as a ``pyarrow.dataset.Dataset`` (lazy; nothing is read yet)."""
        pads = require("pyarrow.dataset", extra="audit", feature="Reading audit input")
        fmt = "json" if self.format == "jsonl" else "parquet"
        return pads.dataset(self.files, format=fmt, filesystem=self.filesystem)

    def batches(self, batch_size: int):
        """Yield ``pyarrow.RecordBatch`` es of the id, prompt and response columns, in file order."""
        try:
            yield from self.dataset().to_batches(columns=self.columns.names(), batch_size=batch_size)
        except Exception as exc:  # pyarrow raises ArrowInvalid and friends for malformed files
            if type(exc).__module__.startswith("pyarrow"):
                raise AuditInputError(f"Could not read the input ({self.format}): {exc}") from exc
            raise


def open_source(path: str, columns: Columns, *, format: InputFormat | None = None) -> Source:
    """Resolve ``path`` (a file, a folder read recursively, or a glob) to its files and check the columns."""
    fsspec = require("fsspec", extra="audit", feature="Reading audit input")
    pafs = require("pyarrow.fs", extra="audit", feature="Reading audit input")
    fs, root = fsspec.core.url_to_fs(path)
    if any(ch in root for ch in "*?["):
        found = sorted(fs.glob(root))
    elif fs.isdir(root):
        found = sorted(fs.find(root))
    elif fs.exists(root):
        found = [root]
    else:
        raise AuditInputError(f"The input {path} does not exist.")
    files = [f for f in found if _suffix(f) in SUFFIXES and not _hidden(f)]
    if not files:
        raise AuditInputError(
            f"No .jsonl or .parquet files at {path}. Give a file, a folder holding them, or a glob."
        )
    formats = {SUFFIXES[_suffix(f)] for f in files}
    if format is None:
        if len(formats) > 1:
            raise AuditInputError(f"{path} mixes JSONL and Parquet files; audit them separately.")
        format = formats.pop()
    local = require("fsspec.implementations.local", extra="audit", feature="Reading audit input")
    if isinstance(fs, local.LocalFileSystem):
        filesystem = pafs.LocalFileSystem()
    else:
        filesystem = pafs.PyFileSystem(pafs.FSSpecHandler(fs))
    source = Source(files=files, format=format, filesystem=filesystem, columns=columns)
    _check_columns(source)
    return source


def _check_columns(source: Source) -> None:
    try:
        available = set(source.dataset().schema.names)
    except Exception as exc:
        raise AuditInputError(f"Could not read the input's schema: {exc}") from exc
    missing = [name for name in source.columns.names() if name not in available]
    if missing:
        hint = {
            source.columns.id: "--id-column (ids are what resume and the output's join key rest on)",
            source.columns.prompt: "--prompt-column",
            source.columns.response: "--response-column, or --no-response for requests alone",
        }
        raise AuditInputError(
            f"The input has no column {', '.join(map(repr, missing))} (it has {sorted(available)}); "
            f"pass {'; '.join(hint[name] for name in missing)}."
        )


def _suffix(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    return "." + base.rsplit(".", 1)[-1].lower() if "." in base else ""


def _hidden(name: str) -> bool:
    """Names pyarrow's dataset readers skip too: ``_SUCCESS``, ``.crc`` and the like."""
    return name.rsplit("/", 1)[-1].startswith(("_", "."))
