"""Seeding vLLM 0.34's suffix-decoding corpus with the guard's own earlier outputs.

How the corpus fills (``vllm/v1/worker/gpu/spec_decode/suffix/speculator.py``, vLLM 0.34): each GPU (every
tensor-parallel rank alike) keeps a ring of ``suffix_decoding_corpus_tokens`` tokens (default 2**20) and a
hash index on each position's preceding 2 and 4 tokens. When requests finish (or are aborted), the model runner
calls the speculator's ``on_requests_finished``, which appends each one's last 3 prompt tokens and its whole
response, in request-id order; the oldest responses are overwritten first. Prompts are not added (a request's
own prompt and output are searched separately). ``suffix_decoding_max_cached_requests`` only switches the
corpus off at 0; it caps nothing else. The engine's own short requests are added too: a label request as a
4-token document, a forced answer as its prompt's last 3 tokens and its few answer tokens. The corpus is
cleared after vLLM's start-up warm-up and lives in GPU memory, so a fresh engine starts empty.

vLLM 0.34 has no API to add to it. This worker extension (vLLM's ``worker_extension_cls``, called by name
through ``collective_rpc``, so no pickled code crosses the process boundary) feeds earlier (prompt, output)
pairs through the speculator's own ``on_requests_finished``, as finished requests holding exactly those
tokens: the corpus then holds what it would after serving them. It reads vLLM's request state by the fields
that method uses (``req_id_to_index``, ``prompt_len``, ``all_token_ids``, ``total_len``), so it is tied to
vLLM 0.34's speculator.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

WORKER_EXTENSION = f"{__name__}.SuffixCorpusSeeder"
RPC_METHOD = "guardreasoner_seed_suffix_corpus"
BATCH = 256
"""Pairs per ingestion: vLLM's ingestion kernel replays the placement of every earlier document of its batch,
so its cost grows with the square of the batch; a step's worth of finished requests keeps it small."""


class SuffixCorpusSeeder:
    """Mixed into vLLM's GPU worker: one method that adds (prompt ids, output ids) pairs to the suffix corpus."""

    def guardreasoner_seed_suffix_corpus(self, pairs: list[tuple[list[int], list[int]]]) -> int:
        """Add each pair as a finished request would be added; returns how many."""
        speculator = _suffix_speculator(self)
        seeder = copy.copy(speculator)  # shares the corpus tensors, which ingestion updates in place
        for start in range(0, len(pairs), BATCH):
            seeder.req_states = _finished_requests(pairs[start : start + BATCH], speculator.device)
            seeder.on_requests_finished(set(seeder.req_states.req_id_to_index))
        speculator.num_docs = seeder.num_docs  # the host-side count, kept beside the shared tensors
        return len(pairs)


def _finished_requests(pairs: list[tuple[list[int], list[int]]], device: Any) -> SimpleNamespace:
    """The fields of vLLM's ``RequestState`` that ingestion reads, for requests holding exactly ``pairs``."""
    import numpy as np
    import torch

    rows = [[*prompt, *output] for prompt, output in pairs]
    tokens = torch.zeros((len(rows), max(1, *map(len, rows))), dtype=torch.int32)
    for index, row in enumerate(rows):
        tokens[index, : len(row)] = torch.tensor(row, dtype=torch.int32)
    return SimpleNamespace(
        req_id_to_index={f"guardreasoner-seed-{index:06d}": index for index in range(len(rows))},
        prompt_len=SimpleNamespace(np=np.array([len(prompt) for prompt, _ in pairs], dtype=np.int32)),
        all_token_ids=SimpleNamespace(gpu=tokens.to(device)),
        total_len=SimpleNamespace(
            gpu=torch.tensor([len(row) for row in rows], dtype=torch.int32, device=device)
        ),
    )


def _suffix_speculator(worker: Any) -> Any:
    from vllm.v1.worker.gpu.spec_decode.suffix.speculator import SuffixSpeculator

    speculator = getattr(getattr(worker, "model_runner", None), "speculator", None)
    if not isinstance(speculator, SuffixSpeculator):
        raise RuntimeError(
            "This vLLM engine runs no GPU suffix speculator: build the engine with speculative='suffix' "
            "(vLLM 0.34 or newer)."
        )
    if not speculator.has_corpus:
        raise RuntimeError(
            "This engine's suffix corpus is off (suffix_decoding_corpus_tokens or "
            "suffix_decoding_max_cached_requests is 0, or suffix_decoding_max_tree_depth is below 2): there "
            "is nothing to seed."
        )
    return speculator
