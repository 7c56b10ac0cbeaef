"""The in-process runner: no cluster, any engine. Batches go through ``GuardReasoner.classify_batch`` and each
batch's verdicts become one output part, so a kill loses at most the batch in flight."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from guardreasoner.audit.classify import GuardSpec, classify_rows
from guardreasoner.audit.rows import rows_to_table, verdict_schema
from guardreasoner.audit.sources import Source
from guardreasoner.audit.store import OutputStore


def pending_batches(source: Source, pending: set, batch_size: int) -> Iterator[tuple[list, list, list]]:
    """The records whose id is in ``pending``, in input order, as ``(ids, prompts, responses)`` batches."""
    columns = source.columns
    ids: list = []
    prompts: list = []
    responses: list = []
    for batch in source.batches(batch_size):
        batch_ids = batch.column(columns.id).to_pylist()
        batch_prompts = batch.column(columns.prompt).to_pylist()
        batch_responses = (
            batch.column(columns.response).to_pylist() if columns.response else [None] * len(batch_ids)
        )
        for record_id, prompt, response in zip(batch_ids, batch_prompts, batch_responses):
            if record_id not in pending:
                continue
            ids.append(record_id)
            prompts.append(prompt)
            responses.append(response)
            if len(ids) == batch_size:
                yield ids, prompts, responses
                ids, prompts, responses = [], [], []
    if ids:
        yield ids, prompts, responses


def run_local(
    source: Source,
    store: OutputStore,
    spec: GuardSpec,
    pending: set,
    *,
    batch_size: int,
    advance: Callable[[int], None] = lambda n: None,
) -> int:
    """Classify the records whose id is in ``pending``, one part per batch; return how many were written."""
    if not pending:
        return 0
    columns = source.columns
    schema = verdict_schema(columns.id, source.dataset().schema.field(columns.id).type)
    written = 0
    with spec.build() as guard:
        for ids, prompts, responses in pending_batches(source, pending, batch_size):
            rows = classify_rows(guard, ids, prompts, responses, columns.id)
            store.write_part(rows_to_table(rows, schema))
            written += len(rows)
            advance(len(rows))
    return written
