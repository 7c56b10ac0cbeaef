"""Speculative decoding for the vllm engine: our option names, turned into vLLM 0.26's ``speculative_config``.

Greedy decoding with exact verification keeps the model's own tokens; speculation only removes target steps,
and it pays only when drafts are accepted and verification is cheap (``benchmarks/gpu/vllm_perf.py``).

* ``"suffix"``: Arctic Inference's suffix decoding (``pip install arctic-inference``): drafts from a suffix
  tree of the prompt and of the model's earlier outputs. GuardReasoner's reasoning is formulaic, which is what
  the cache exploits (simulated on the released outputs: 2.70x fewer target steps on held-out benchmarks).
* ``"ngram"``: prompt lookup on the CPU; ``"ngram_gpu"``: the same on the GPU, the one n-gram method that
  vLLM 0.26 runs with async scheduling.
* anything else: a path to a draft model (``method: "draft_model"``), e.g. a smaller guard.

``speculate_up_to_batch`` turns drafting off above that many running requests, through vLLM 0.26's
``num_speculative_tokens_per_batch_size`` schedule. vLLM 0.26's suffix proposer asserts a fixed number of
draft tokens (``SuffixDecodingProposer.propose``), so the schedule is refused for ``"suffix"`` here instead
of crashing the engine mid-batch.
"""

from __future__ import annotations

from typing import Any

METHODS = ("suffix", "ngram", "ngram_gpu")
OFF = (None, "off", "none")
# The n-gram window that saved the most target steps in the replay of the released outputs (issue 14).
NGRAM_DEFAULTS = {"num_speculative_tokens": 8, "prompt_lookup_min": 1, "prompt_lookup_max": 3}
DRAFT_MODEL_TOKENS = 4
# Above max_num_seqs no batch exists; vLLM clips the schedule to its own max_num_seqs.
_LARGEST_BATCH = 1 << 20


def speculative_config(
    speculative: str | None,
    *,
    num_speculative_tokens: int | None = None,
    speculate_up_to_batch: int | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """vLLM's ``speculative_config`` for our options, or None for no speculation.

    ``options`` are vLLM's own ``SpeculativeConfig`` fields (``suffix_decoding_max_spec_factor``, ...),
    applied last.
    """
    if speculative in OFF:
        if num_speculative_tokens is not None or speculate_up_to_batch is not None or options:
            raise ValueError(
                "num_speculative_tokens, speculate_up_to_batch and speculative_options need speculation: "
                "pass speculative='suffix', 'ngram', 'ngram_gpu' or a draft model path."
            )
        return None
    if not isinstance(speculative, str) or not speculative.strip():
        raise ValueError(
            f"speculative must be None, 'off', one of {', '.join(METHODS)}, or a draft model path; "
            f"got {speculative!r}."
        )
    if num_speculative_tokens is not None and num_speculative_tokens < 1:
        raise ValueError(f"num_speculative_tokens must be at least 1; got {num_speculative_tokens}.")
    if speculative == "suffix":
        config: dict[str, Any] = {"method": "suffix"}  # vLLM's default k: the suffix tree depth (24)
    elif speculative in ("ngram", "ngram_gpu"):
        config = {"method": speculative, **NGRAM_DEFAULTS}
    else:
        config = {"method": "draft_model", "model": speculative, "num_speculative_tokens": DRAFT_MODEL_TOKENS}
    if num_speculative_tokens is not None:
        config["num_speculative_tokens"] = num_speculative_tokens
    if speculate_up_to_batch is not None:
        if speculative == "suffix":
            raise ValueError(
                "speculate_up_to_batch cannot be used with speculative='suffix': vLLM 0.26's suffix proposer "
                "needs a fixed number of draft tokens. Use 'ngram', 'ngram_gpu' or a draft model, or leave "
                "suffix decoding on for every batch size."
            )
        if speculate_up_to_batch < 1:
            raise ValueError(f"speculate_up_to_batch must be at least 1; got {speculate_up_to_batch}.")
        k = config["num_speculative_tokens"]
        config["num_speculative_tokens_per_batch_size"] = [
            (1, speculate_up_to_batch, k),
            (speculate_up_to_batch + 1, _LARGEST_BATCH, 0),
        ]
    config.update(options or {})
    return config
