"""``guardreasoner.audit(...)``: scan, resume, classify with a runner, check, summarise."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Literal

from guardreasoner.audit.classify import GuardSpec
from guardreasoner.audit.errors import AuditIncompleteError, AuditInputError
from guardreasoner.audit.sources import Columns, InputFormat, open_source
from guardreasoner.audit.store import REJECTS_NAME, SUMMARY_NAME, OutputFormat, OutputStore
from guardreasoner.audit.summary import COUNTED_COLUMNS, AuditSummary, summarize
from guardreasoner.audit.validation import scan, write_rejects
from guardreasoner.engines import Engine
from guardreasoner.model_source import DEFAULT_MODEL
from guardreasoner.reasoning import ReasoningBandLike, ReasoningMode, load_reasoning_band, reasoning_mode
from guardreasoner.telemetry.jobs import traced_audit


@traced_audit
def audit(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    model: str | os.PathLike[str] = DEFAULT_MODEL,
    engine: str | Engine = "auto",
    runner: Literal["local", "ray"] = "local",
    id_column: str = "id",
    prompt_column: str = "prompt",
    response_column: str | None = "response",
    input_format: InputFormat | None = None,
    output_format: OutputFormat = "parquet",
    batch_size: int = 64,
    policy: str = "fail_closed",
    max_new_tokens: int = 2048,
    reasoning: ReasoningMode | str = ReasoningMode.ALWAYS,
    reasoning_band: ReasoningBandLike = None,
    num_actors: int = 1,
    num_gpus_per_actor: float | None = None,
    ray_address: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    **engine_options: Any,
) -> AuditSummary:
    """Classify every record of ``input`` into a folder of verdict parts at ``output``; resumable.

    ``input`` is a JSONL or Parquet file, a folder of them, or a glob, on any fsspec filesystem; its
    ``id_column`` must be unique. Records the guard would refuse go to ``output/_rejects.jsonl`` with the
    reason. A rerun into the same ``output`` classifies only the ids not written yet. ``runner="local"``
    classifies in this process with any engine; ``runner="ray"`` on a Ray Data actor pool of
    ``num_actors`` guards (``ray_address``/``RAY_ADDRESS`` for a cluster, a local Ray otherwise).
    ``on_progress(done, total)`` is called after each in-process batch. ``reasoning`` and
    ``reasoning_band`` are the guard's (``guardreasoner.reasoning``), checked (and a band file read) before
    the input is scanned. Returns the summary, also written to ``output/_summary.json``. The run is a
    ``guardreasoner.audit`` OpenTelemetry span (extra ``otel``), the parent of its in-process batches'
    ``guardreasoner.classify`` spans.
    """
    if batch_size < 1 or num_actors < 1:
        raise ValueError("batch_size and num_actors must be at least 1.")
    if runner not in ("local", "ray"):
        raise ValueError(f"runner must be 'local' or 'ray', got {runner!r}.")
    spec = GuardSpec(
        model,
        engine,
        policy,
        max_new_tokens,
        engine_options,
        reasoning=reasoning_mode(reasoning),
        reasoning_band=load_reasoning_band(reasoning_band),
    )
    columns = Columns(id=id_column, prompt=prompt_column, response=response_column or None)
    source = open_source(os.fspath(input), columns, format=input_format)
    store = OutputStore(os.fspath(output), output_format)

    scanned = scan(source)
    write_rejects(store.join(REJECTS_NAME), scanned.rejects, store.fs)
    done = store.written_ids(id_column)
    foreign = set(done) - scanned.valid_ids
    if foreign:
        raise AuditInputError(
            f"{output} holds {len(foreign)} verdict(s) for ids that are not valid records of {input} "
            f"(e.g. {next(iter(foreign))!r}): it belongs to another audit. Give a new output folder."
        )
    pending = scanned.valid_ids - set(done)

    started = time.perf_counter()
    if runner == "local":
        from guardreasoner.audit.local import run_local

        written = 0

        def advance(n: int) -> None:
            nonlocal written
            written += n
            if on_progress is not None:
                on_progress(written, len(pending))

        run_local(source, store, spec, pending, batch_size=batch_size, advance=advance)
    else:
        from guardreasoner.audit.ray_runner import run_ray

        run_ray(
            source,
            store,
            spec,
            pending,
            input_records=scanned.total,
            batch_size=batch_size,
            num_actors=num_actors,
            address=ray_address,
            num_gpus=num_gpus_per_actor,
        )
    seconds = time.perf_counter() - started

    table = store.read([id_column, *COUNTED_COLUMNS])
    check_complete(table, id_column, scanned.valid_ids)
    summary = summarize(
        table,
        output=os.fspath(output),
        runner=runner,
        input_records=scanned.total,
        rejected=len(scanned.rejects),
        already_done=len(done),
        classified=len(pending),
        seconds=seconds,
    )
    store.write_text(SUMMARY_NAME, summary.model_dump_json(indent=2))
    return summary


def check_complete(table, id_column: str, expected: set) -> None:
    """Every valid id written exactly once: the audit's promise, checked on what is on disk."""
    ids = [] if table is None else table.column(id_column).to_pylist()
    repeated = [i for i, n in Counter(ids).items() if n > 1]
    missing = expected - set(ids)
    if repeated or missing:
        raise AuditIncompleteError(
            f"The output does not hold each record once: {len(repeated)} id(s) written twice "
            f"(e.g. {repeated[:3]}), {len(missing)} missing (e.g. {sorted(map(str, missing))[:3]}). "
            "Rerun the same command to fill the gaps; report duplicates as a bug."
        )
