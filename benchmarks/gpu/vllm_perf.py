"""The vllm engine's speed, change by change, in one process on one H200, on the stand-in guard.

    python benchmarks/gpu/vllm_perf.py --model $OUT/standin/model --assets .vllm/assets/standin \\
        --out $OUT/perf --budget-s 290

Legs (each a fresh vLLM engine, in ``--legs`` order, each in try/except and skipped once the budget cannot
hold it; the JSON in ``--out`` is rewritten after every leg and a table is printed last):

- ``direct``: ``vllm.LLM`` used directly (vLLM's defaults), greedy; its 512-conversation batch is the held-out
  benchmarks' prompts, and its outputs give the stand-in's parse rate and lengths next to the released ones.
  It also runs the same 512 prompts again in 8 batches of 64 in reverse order: how often two plain runs with
  different batch compositions agree (tokens and labels), the baseline for speculation's agreement; and the
  512 batch twice more, asking for the top-20 log-probabilities per token (the engine's scores before) and for
  exactly the label candidates' (``logprob_token_ids``, the engine's scores now): what each costs vLLM.
- ``engine_old``: ``GuardReasoner(engine="vllm")`` with the old pin ``max_num_seqs=256``.
- ``engine``: the engine's defaults now (no pin: vLLM's own, 1024 on an H200; async scheduling on; scores on,
  from one 1-token request per label after generating). It also times one more 512 batch in its parts:
  preparing the prompts, vLLM's generation, the label requests, and turning outputs into verdicts (where the
  engine's time beyond ``direct``'s goes). On 2026-11-30 it ran with per-token ``logprob_token_ids`` scores.
- ``engine_noscores``: ``scores=False``: what the label scores cost.
- ``engine_async``: the same on vLLM's ``AsyncLLM`` (``backend="async"``, what a server builds), which now gets
  a server's batch defaults instead of the bare engine's 128 sequences.
- ``suffix``: ``speculative="suffix"``, its cache warmed with the training benchmarks' released outputs;
  ``suffix_k8`` / ``suffix_k4``: the same with drafts capped at 8 / 4 tokens (vLLM's default cap is the tree
  depth, 24), which keeps the verification width inside the captured CUDA graphs at larger batches.
- ``fp32_tokens``: the stand-in in float32, plain against ``speculative="suffix"`` on 64 held-out
  conversations: do speculation's tokens equal plain decoding's on every one?
- ``ngram``: ``speculative="ngram"`` (k 8, n-grams 1-3); ``ngram_gpu``: the GPU n-gram proposer, the one
  n-gram method that keeps async scheduling in vLLM 0.26.
- ``ngram_small_batch``: ``speculative="ngram"`` drafting only while at most 32 requests run
  (``speculate_up_to_batch``).
- ``step_8b``: the Llama-3.1-8B architecture with random weights (``load_format="dummy"``): decode step cost
  at batch 1/64/512, and the extra cost of verifying k draft tokens per sequence, combined with the simulated
  acceptance (2.70x fewer steps) and the stand-in's measured one, as a labelled model.
- ``fp8``: ``quantization="fp8"``; ``batch_invariant``: ``batch_invariant=True`` (optional, last).

Every engine leg measures: one verdict's latency (median of 5, different conversations), verdicts/s for 512
conversations submitted at once, 256 concurrent ``aclassify`` callers, GPU memory in use (nvidia-smi, which
``gpu_memory_utilization`` dominates), vLLM's speculative counters (acceptance rate, mean accepted length) and
label/text agreement with the plain engine's outputs on the same 512 conversations.

``--smoke`` runs the argument parsing, the asset loading, the option table and the result writing without
vLLM (a CPU check).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from standin_guard import LLAMA_8B, build_model_dir, report, tokenizer  # noqa: E402
from vllm_suite import Suite, now, timed_batch  # noqa: E402

MAX_NEW_TOKENS = 1024  # the stand-in stops on its own; a cap well above the released p99 (~400 tokens)
MEMORY = 0.40  # of the GPU per engine: two fit if a shut-down engine's memory is slow to return
SIMULATED_STEP_REDUCTION = 2.70  # suffix decoding on held-out benchmarks, replaying the released outputs
K_VALUES = (4, 8, 16)
LLAMA3_VOCAB = (
    128_256  # the 8B's real embedding and LM head (the stand-in's tokenizer uses the first 32,256 ids)
)

LEGS = {
    # name: (predicted effect, engine options); None = not an engine leg
    "direct": ("reference: vLLM's LLM() with its defaults", None),
    "engine_old": (
        "= direct at one verdict; ~0.9x direct at 512 (the 256 pin halves the batch at 512)",
        {"max_num_seqs": 256},
    ),
    "engine": (
        "0.95-1.0x direct at 512 with scores from the label requests (was 0.90x before scores)",
        {},
    ),
    "engine_noscores": (
        "= engine within 3% (logprob_token_ids is cheap); top-20 would cost ~10-30%",
        {"scores": False},
    ),
    "suffix": (
        "one verdict 0.40-0.55x direct latency if acceptance ~2.5 tokens/step; 512 at once 1.2-1.6x "
        "(async scheduling off costs some of it); labels agree as often as two plain runs",
        {"speculative": "suffix"},
    ),
    "suffix_k8": (
        "one verdict ~= suffix (0.6-0.7x direct); 512 at once 0.7-0.9x (narrower verification)",
        {"speculative": "suffix", "num_speculative_tokens": 8},
    ),
    "suffix_k4": (
        "one verdict 0.7-0.8x direct; 512 at once 0.8-1.0x",
        {"speculative": "suffix", "num_speculative_tokens": 4},
    ),
    "fp32_tokens": ("float32: suffix's tokens equal plain decoding's on all 64 conversations", None),
    "ngram": (
        "one verdict ~0.8x; 512 at once ~1.0x or worse (k 8 widens every step, few accepted)",
        {"speculative": "ngram"},
    ),
    "ngram_gpu": (
        "like ngram at one verdict, better at 512 (async scheduling kept)",
        {"speculative": "ngram_gpu"},
    ),
    "ngram_small_batch": (
        "ngram's latency at one verdict, engine's throughput at 512 (no drafts above 32 running)",
        {"speculative": "ngram", "speculate_up_to_batch": 32},
    ),
    "engine_async": (
        "vLLM's AsyncLLM backend (a server's), now with the server's batch defaults (1024 sequences, not the "
        "bare engine's 128): 256 aclassify >= engine's; one verdict = engine",
        {"backend": "async"},
    ),
    "step_8b": ("8B: k-token verification costs <1.3x a decode step at batch 1, ~(1+k)x at 512", None),
    "fp8": (
        "512 at once ~1.2x engine; labels agree with bf16 less often than two bf16 runs",
        {"quantization": "fp8"},
    ),
    "batch_invariant": (
        "0.5-0.8x engine's verdicts/s; the two batch compositions then agree 100%",
        {"batch_invariant": True},
    ),
}
DEFAULT_LEGS = "direct,suffix,engine,step_8b,engine_old,engine_async,ngram_gpu,ngram,ngram_small_batch,fp8"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def gpu_used_mib() -> int | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout.split()
        return int(out[0])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


def spec_counters(metrics: list) -> dict:
    """vLLM's speculative-decoding counters, summed over label sets."""
    names = {
        "vllm:spec_decode_num_drafts": "drafts",
        "vllm:spec_decode_num_draft_tokens": "draft_tokens",
        "vllm:spec_decode_num_accepted_tokens": "accepted_tokens",
    }
    totals = dict.fromkeys(names.values(), 0.0)
    for metric in metrics:
        key = names.get(getattr(metric, "name", ""))
        if key is not None:
            totals[key] += float(getattr(metric, "value", 0) or 0)
    return totals


def acceptance(before: dict | None, after: dict | None) -> dict | None:
    if before is None or after is None:
        return None
    delta = {k: after[k] - before[k] for k in after}
    drafts, proposed, accepted = delta["drafts"], delta["draft_tokens"], delta["accepted_tokens"]
    return {
        **{k: int(v) for k, v in delta.items()},
        "acceptance_rate": round(accepted / proposed, 3) if proposed else None,
        "mean_accepted_length": round(1 + accepted / drafts, 3) if drafts else None,
    }


def labels_of(verdict) -> tuple:
    return (verdict.prompt_harmfulness, verdict.response_refusal, verdict.response_harmfulness)


def agreement(a: list[tuple[str, tuple]], b: list[tuple[str, tuple]]) -> dict:
    """Of the same conversations: identical text, identical labels."""
    n = min(len(a), len(b))
    return {
        "n": n,
        "same_text": round(sum(a[i][0] == b[i][0] for i in range(n)) / max(1, n), 3),
        "same_labels": round(sum(a[i][1] == b[i][1] for i in range(n)) / max(1, n), 3),
    }


class Run(Suite):
    """The legs, on the suite's runner: each leg's prediction is recorded before it runs."""

    entries = "legs"
    seconds = "leg_s"
    traceback_chars = 3000

    def __init__(self, args: argparse.Namespace):
        self.args = args
        results = {"command": " ".join(sys.argv), "predictions": {}, "legs": {}}
        super().__init__(args.out / "vllm_perf.json", args.budget_s, results)
        self.args.out.mkdir(parents=True, exist_ok=True)

    def skip_note(self, needs_s: float) -> str:
        return f"{self.left():.0f} s left of the budget; needs ~{needs_s:.0f}"

    def heading(self, name: str) -> str:
        return f"\n=== {name} ({now() - self.started:.0f} s in, {self.left():.0f} s left)"

    def leg(self, name: str, function, needs_s: float) -> None:
        self.results["predictions"][name] = LEGS[name][0]
        self.run(name, function, needs_s=needs_s)


# -- the legs ------------------------------------------------------------------------------------------------


def direct_leg(args, data) -> dict:
    import vllm
    from guardreasoner.parsing import parse_output
    from guardreasoner.prompt import build_prompt

    started = now()
    llm = vllm.LLM(
        model=str(args.model),
        dtype="bfloat16",
        gpu_memory_utilization=MEMORY,
        seed=0,
        enable_prefix_caching=True,
    )
    result: dict = {"build_s": round(now() - started, 1), "gpu_used_mib_built": gpu_used_mib()}
    params = vllm.SamplingParams(temperature=0.0, max_tokens=MAX_NEW_TOKENS)
    prompts = lambda rows: [build_prompt(r["prompt"], r["response"]) for r in rows]  # noqa: E731
    llm.generate(prompts(data["warmup"]), params, use_tqdm=False)
    latencies = []
    for row in data["single"]:
        t = now()
        llm.generate(prompts([row]), params, use_tqdm=False)
        latencies.append(now() - t)
    result["one_verdict_s"] = round(statistics.median(latencies), 4)
    t = now()
    outputs = llm.generate(prompts(data["batch"]), params, use_tqdm=False)
    wall = now() - t
    generated = sum(len(o.outputs[0].token_ids) for o in outputs)
    result["batch_512"] = {
        "wall_s": round(wall, 3),
        "verdicts_per_s": round(len(outputs) / wall, 1),
        "generated_tokens_per_s": round(generated / wall),
    }
    # What scores cost vLLM itself: the same batch asking for log-probabilities two ways.
    from guardreasoner.scores import LabelTokens

    candidates = list(LabelTokens.from_tokenizer(data["tokenizer"]).candidate_ids)
    for name, extra in (("top20", {"logprobs": 20}), ("candidates", {"logprob_token_ids": candidates})):
        with_logprobs = vllm.SamplingParams(temperature=0.0, max_tokens=MAX_NEW_TOKENS, **extra)
        t = now()
        llm.generate(prompts(data["batch"]), with_logprobs, use_tqdm=False)
        seconds = now() - t
        result[f"batch_512_logprobs_{name}"] = {
            "wall_s": round(seconds, 3),
            "verdicts_per_s": round(len(data["batch"]) / seconds, 1),
            "vs_no_logprobs": round(wall / seconds, 3),
        }
    texts = [o.outputs[0].text for o in outputs]
    rows = data["batch"]
    verdicts = [
        parse_output(t, has_response=r["response"] is not None, finish_reason=o.outputs[0].finish_reason)
        for t, r, o in zip(texts, rows, outputs)
    ]
    data["plain"] = [(t, labels_of(v)) for t, v in zip(texts, verdicts)]
    result["standin_report"] = report(
        rows,
        texts,
        [len(o.outputs[0].token_ids) for o in outputs],
        [o.outputs[0].finish_reason for o in outputs],
        data["tokenizer"],
    )
    # The same prompts again, 8 batches of 64 in reverse order: another batch composition.
    again: dict[int, str] = {}
    order = list(range(len(rows)))[::-1]
    for start in range(0, len(order), 64):
        chunk = order[start : start + 64]
        for i, out in zip(chunk, llm.generate(prompts([rows[i] for i in chunk]), params, use_tqdm=False)):
            again[i] = out.outputs[0].text
    second = [
        (again[i], labels_of(parse_output(again[i], has_response=rows[i]["response"] is not None)))
        for i in range(len(rows))
    ]
    result["plain_vs_plain_other_batches"] = agreement(data["plain"], second)

    # vLLM's LLM has no async API: the closest direct equivalent of 256 concurrent callers is one batch of them.
    t = now()
    llm.generate(prompts(data["concurrent"]), params, use_tqdm=False)
    wall = now() - t
    result["batch_256_unseen"] = {"wall_s": round(wall, 3), "verdicts_per_s": round(256 / wall, 1)}
    result["gpu_used_mib_peak"] = gpu_used_mib()
    llm.llm_engine.engine_core.shutdown()
    time.sleep(3)
    return result


def vllm_guard(args, dtype: str, **options):
    """The stand-in guard on the vLLM engine, as the engine legs build it (``options`` on top)."""
    from guardreasoner.guard import GuardReasoner

    return GuardReasoner(
        str(args.model),
        engine="vllm",
        max_new_tokens=MAX_NEW_TOKENS,
        dtype=dtype,
        gpu_memory_utilization=MEMORY,
        **options,
    )


def engine_leg(args, data, options: dict) -> dict:
    started = now()
    guard = vllm_guard(args, "bfloat16", disable_log_stats=False, **options)
    engine = guard.engine
    result: dict = {"options": dict(options)}
    conversations = lambda rows: [(r["prompt"], r["response"]) for r in rows]  # noqa: E731
    try:
        guard.classify_batch(conversations(data["warmup"]))  # builds the offline vLLM engine
        result["build_s"] = round(now() - started, 1)
        result["gpu_used_mib_built"] = gpu_used_mib()
        if options.get("speculative") == "suffix":
            t = now()
            result["suffix_cache_warmed"] = engine.warm_suffix_cache(data["warm_pairs"])
            result["warm_s"] = round(now() - t, 1)
        # vLLM's counters are read from the offline LLM; the async backend's are not exposed here.
        counters = lambda: spec_counters(engine.vllm_metrics()) if engine.backend == "offline" else None  # noqa: E731
        before = counters()
        latencies = []
        for prompt, response in conversations(data["single"]):
            t = now()
            guard.classify(prompt, response)
            latencies.append(now() - t)
        result["one_verdict_s"] = round(statistics.median(latencies), 4)
        mid = counters()
        result["acceptance_one_verdict"] = acceptance(before, mid)
        verdicts, wall, generated = timed_batch(guard, conversations(data["batch"]))
        result["batch_512"] = {
            "wall_s": round(wall, 3),
            "verdicts_per_s": round(len(verdicts) / wall, 1),
            "generated_tokens_per_s": round(generated / wall),
            "parse_status": dict(Counter(v.parse_status.value for v in verdicts)),
        }
        after = counters()
        result["acceptance_batch_512"] = acceptance(mid, after)
        if not options:
            try:
                result["batch_512_parts"] = engine_parts(guard, conversations(data["batch"]))
            except Exception as exc:  # noqa: BLE001 - a diagnostic; the leg's figures stand without it
                result["batch_512_parts"] = {"error": f"{type(exc).__name__}: {exc}"}
        mine = [(v.raw_output, labels_of(v)) for v in verdicts]
        if data.get("plain"):
            result["vs_plain_direct"] = agreement(data["plain"], mine)
        if options == {}:
            data["engine_plain"] = mine
        elif data.get("engine_plain"):
            result["vs_plain_engine"] = agreement(data["engine_plain"], mine)

        async def concurrent() -> dict:
            async def one(prompt, response):
                t = now()
                await guard.aclassify(prompt, response)
                return now() - t

            t = now()
            latencies = await asyncio.gather(*(one(p, r) for p, r in conversations(data["concurrent"])))
            wall = now() - t
            return {
                "calls": len(latencies),
                "wall_s": round(wall, 3),
                "verdicts_per_s": round(len(latencies) / wall, 1),
                "latency_p50_s": round(statistics.median(latencies), 3),
            }

        result["aclassify_256"] = asyncio.run(concurrent())
        result["gpu_used_mib_peak"] = gpu_used_mib()
    finally:
        guard.close()
    time.sleep(3)  # let the engine core process exit and return its memory
    return result


def engine_parts(guard, items) -> dict:
    """One more 512 batch through the guard's own steps, each timed: where the time beyond vLLM's goes."""
    from guardreasoner.engines.vllm.outputs import to_generation

    engine = guard.engine
    t = now()
    conversations, prompts, cut = guard._prepare(items)
    prepare = now() - t
    t = now()
    outputs = engine._outputs(prompts, guard.generation)
    generate = now() - t
    t = now()
    scored = engine._scored(outputs, each=False)  # the label requests (engines/vllm/label_scores.py)
    label_requests = now() - t
    t = now()
    generations = [to_generation(o, found) for o, found in scored]
    convert = now() - t
    t = now()
    guard._decide(guard._verdicts(conversations, generations, cut))
    parse = now() - t
    return {
        "prepare_s": round(prepare, 3),
        "vllm_generate_s": round(generate, 3),
        "label_requests_s": round(label_requests, 3),
        "outputs_to_generations_s": round(convert, 3),
        "parse_score_decide_s": round(parse, 3),
    }


def fp32_tokens_leg(args, data) -> dict:
    """Float32: plain decoding's tokens against suffix decoding's, on the same 64 held-out conversations."""
    rows = [(r["prompt"], r["response"]) for r in data["batch"][:64]]
    texts: dict[str, list[str]] = {}
    result: dict = {"n": len(rows)}
    for name, options in (("plain", {}), ("suffix", {"speculative": "suffix"})):
        t = now()
        guard = vllm_guard(args, "float32", **options)
        try:
            guard.classify_batch(rows[:2])  # builds the engine
            if options:
                result["suffix_cache_warmed"] = guard.engine.warm_suffix_cache(data["warm_pairs"])
            texts[name] = [v.raw_output for v in guard.classify_batch(rows)]
        finally:
            guard.close()
        result[f"{name}_s"] = round(now() - t, 1)
        time.sleep(3)
    same = [a == b for a, b in zip(texts["plain"], texts["suffix"])]
    result["same_text"] = sum(same)
    result["all_equal"] = all(same)
    result["first_differences"] = [
        {
            "index": i,
            "at_char": next((j for j, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b))),
        }
        for i, (a, b) in enumerate(zip(texts["plain"], texts["suffix"]))
        if a != b
    ][:10]
    return result


def step_8b_leg(args, data) -> dict:
    """Measured step costs of the 8B architecture (random weights) and a labelled model of speculation on it."""
    import random

    import vllm

    directory = args.out / "llama-8b-config"
    info = build_model_dir(args.assets, directory, LLAMA_8B, weights=False, vocab_size=LLAMA3_VOCAB)
    started = now()
    llm = vllm.LLM(
        model=str(directory),
        load_format="dummy",
        dtype="bfloat16",
        gpu_memory_utilization=MEMORY,
        seed=0,
        enable_prefix_caching=True,
    )
    result: dict = {"model": info, "build_s": round(now() - started, 1)}
    vocab = data["bpe_ids"]
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
    for batch in (1, 64, 512):
        base = [random_ids(256) for _ in range(batch)]
        timed(base, 1, repeats=1)  # caches every prompt's full blocks (256 = 16 blocks of 16)
        decode_tokens = 64
        t_many = timed([ids + [7] for ids in base], decode_tokens, repeats=1)
        t_one = timed([ids + [7] for ids in base], 1)
        step = (t_many - t_one) / (decode_tokens - 1)
        verify = {}
        for k in K_VALUES:
            # 1 + k new tokens per sequence on a cached context: the shape of one verification forward.
            t_k = timed([ids + [7] + random_ids(k) for ids in base], 1)
            verify[k] = {
                "extra_s": round(t_k - t_one, 5),
                "cost_vs_decode_step": round((step + t_k - t_one) / step, 3),
            }
        steps[batch] = {"decode_step_s": round(step, 5), "verify": verify}
    result["steps"] = steps
    measured = data.get("standin_mean_accepted_length")
    model = {}
    for batch, entry in steps.items():
        for k, v in entry["verify"].items():
            cost = v["cost_vs_decode_step"]
            row = {"simulated_2.70x": round(SIMULATED_STEP_REDUCTION / cost, 2)}
            if measured:
                row["standin_measured"] = round(min(measured, k + 1) / cost, 2)
            model[f"batch {batch}, k {k}"] = row
    result["modelled_speedup"] = model
    result["model_note"] = (
        "speed-up = (target steps saved) / (cost of a verification step relative to a decode step); the "
        "verification cost is measured as one forward of 1+k new tokens per sequence on a prefix-cached context "
        "minus one of 1 token, added to the measured decode step; drafting cost (CPU) is not included. A model, "
        "not a measurement of speculative decoding on the 8B."
    )
    llm.llm_engine.engine_core.shutdown()
    time.sleep(3)
    return result


# -- the run -------------------------------------------------------------------------------------------------


def load_data(args) -> dict:
    heldout = read_jsonl(args.assets / "heldout.jsonl")
    workload = read_jsonl(args.assets / "workload.jsonl")
    heldout_prompts = {(r["prompt"], r["response"]) for r in heldout}
    unseen = [r for r in workload if (r["prompt"], r["response"]) not in heldout_prompts]
    train = read_jsonl(args.assets / "train.jsonl")
    meta = json.loads((args.assets / "meta.json").read_text())
    return {
        "tokenizer": tokenizer(args.assets),
        "bpe_ids": meta["vocab"]["bpe_ids"],
        "warmup": unseen[:8],
        "single": unseen[8:13],
        "concurrent": unseen[13:269],
        "batch": heldout[:512],
        "warm_pairs": [(r["instruction"] + "\n" + r["input"], r["output"]) for r in train],
    }


def table(results: dict) -> str:
    legs = results["legs"]
    direct = legs.get("direct", {})
    base_one = direct.get("one_verdict_s")
    base_batch = direct.get("batch_512", {}).get("verdicts_per_s")
    lines = [
        "| leg | one verdict (s) | vs direct | 512 at once (/s) | vs direct | 256 aclassify (/s) | "
        "mean accepted length | same labels as plain | GPU MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, leg in legs.items():
        if "skipped" in leg or "error" in leg or name in ("step_8b", "fp32_tokens"):
            lines.append(
                f"| {name} | {leg.get('skipped') or leg.get('error', '')[:80] or 'see JSON'} ||||||||"
            )
            continue
        one = leg.get("one_verdict_s")
        per_s = leg.get("batch_512", {}).get("verdicts_per_s")
        agree = (
            leg.get("vs_plain_engine")
            or leg.get("vs_plain_direct")
            or leg.get("plain_vs_plain_other_batches")
        )
        accepted = (leg.get("acceptance_batch_512") or {}).get("mean_accepted_length")
        lines.append(
            f"| {name} | {one} | {round(one / base_one, 2) if one and base_one else ''} | {per_s} | "
            f"{round(per_s / base_batch, 2) if per_s and base_batch else ''} | "
            f"{leg.get('aclassify_256', {}).get('verdicts_per_s', '')} | {accepted or ''} | "
            f"{agree.get('same_labels') if agree else ''} | {leg.get('gpu_used_mib_peak', '')} |"
        )
    return "\n".join(lines)


def environment() -> dict:
    info = {"date": datetime.date.today().isoformat(), "python": sys.version.split()[0]}
    try:
        import torch
        import transformers
        import vllm

        info |= {
            "gpu": torch.cuda.get_device_name(0),
            "torch": torch.__version__,
            "vllm": vllm.__version__,
            "transformers": transformers.__version__,
        }
    except Exception as exc:  # noqa: BLE001 - --smoke runs without them
        info["missing"] = f"{type(exc).__name__}: {exc}"
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="the stand-in guard (standin_guard.py)")
    parser.add_argument("--assets", type=Path, required=True, help="standin_assets.py's output")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget-s", type=float, default=290.0)
    parser.add_argument(
        "--legs", default=DEFAULT_LEGS, help=f"comma-separated, in order; of {', '.join(LEGS)}"
    )
    parser.add_argument("--smoke", action="store_true", help="no vLLM: parse, load the assets, write results")
    args = parser.parse_args()
    names = [n.strip() for n in args.legs.split(",") if n.strip()]
    unknown = [n for n in names if n not in LEGS]
    if unknown:
        parser.error(f"unknown legs {unknown}; choose from {', '.join(LEGS)}")
    run = Run(args)
    run.results["environment"] = environment()
    data = load_data(args)
    run.results["workload"] = {
        k: len(data[k]) for k in ("warmup", "single", "concurrent", "batch", "warm_pairs")
    }
    # Rough seconds per leg (engine build with a warm compile cache + measurements), for the budget.
    needs = {"direct": 70, "step_8b": 70, "batch_invariant": 60, "fp32_tokens": 80}
    if args.smoke:  # the CPU part of the 8B leg: its config directory
        run.results["smoke_8b_config"] = build_model_dir(
            args.assets, args.out / "llama-8b-config", LLAMA_8B, weights=False, vocab_size=LLAMA3_VOCAB
        )
    for name in names:
        if args.smoke:
            run.results["predictions"][name] = LEGS[name][0]
            run.results["legs"][name] = {"skipped": "--smoke: no vLLM"}
            run.write()
            continue
        if name == "direct":
            function = lambda: direct_leg(args, data)  # noqa: E731
        elif name == "step_8b":
            function = lambda: step_8b_leg(args, data)  # noqa: E731
        elif name == "fp32_tokens":
            function = lambda: fp32_tokens_leg(args, data)  # noqa: E731
        else:
            function = lambda options=LEGS[name][1]: engine_leg(args, data, options)  # noqa: E731
        run.leg(name, function, needs.get(name, 45))
        if name.startswith("suffix"):
            accepted = (run.results["legs"][name].get("acceptance_batch_512") or {}).get(
                "mean_accepted_length"
            )
            data["standin_mean_accepted_length"] = accepted
    run.write()
    print("\n" + table(run.results), flush=True)


if __name__ == "__main__":
    main()
