"""The Ray runner: Ray Data reads the input, an actor pool classifies it (one guard per actor), Ray Data
writes the parts. The knobs below follow Ray 2.60's ``Dataset.map_batches`` and ``ActorPoolStrategy``
documentation (and source: ``ray/data/dataset.py``, ``ray/data/_internal/compute.py``,
``ray/data/_internal/execution/operators/actor_pool_map_operator.py``)."""

from __future__ import annotations

import math
import os
from typing import Any

from guardreasoner.audit.classify import GuardSpec, aclassify_rows, classify_rows
from guardreasoner.audit.rows import rows_to_table, verdict_schema
from guardreasoner.audit.sources import Columns, Source
from guardreasoner.audit.store import OutputStore
from guardreasoner.errors import require

OPENAI_CALLS_PER_ACTOR = 2
"""Batches in flight per ``openai`` actor (``ActorPoolStrategy(max_concurrent_calls_per_actor=)``, which Ray
passes to the actor as Ray Core's ``max_concurrency``): while one batch waits for its slowest request the
next one's requests already fill the engine's ``max_concurrency`` slots. Ray Data also runs up to
``RAY_DATA_DEFAULT_ASYNC_BATCH_UDF_MAX_CONCURRENCY`` (4) batches of one task concurrently for an async UDF."""


IO_TASK_CPUS = 0
"""CPUs reserved per read and write task (``num_cpus`` of ``read_*``, ``ray_remote_args`` of ``write_*``).
Reading and writing are light next to generation, and an actor pool as large as the cluster's CPUs (two CPU
actors on a two-CPU laptop) would otherwise starve them: Ray Data holds the read back
(``backpressured:tasks(ResourceBudget)``) and the run never starts."""


class _Classifier:
    """The actor's callable: builds its guard once, then turns each pyarrow batch into verdict rows."""

    def __init__(self, spec: GuardSpec, columns: Columns, schema: Any):
        self.guard = spec.build()
        self.columns = columns
        self.schema = schema

    def _fields(self, batch: Any) -> tuple[list, list, list | None]:
        columns = self.columns
        responses = batch.column(columns.response).to_pylist() if columns.response else None
        return batch.column(columns.id).to_pylist(), batch.column(columns.prompt).to_pylist(), responses

    def __call__(self, batch: Any) -> Any:
        return rows_to_table(classify_rows(self.guard, *self._fields(batch), self.columns.id), self.schema)


class _AsyncClassifier(_Classifier):
    """For the ``openai`` engine: an async UDF, so one actor keeps many requests in flight."""

    async def __call__(self, batch: Any) -> Any:
        rows = await aclassify_rows(self.guard, *self._fields(batch), self.columns.id)
        return rows_to_table(rows, self.schema)


def _keep_pending(batch: Any, *, id_column: str, pending: Any) -> Any:
    """Drop the records already written and the rejects (``pending`` holds the ids left to classify)."""
    pc = require("pyarrow.compute", extra="audit", feature="Ray audit")
    return batch.filter(pc.is_in(batch.column(id_column), value_set=pending))


def rows_per_block(pending: int, *, batch_size: int, num_actors: int, tasks_in_flight: int) -> int:
    """Rows per Ray Data block, which is also the rows per guard call: ``batch_size``, or fewer when that
    would leave an actor without a block.

    A block goes to one actor task whole (``map_batches`` cuts a block into batches inside the actor that
    runs it; it never spreads one block over actors), so the pool can only use as many actors as there are
    blocks. A single input file smaller than Ray's target block size reads as one block, and one actor then
    did all the work (two H200s, 2026-11-29: 2 actors 0.457 efficiency). Blocks of about ``batch_size`` rows
    make a task one guard call and bound an actor's idle tail to one batch. The actor that starts first is
    sent up to ``tasks_in_flight`` tasks before the others are up, so when the records are fewer than
    ``num_actors * tasks_in_flight`` batches the blocks shrink until there are that many. (The read cuts the
    whole input, before the resume filter; the actor stage bundles the filtered blocks back up to ``rows``
    records per call.)
    """
    return max(1, min(batch_size, math.ceil(pending / (num_actors * tasks_in_flight))))


def actor_resources(spec: GuardSpec, num_gpus: float | None) -> dict[str, float]:
    """One guard per actor: ``tensor_parallel_size`` GPUs for vLLM, else one CPU unless ``num_gpus`` says.

    Ray Data requires an explicit integer ``batch_size`` once GPUs are requested (``map_batches`` raises
    otherwise), which the caller always passes.
    """
    if num_gpus is None:
        num_gpus = float(spec.engine_options.get("tensor_parallel_size", 1)) if spec.engine == "vllm" else 0.0
    return {"num_cpus": 1.0, "num_gpus": num_gpus}


def connect(address: str | None):
    """Join ``address`` (or ``RAY_ADDRESS``) when given, else start a local Ray; reuse one already joined."""
    ray = require("ray", extra="ray", feature="The Ray audit runner")
    if not ray.is_initialized():
        if address or os.environ.get("RAY_ADDRESS"):
            ray.init(address=address)
        else:  # a laptop run: no dashboard, which only adds start-up time here
            ray.init(include_dashboard=False)
    return ray


def run_ray(
    source: Source,
    store: OutputStore,
    spec: GuardSpec,
    pending: set,
    *,
    input_records: int,
    batch_size: int,
    num_actors: int,
    address: str | None = None,
    num_gpus: float | None = None,
) -> None:
    """Classify the records whose id is in ``pending`` (of the input's ``input_records``) on an actor pool of
    ``num_actors`` guards."""
    if not pending:
        return
    ray = connect(address)
    pa = require("pyarrow", extra="audit", feature="Ray audit")
    columns = source.columns
    id_type = source.dataset().schema.field(columns.id).type
    schema = verdict_schema(columns.id, id_type)
    asynchronous = spec.engine == "openai"
    calls_per_actor = OPENAI_CALLS_PER_ACTOR if asynchronous else 1
    # Ray's default queue per actor (2 x its concurrency), spelled out since the block count depends on it:
    # the next batch is fetched while the current one generates.
    tasks_in_flight = 2 * calls_per_actor
    rows = rows_per_block(
        len(pending), batch_size=batch_size, num_actors=num_actors, tasks_in_flight=tasks_in_flight
    )
    read_options = {
        "filesystem": source.filesystem,
        "file_extensions": None,
        "num_cpus": IO_TASK_CPUS,
        # Cut at the read (``SplitBlocks`` inside the read task, no CPU-holding stage of its own, which a
        # pool as large as the CPUs would starve): blocks of about ``rows`` input rows.
        "override_num_blocks": max(1, math.ceil(input_records / rows)),
    }
    if source.format == "parquet":
        ctx = ray.data.DataContext.get_current()
        v2, ctx.use_datasource_v2 = ctx.use_datasource_v2, False
        # Ray 2.60's V2 Parquet reader ignores ``override_num_blocks`` (one file stays one block); the V1
        # reader (``DataContext.use_datasource_v2=False``) obeys it. ``read_parquet`` reads the flag at once.
        try:
            ds = ray.data.read_parquet(source.files, columns=columns.names(), **read_options)
        finally:
            ctx.use_datasource_v2 = v2
    else:  # pyarrow's JSON reader, which reads one object per line, as the in-process runner's does
        ds = ray.data.read_json(source.files, **read_options).select_columns(columns.names())
    # A plain function, vectorised over whole blocks; Ray Data fuses it into the actor stage below (the plan
    # reads ``MapBatches(_keep_pending)->MapBatches(_Classifier)``), so it costs no extra task or copy.
    ds = ds.map_batches(
        _keep_pending,
        batch_format="pyarrow",
        batch_size=None,  # whole blocks: the filter is vectorised, so no re-batching is needed
        fn_kwargs={"id_column": columns.id, "pending": pa.array(list(pending), type=id_type)},
    )
    compute = ray.data.ActorPoolStrategy(
        # A fixed pool: each actor loads a model, so autoscaling would pay a model load per scale-up and
        # hold the GPUs anyway.
        size=num_actors,
        max_concurrent_calls_per_actor=calls_per_actor if asynchronous else None,
        max_tasks_in_flight_per_actor=tasks_in_flight,
    )
    ds = ds.map_batches(
        _AsyncClassifier if asynchronous else _Classifier,
        fn_constructor_kwargs={"spec": spec, "columns": columns, "schema": schema},
        # ``rows`` (at most ``batch_size``) per guard call: one block per task. A larger batch_size here
        # would make Ray bundle several blocks into one task and undo the split.
        batch_size=rows,
        batch_format="pyarrow",
        compute=compute,
        # One row out per row in: lets Ray Data plan without expecting a row-count change.
        udf_modifying_row_count=False,
        # Failed tasks are retried by Ray itself: Ray Data gives its actors ``max_restarts=-1`` and
        # ``max_task_retries=-1`` unless told otherwise (``MapOperator._apply_default_remote_args``).
        **actor_resources(spec, num_gpus),
    )
    write = ds.write_parquet if store.format == "parquet" else ds.write_json
    write(store.path, ray_remote_args={"num_cpus": IO_TASK_CPUS})
