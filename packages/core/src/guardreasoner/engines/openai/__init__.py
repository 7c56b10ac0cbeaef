"""The ``openai`` engine: any OpenAI-compatible server (vLLM, SGLang, ``transformers serve``...), or a pool
of them.

Raw-format models (the released GuardReasoner models) go to the Completions API, ``POST /v1/completions``,
with the raw prompt and no chat template; the server's tokenizer adds BOS as it does for any text (vLLM and
``transformers serve`` both do, matching how the models were evaluated). Chat-format models go to
``POST /v1/chat/completions`` as one user message and the server applies its chat template.

One request per prompt (clean token accounting, per-prompt results and retries), at most
``max_concurrency`` in flight. Failed requests are retried with exponential backoff and jitter on
408/409/429/5xx, connection errors, timeouts and garbled answers; anything else (400, 401, 404, 422...) fails
at once. A request that still fails ends as a typed :class:`~guardreasoner.errors.EngineError` naming the URL,
the cause and what to check (:class:`EngineTimeoutError` for timeouts).

The package: ``engine`` (the request loop), ``errors`` (typed errors and the failure mapping), ``clients``
(HTTP clients per event loop, the loop for sync callers), ``endpoints`` (the pool and its circuit breaker),
``tokens`` (counting prompt tokens, the bytes bound).

Serving a released model::

    vllm serve yueliu1999/GuardReasoner-8B            # the model name is the hub id
    GuardReasoner("yueliu1999/GuardReasoner-8B", engine="openai", base_url="http://localhost:8000/v1")
"""

from guardreasoner.engines.openai.engine import DEFAULT_BASE_URL, OpenAIEngine
from guardreasoner.errors import EngineTimeoutError

__all__ = ["DEFAULT_BASE_URL", "EngineTimeoutError", "OpenAIEngine"]
