"""The vLLM engine: the reference implementation's engine, for batches and for concurrent async callers.

Versions: written for vLLM 0.34 (Model Runner V2, async scheduling on by default, the GPU suffix speculator);
everything but ``speculative="suffix"`` also runs on vLLM 0.26, whose APIs this engine uses are the same
(``LLM.generate`` with ``TokensPrompt`` inputs, ``LLMEngine.add_request``/``step``/``abort_request``,
``AsyncLLM.from_engine_args`` with a usage context, ``SamplingParams(logprob_token_ids=...)`` returning a dict
per position of the sampled and the requested ids, ``collective_rpc``, ``LLM.get_metrics``,
``VLLM_BATCH_INVARIANT``).

Design: one engine object, one set of weights, two ways in.

* ``generate`` (``classify_batch``) is vLLM's offline path: the whole batch goes to one ``LLM.generate``
  call, as the reference implementation runs GuardReasoner. ``agenerate`` (``aclassify``) is vLLM's async
  engine (``AsyncLLM``): each call is a request that joins the running batch at the next step (continuous
  batching), so 256 concurrent callers share decode steps instead of queueing behind each other.
* An ``LLM`` and an ``AsyncLLM`` each load the weights and size a KV cache to ``gpu_memory_utilization`` (vLLM
  0.34's default: all the memory measured free); two on one GPU would not fit (and would halve the cache
  below it). So an engine builds exactly one of them, chosen by ``backend``:

  - ``"auto"`` (the default) builds lazily, by first use: the first ``generate`` builds an ``LLM``, the first
    ``agenerate`` an ``AsyncLLM``. A batch job never starts an async engine and a server never runs the
    offline one, and constructing the engine (and so ``GuardReasoner``) costs only a tokenizer load.
  - ``"offline"`` or ``"async"`` builds that one now, for a server that wants the model loaded before its
    first request.

  The other way in then uses the backend that exists, keeping both of its properties:

  - ``generate`` on an ``AsyncLLM`` submits every prompt at once and waits for all: one batch, scheduled
    together with any concurrent async traffic.
  - ``agenerate`` on an ``LLM`` (built by an earlier ``generate``, or passed in as ``llm=``) starts a driver
    thread that owns the ``LLM``'s engine: it adds each request as it arrives and steps the engine, so
    concurrent callers are continuously batched there too. From then on ``generate`` goes through the
    driver as well, so two threads never step one engine.

* The ``AsyncLLM`` lives on a private event loop in a daemon thread. vLLM binds its output handler and its
  ZMQ sockets to the loop it first runs on; a private loop makes the engine usable from any loop (each
  ``asyncio.run``, per-test loops, a framework's worker loop) and from sync code, and keeps vLLM's output
  processing off the application's loop. Callers await a future wrapped for their own loop; cancelling the
  caller (a guard timeout) aborts its requests in vLLM.
* Prompts go in as token ids (``TokensPrompt``) encoded here with the model's tokenizer, exactly as the
  ``hf`` engine encodes them: raw prompts get BOS from the tokenizer (the reference's behaviour); a chat
  template's rendered text already starts with BOS, so it is encoded without special tokens (no double BOS),
  and ``<|eot_id|>`` stops generation. ``count_tokens`` therefore counts what the model is fed.
* ``dtype="float32"`` means float32: vLLM's Triton attention kernel (the one that takes fp32 on CUDA) feeds
  fp32 operands to TF32 tensor cores unless ``TRITON_F32_DEFAULT=ieee``, so the engine sets that variable
  (unless the user did) before vLLM starts. With it, greedy decoding matches transformers token for token
  (``benchmarks/gpu/vllm_suite.py``).
* Prefix caching is on: every GuardReasoner prompt starts with the same instruction.
* Per-prompt results (``generate_each``): a request vLLM aborts or fails is that prompt's error only; past
  the deadline every request is aborted in vLLM. A model that cannot load raises ``EngineLoadError``.
* Scores (``label_scores.py``): generation asks for no log-probabilities; one 1-token request per label of
  the final answer block asks for the label candidates' there, on a context the prefix cache holds.
* The runaway cap (``max_reasoning_tokens``, ``engines/forcing.py``): a second, short greedy request on the
  prompt, the reasoning so far and the answer block's opening reads the labels of an output cut at the cap.
* Answer-first (``force_answers``, ``reasoning="auto"``/``"never"``): one short greedy request on the prompt's
  ids and the answer opening's, which asks for the label candidates' log-probabilities at its few tokens; a
  reasoning pass for the same prompt feeds the same ids, so the prefix cache holds them.
* Speculative decoding (``speculative.py``, off by default) is an option of the same engine. On vLLM 0.34
  ``speculative="suffix"`` is Model Runner V2's GPU suffix speculator with async scheduling, adaptive
  verification and a batch-size schedule for the draft length. Its cross-request corpus fills with every
  finished request's response (and its prompt's last 3 tokens) and starts empty in each new engine;
  :meth:`VLLMEngine.warm_suffix_cache` seeds it with earlier outputs through a worker extension
  (``suffix_cache.py`` says exactly how, and why it is tied to vLLM 0.34).

Files: ``engine.py`` (``VLLMEngine``: options, token-id prompts, the choice of backend), ``offline.py`` (the
``vllm.LLM`` backend and its driver thread), ``async_llm.py`` (the ``AsyncLLM`` backend on its private loop),
``outputs.py`` (what both share), ``label_scores.py`` (the label requests), ``speculative.py`` (our options as
vLLM's ``speculative_config``), ``suffix_cache.py`` (seeding the suffix corpus), ``raw.py`` (vLLM's own
outputs, for parity checks and benchmarks).
"""

from guardreasoner.engines.vllm.engine import BACKENDS, Backend, VLLMEngine

__all__ = ["BACKENDS", "Backend", "VLLMEngine"]
