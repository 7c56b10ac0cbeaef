"""Speculative decoding for the vllm engine: our option names, turned into vLLM's ``speculative_config``.

Greedy decoding with exact verification keeps the model's own tokens; speculation only removes target steps,
and it pays only when drafts are accepted and verification is cheap (``benchmarks/gpu/vllm_perf.py``).

On vLLM 0.34 every method runs on Model Runner V2 (the only model runner since 0.34 removed V1; setting
``VLLM_USE_V2_MODEL_RUNNER`` to anything but 1 makes vLLM refuse to start) with async scheduling on, which
vLLM turns on by default for every speculative method (``async_scheduling=False`` turns it off). vLLM 0.26
ran only EAGLE, ``ngram_gpu``, ``draft_model`` and DSpark with async scheduling.

* ``"suffix"`` (vLLM 0.34 or newer): Model Runner V2's GPU suffix speculator
  (``vllm/v1/worker/gpu/spec_decode/suffix/``, no arctic-inference): drafts from the longest match of the
  request's own history and of a cross-request corpus of earlier responses (``suffix_cache.py`` says how it
  fills). GuardReasoner's reasoning is formulaic, which is what the corpus exploits. By default it drafts
  :data:`SUFFIX_TOKENS` tokens, verifies adaptively (:data:`SUFFIX_ADAPTIVE_VERIFICATION`: each step verifies
  only the draft slots that a cost model, profiled when the engine starts, says pay for themselves) and stops
  drafting above :data:`SUFFIX_UP_TO_BATCH` running requests. vLLM 0.26's suffix decoding (arctic-inference,
  Model Runner V1, no async scheduling, a step about 3x a plain one) is not supported.
* ``"ngram"``, ``"ngram_gpu"``: prompt lookup. On vLLM 0.34 both names run the same GPU n-gram speculator; on
  0.26 ``"ngram"`` ran on the CPU and only ``"ngram_gpu"`` kept async scheduling.
* anything else: a draft model, a local directory or a Hugging Face hub id (``method: "draft_model"``, Model
  Runner V2's ``standalone_ar`` speculator on 0.34), e.g. the 1B guard drafting for the 8B (same tokenizer,
  same training data). It drafts :data:`DRAFT_MODEL_TOKENS` tokens by default.

``speculate_up_to_batch`` turns drafting off above that many running requests, through vLLM's
``num_speculative_tokens_per_batch_size`` schedule ``[(1, n, K), (n + 1, ..., 0)]``. ``speculative_options``
are vLLM's own ``SpeculativeConfig`` fields, applied last (``{"enable_adaptive_verification": False}``,
``{"suffix_decoding_corpus_tokens": 0}``, ``{"num_speculative_tokens_per_batch_size": None}`` to draft at
every batch size, ...).
"""

from __future__ import annotations

import os
import re
from typing import Any

from guardreasoner.errors import EngineLoadError

METHODS = ("suffix", "ngram", "ngram_gpu")
OFF = (None, "off", "none")
# The n-gram window that saved the most target steps in the replay of the released outputs (issue 14).
NGRAM_DEFAULTS = {"num_speculative_tokens": 8, "prompt_lookup_min": 1, "prompt_lookup_max": 3}

# The defaults of speculative="suffix" (vLLM 0.34). Placeholders from vLLM's own defaults until the GPU
# measurements of issue 21 replace them (the lead fills the measured values, with the run that measured them):
SUFFIX_TOKENS = 8
"""Draft length K: vLLM 0.34's default for suffix decoding, min(8, suffix_decoding_max_tree_depth=24)."""
SUFFIX_UP_TO_BATCH: int | None = None
"""Above this many running requests K drops to 0. None: drafting at every batch size (vLLM's default, no
schedule); adaptive verification then decides per step how many draft slots to verify."""
SUFFIX_ADAPTIVE_VERIFICATION = True
"""Verify only the draft slots that pay (vLLM's default is off). It needs full CUDA graphs, so the engine leaves
it off with ``enforce_eager=True``."""

DRAFT_MODEL_TOKENS = 4
"""Draft length K of a draft model (a smaller guard), also a placeholder for the lead's measurement: the
released 1B and 8B outputs share about 65% of their tokens; were a draft accepted that often, four in a row
would hold 18% of the time, so longer drafts would rarely pay."""

SUFFIX_MIN_VLLM = (0, 34)
# Above max_num_seqs no batch exists; vLLM clips the schedule to its own max_num_seqs.
_LARGEST_BATCH = 1 << 20
# vLLM 0.34 keeps these fields but ignores them for the GPU suffix speculator.
_SUFFIX_NO_OPS = ("suffix_decoding_max_spec_factor", "suffix_decoding_min_token_prob")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def speculative_config(
    speculative: str | None,
    *,
    num_speculative_tokens: int | None = None,
    speculate_up_to_batch: int | None = None,
    options: dict[str, Any] | None = None,
    eager: bool = False,
) -> dict[str, Any] | None:
    """vLLM's ``speculative_config`` for our options, or None for no speculation.

    ``options`` are vLLM's own ``SpeculativeConfig`` fields, applied last; ``eager`` says the engine runs
    without CUDA graphs (``enforce_eager=True``), where suffix decoding's adaptive verification cannot run.
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
    if speculate_up_to_batch is not None and speculate_up_to_batch < 1:
        raise ValueError(f"speculate_up_to_batch must be at least 1; got {speculate_up_to_batch}.")
    options = dict(options or {})
    if speculate_up_to_batch is not None and "num_speculative_tokens_per_batch_size" in options:
        raise ValueError(
            "Pass speculate_up_to_batch or vLLM's num_speculative_tokens_per_batch_size in speculative_options, "
            "not both."
        )
    if speculative == "suffix":
        no_ops = sorted(set(options) & set(_SUFFIX_NO_OPS))
        if no_ops:
            raise ValueError(
                f"{', '.join(no_ops)} have no effect on vLLM 0.34's GPU suffix speculator (it always drafts "
                "num_speculative_tokens tokens); drop them from speculative_options."
            )
        config: dict[str, Any] = {
            "method": "suffix",
            "num_speculative_tokens": SUFFIX_TOKENS,
            "enable_adaptive_verification": SUFFIX_ADAPTIVE_VERIFICATION and not eager,
        }
        if speculate_up_to_batch is None:
            speculate_up_to_batch = SUFFIX_UP_TO_BATCH
    elif speculative in ("ngram", "ngram_gpu"):
        config = {"method": speculative, **NGRAM_DEFAULTS}
    else:
        config = {
            "method": "draft_model",
            "model": draft_model(speculative),
            "num_speculative_tokens": DRAFT_MODEL_TOKENS,
        }
    if num_speculative_tokens is not None:
        config["num_speculative_tokens"] = num_speculative_tokens
    config.update(options)
    if speculate_up_to_batch is not None and "num_speculative_tokens_per_batch_size" not in options:
        k = config["num_speculative_tokens"]
        config["num_speculative_tokens_per_batch_size"] = [
            (1, speculate_up_to_batch, k),
            (speculate_up_to_batch + 1, _LARGEST_BATCH, 0),
        ]
    if eager and config.get("enable_adaptive_verification"):
        raise ValueError(
            "Adaptive verification needs full CUDA graphs, which enforce_eager=True turns off: drop one of "
            "them (speculative_options={'enable_adaptive_verification': False})."
        )
    return config


def draft_model(path: str) -> str:
    """A draft model's path as vLLM takes it: a local directory with a ``config.json``, or a hub id."""
    expanded = os.path.expanduser(path)
    if os.path.isdir(expanded):
        if not os.path.isfile(os.path.join(expanded, "config.json")):
            raise ValueError(
                f"speculative={path!r} is a directory without a config.json, so not a model: pass a draft "
                "model's directory (e.g. a smaller GuardReasoner) or its Hugging Face hub id."
            )
        return os.path.abspath(expanded)
    if _HUB_ID.fullmatch(path):
        return path
    raise ValueError(
        f"speculative={path!r} is not 'suffix', 'ngram', 'ngram_gpu', an existing model directory or a Hugging "
        "Face hub id (org/name): pass one of those, or None for no speculation."
    )


def check_suffix_support(vllm: Any) -> None:
    """Raise :class:`EngineLoadError` unless ``vllm`` (the module) has the GPU suffix speculator (0.34+)."""
    version = getattr(vllm, "__version__", "")
    found = re.match(r"(\d+)\.(\d+)", version)
    if found and (int(found[1]), int(found[2])) < SUFFIX_MIN_VLLM:
        raise EngineLoadError(
            f"speculative='suffix' runs on vLLM 0.34's GPU suffix speculator (Model Runner V2); this is vLLM "
            f'{version}. Upgrade with: pip install "guardreasoner[vllm-suffix]", or pick speculative='
            "'ngram_gpu' or a draft model."
        )
