"""Warming vLLM's suffix-decoding cache with the guard's own earlier outputs.

vLLM 0.26 keeps the model's responses in a global suffix tree (``SuffixDecodingCache``, up to
``suffix_decoding_max_cached_requests``), so a running engine learns from its own verdicts. A fresh process
starts empty; this worker extension (vLLM's ``worker_extension_cls``) adds earlier (prompt, output) token ids
to that tree, so the first requests already draft from it. It runs inside vLLM's worker process, called by
name through ``collective_rpc`` (no pickled code crosses the process boundary).
"""

from __future__ import annotations

import itertools
from typing import Any

WORKER_EXTENSION = f"{__name__}.SuffixCacheWarmer"
RPC_METHOD = "guardreasoner_warm_suffix_cache"
_warm_ids = itertools.count()


class SuffixCacheWarmer:
    """Mixed into vLLM's GPU worker: one method that feeds (prompt ids, output ids) pairs to the suffix cache."""

    def guardreasoner_warm_suffix_cache(self, pairs: list[tuple[list[int], list[int]]]) -> int:
        """Add each output to the global suffix tree (the prompt only anchors it); returns how many."""
        cache = _suffix_cache(self)
        for prompt_ids, output_ids in pairs:
            key = f"guardreasoner-warm-{next(_warm_ids)}"
            cache.start_request(key, list(prompt_ids))
            cache.add_active_response(key, list(output_ids))
            cache.stop_request(key)  # the prompt tree goes; the response stays in the global tree
        return len(pairs)


def _suffix_cache(worker: Any) -> Any:
    drafter = getattr(getattr(worker, "model_runner", None), "drafter", None)
    cache = getattr(drafter, "suffix_cache", None)
    if cache is None:
        raise RuntimeError(
            "This vLLM engine has no suffix-decoding cache: build the engine with speculative='suffix'."
        )
    return cache
