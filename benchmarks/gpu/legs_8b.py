"""``vllm_perf.py``'s ``step_8b`` leg: what speculation would do for the 8B guard, as a labelled model.

No 8B stand-in can be trained in a session's GPU time, so the 8B's speed-ups are a model built on measured step
costs, not a measurement of speculative decoding on the 8B:

- the Llama-3.1-8B and Llama-3.2-1B architectures with random weights (``load_format="dummy"``, Llama 3's
  128,256-id vocabulary) on vLLM: a decode step's cost at batch 1, 64 and 512, and the cost of one
  verification forward of 1 + k new tokens per sequence on a prefix-cached context;
- suffix decoding: tokens per target step from the stand-in 1B's measured mean accepted length (the same
  formulaic reasoning; the 8B's own would differ), and the 2.70x fewer target steps simulated by replaying the
  released outputs (issue 14);
- the 1B guard drafting for the 8B (``speculative="<1B path>"``, vLLM's draft-model method): each target step
  costs one verification of k drafts plus k decode steps of the 1B; a draft token is accepted with
  probability p, for p around 0.65, the share of tokens the released 1B and 8B outputs have in common, so a
  step yields (1 - p^(k+1)) / (1 - p) tokens (drafts stop at the first rejection).
"""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path

from llama_configs import LLAMA_1B, LLAMA_8B
from standin_guard import build_model_dir
from vllm_suite import now

SIMULATED_STEP_REDUCTION = 2.70  # suffix decoding on held-out benchmarks, replaying the released outputs
SUFFIX_K = (4, 8)
DRAFT_K = (2, 3, 4, 6)
DRAFT_ACCEPTANCE = (0.5, 0.65, 0.8)  # per-token; 0.65 ~ the released 1B and 8B outputs' shared tokens
BATCHES = (1, 64, 512)
LLAMA3_VOCAB = 128_256  # the real embedding and LM head (the stand-in's tokenizer uses the first 32,256 ids)


def step_costs(
    assets: Path, directory: Path, architecture: dict, ks: tuple[int, ...], vocab: int, memory: float
):
    """Decode-step and verification costs of one architecture with random weights, per batch size."""
    import vllm

    build_model_dir(assets, directory, architecture, weights=False, vocab_size=LLAMA3_VOCAB)
    started = now()
    llm = vllm.LLM(
        model=str(directory),
        load_format="dummy",
        dtype="bfloat16",
        gpu_memory_utilization=memory,
        seed=0,
        enable_prefix_caching=True,
    )
    build_s = round(now() - started, 1)
    rng = random.Random(0)

    def random_ids(count: int) -> list[int]:
        return [rng.randrange(100, vocab) for _ in range(count)]

    def timed(inputs, max_tokens, repeats=3) -> float:
        params = vllm.SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True)
        times = []
        for _ in range(repeats):
            t = now()
            llm.generate([{"prompt_token_ids": ids} for ids in inputs], params, use_tqdm=False)
            times.append(now() - t)
        return statistics.median(times)

    steps: dict = {}
    for batch in BATCHES:
        base = [random_ids(256) for _ in range(batch)]
        timed(base, 1, repeats=1)  # caches every prompt's full blocks (256 = 16 blocks of 16)
        decode_tokens = 64
        t_many = timed([ids + [7] for ids in base], decode_tokens, repeats=1)
        t_one = timed([ids + [7] for ids in base], 1)
        step = (t_many - t_one) / (decode_tokens - 1)
        verify = {}
        for k in ks:
            # 1 + k new tokens per sequence on a cached context: the shape of one verification forward.
            t_k = timed([ids + [7] + random_ids(k) for ids in base], 1)
            verify[str(k)] = round((step + t_k - t_one) / step, 3)
        steps[str(batch)] = {"decode_step_s": round(step, 5), "verify_cost_vs_step": verify}
    llm.llm_engine.engine_core.shutdown()
    time.sleep(3)
    return {"build_s": build_s, "steps": steps}


def tokens_per_step(p: float, k: int) -> float:
    """Expected tokens a target step yields with k drafts each accepted with probability p, in order."""
    return (1 - p ** (k + 1)) / (1 - p)


def step_8b_leg(args, data, memory: float) -> dict:
    vocab = data["bpe_ids"]
    work = args.out / "step_8b"
    target = step_costs(
        args.assets, work / "llama-8b", LLAMA_8B, tuple(sorted(set(SUFFIX_K + DRAFT_K))), vocab, memory
    )
    draft = step_costs(args.assets, work / "llama-1b", LLAMA_1B, (), vocab, memory)
    result: dict = {"llama_8b": target, "llama_1b": draft}
    measured = data.get("standin_mean_accepted_length")
    suffix = {}
    for batch, entry in target["steps"].items():
        for k in SUFFIX_K:
            cost = entry["verify_cost_vs_step"][str(k)]
            row = {"simulated_2.70x": round(SIMULATED_STEP_REDUCTION / cost, 2)}
            if measured:
                row["standin_measured"] = round(min(measured, k + 1) / cost, 2)
            suffix[f"batch {batch}, k {k}"] = row
    draft_model = {}
    for batch, entry in target["steps"].items():
        ratio = draft["steps"][batch]["decode_step_s"] / entry["decode_step_s"]
        for k in DRAFT_K:
            cost = entry["verify_cost_vs_step"][str(k)] + k * ratio
            draft_model[f"batch {batch}, k {k}"] = {
                f"p {p}": round(tokens_per_step(p, k) / cost, 2) for p in DRAFT_ACCEPTANCE
            }
        draft_model[f"batch {batch}, 1B step / 8B step"] = round(ratio, 3)
    result["modelled_speedup_suffix"] = suffix
    result["modelled_speedup_draft_1b"] = draft_model
    result["model_note"] = (
        "A model, not a measurement of speculative decoding on the 8B. Speed-up = target tokens per step / "
        "cost of a step relative to a plain decode step. Suffix: tokens per step from the simulation (2.70x) or "
        "the stand-in 1B's measured mean accepted length; cost = one verification forward of 1+k tokens per "
        "sequence (measured on a prefix-cached context, minus a 1-token forward, plus a decode step). Draft "
        "model: tokens per step (1 - p^(k+1)) / (1 - p) for a per-token acceptance p; cost = that verification "
        "plus k decode steps of the 1B (measured). Drafting's CPU cost and the draft's prefill are left out."
    )
    return result
