"""The vllm engine's speed, change by change, in one process on one GPU, on the stand-in guard.

    bash benchmarks/gpu/run.sh standin perf:560=direct,engine,suffix     # on a machine staged by stage.sh
    python benchmarks/gpu/vllm_perf.py --model $HOME/standin/model --assets $GPU_ASSETS/standin --out DIR

Legs (each a fresh vLLM engine, in ``--legs`` order, each in try/except and skipped once the budget cannot
hold it; the JSON in ``--out`` is rewritten after every leg, with each leg's predicted effect written before it
runs, and a table is printed last):

- ``direct``: ``vllm.LLM`` used directly (vLLM's defaults: on 0.34 Model Runner V2 with async scheduling),
  greedy; its 512-conversation batch is the held-out benchmarks' prompts, and its outputs give the stand-in's
  parse rate and lengths next to the released ones. It also runs the same 512 prompts again in 8 batches of 64
  in reverse order (how often two plain runs with different batch compositions agree: the baseline for
  speculation's agreement), batches of 16, 64 and 256 (the throughput curve a speculation schedule is chosen
  on) and one batch of 256 unseen conversations (the reference for 256 concurrent ``aclassify`` callers).
- ``engine``: ``GuardReasoner(engine="vllm")`` with its defaults (scores on, from one 1-token request per label
  after generating); it also times one more 512 batch in its parts (preparing, vLLM's generation, the label
  requests, turning outputs into verdicts). ``engine_noscores``: ``scores=False``: what the scores cost.
  ``engine_async``: the same on vLLM's ``AsyncLLM`` (``backend="async"``, what a server builds).
- ``suffix``: ``speculative="suffix"`` with the engine's defaults (``engines/vllm/speculative.py``: the GPU
  suffix speculator, adaptive verification), its corpus seeded with the training benchmarks' released outputs;
  with the same batch curve as ``direct``. ``suffix_noadaptive``: every draft slot verified. ``suffix_k4``:
  drafts of at most 4 tokens. ``suffix_tuned``: drafting off above the largest batch at which ``suffix`` beat
  ``direct`` on the curve (``speculate_up_to_batch``; kept between calls, so it may follow them in a later one).
- ``fp32_tokens``: the stand-in in float32, plain against ``speculative="suffix"`` (seeded corpus) on 64
  held-out conversations: do speculation's tokens equal plain decoding's on every one?
- ``modes``: answer-first (``reasoning=``, ``legs_modes.py``): never / auto / always on one engine, and the
  5-token classifier-shaped call.
- ``ngram_gpu``: the GPU n-gram speculator (on 0.34 ``"ngram"`` runs the same one).
- ``step_8b``: the Llama-3.1-8B and -3.2-1B architectures with random weights: step costs, verification
  costs, and a labelled model of suffix and draft-model speculation on the 8B (``legs_8b.py``).
- ``fp8``: ``quantization="fp8"``; ``batch_invariant``: ``batch_invariant=True``.

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
from legs_8b import LLAMA3_VOCAB, step_8b_leg  # noqa: E402
from legs_modes import modes_leg  # noqa: E402
from llama_configs import LLAMA_8B  # noqa: E402
from standin_guard import build_model_dir, report, tokenizer  # noqa: E402
from vllm_suite import Suite, now, timed_batch  # noqa: E402

MAX_NEW_TOKENS = 1024  # the stand-in stops on its own; a cap well above the released p99 (~400 tokens)
MEMORY = 0.40  # of the GPU per engine: two fit if a shut-down engine's memory is slow to return

SWEEP = (16, 64, 256)  # batch sizes of the throughput curve, besides 1 (one verdict) and 512
CARRIED = ("curves", "plain", "engine_plain", "standin_mean_accepted_length")
"""What a leg leaves for later legs (the plain outputs agreement is measured against, the throughput curves,
the measured acceptance), kept beside the model so that legs split over several calls on one machine see it."""

# Predictions written before the run of 2026-12-07 (vLLM 0.34.0, one H200), the first on vLLM 0.34.
LEGS = {
    # name: (predicted effect, engine options); None = not an engine leg
    "direct": ("reference: vLLM's LLM() with its defaults (Model Runner V2, async scheduling)", None),
    "engine": (
        "one verdict 1.03-1.10x direct (the label requests: one prefix-cached prefill of ~3 tokens); 512 at "
        "once 0.90-1.0x direct",
        {},
    ),
    "engine_noscores": (
        "512 at once 0.97-1.03x direct; engine at most 1.10x this leg's time",
        {"scores": False},
    ),
    "engine_async": ("one verdict = engine; 256 aclassify >= engine's", {"backend": "async"}),
    "suffix": (
        "one verdict 0.30-0.40x direct (3.4-4.7 accepted tokens a step, as on 0.26, at ~1.2x a plain step with "
        "async scheduling); 512 at once 0.9-1.2x (adaptive verification trims the slots as the batch grows); "
        "labels agree with plain as often as two plain runs",
        {"speculative": "suffix"},
    ),
    "suffix_noadaptive": (
        "one verdict = suffix; 512 at once 0.6-0.9x direct (all 8 slots verified at every batch size)",
        {"speculative": "suffix", "speculative_options": {"enable_adaptive_verification": False}},
    ),
    "suffix_k4": (
        "one verdict 0.35-0.45x direct (fewer tokens per step); 512 at once 0.9-1.1x",
        {"speculative": "suffix", "num_speculative_tokens": 4},
    ),
    "suffix_tuned": (
        "one verdict = suffix; 512 at once >= 1.0x direct (no drafts above the crossover batch)",
        {"speculative": "suffix"},  # speculate_up_to_batch: from the curve, at run time
    ),
    "fp32_tokens": ("float32: suffix's tokens equal plain decoding's on all 64 conversations", None),
    "modes": (
        "never: one verdict within 2x the 5-token call (~25 ms on the 1B: prefill, ~12 tokens); auto at the "
        "calibrated band: >=99% label agreement with always at <=0.3x its mean time; 512 at once: never ~5x "
        "always's verdicts/s",
        None,
    ),
    "ngram_gpu": (
        "one verdict ~0.8x direct (few n-gram drafts accepted); 512 at once ~1.0x",
        {"speculative": "ngram_gpu"},
    ),
    "step_8b": (
        "8B: verifying k drafts costs <1.3x a decode step at batch 1 and ~(1+k)x at 512; a 1B draft step "
        "costs ~0.2x an 8B step, so draft-model speculation pays at small batches only",
        None,
    ),
    "fp8": (
        "512 at once ~1.2x engine; labels agree with bf16 less often than two bf16 runs",
        {"quantization": "fp8"},
    ),
    "batch_invariant": (
        "0.5-0.8x engine's verdicts/s; the two batch compositions then agree 100%",
        {"batch_invariant": True},
    ),
}
DEFAULT_LEGS = "direct,fp32_tokens,engine,engine_noscores,suffix,suffix_noadaptive,suffix_tuned,modes,step_8b"


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


def labels_of(verdict) -> list:
    return [verdict.prompt_harmfulness, verdict.response_refusal, verdict.response_harmfulness]


def agreement(a: list[tuple[str, tuple]], b: list[tuple[str, tuple]]) -> dict:
    """Of the same conversations: identical text, identical labels."""
    n = min(len(a), len(b))
    return {
        "n": n,
        "same_text": round(sum(a[i][0] == b[i][0] for i in range(n)) / max(1, n), 3),
        "same_labels": round(sum(a[i][1] == b[i][1] for i in range(n)) / max(1, n), 3),
    }


def curve(run_batch, rows: list[dict], result: dict) -> dict:
    """Verdicts/s by batch size: 1 and 512 from the leg's ``result``, and one timed batch at each size of
    :data:`SWEEP`, of conversations this engine has not seen (a speculative leg's corpus holds the outputs it
    wrote, so a repeat would be drafted whole)."""
    per_s, start = {"1": round(1 / result["one_verdict_s"], 1)}, 0
    for size in SWEEP:
        t = now()
        run_batch(rows[start : start + size])
        per_s[str(size)] = round(size / (now() - t), 1)
        start += size
    per_s["512"] = result["batch_512"]["verdicts_per_s"]
    return per_s


def crossover(curves: dict, leg: str = "suffix") -> int | None:
    """The largest batch size at which ``leg``'s curve is at least ``direct``'s: drafting above it costs
    throughput (None: it never pays, or a curve is missing)."""
    direct, mine = curves.get("direct"), curves.get(leg)
    if not direct or not mine:
        return None
    sizes = sorted(int(size) for size in mine if size in direct)
    paying = [size for size in sizes if mine[str(size)] >= direct[str(size)]]
    return max(paying) if paying else None


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
    run_batch = lambda rows: llm.generate(prompts(rows), params, use_tqdm=False)  # noqa: E731
    data["curves"]["direct"] = result["curve"] = curve(run_batch, data["curve"], result)
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


def engine_leg(args, data, name: str, options: dict) -> dict:
    started = now()
    guard = vllm_guard(args, "bfloat16", disable_log_stats=False, **options)
    engine = guard.engine
    result: dict = {"options": dict(options)}
    conversations = lambda rows: [(r["prompt"], r["response"]) for r in rows]  # noqa: E731
    try:
        guard.classify_batch(conversations(data["warmup"]))  # builds the offline vLLM engine
        result["build_s"] = round(now() - started, 1)
        result["gpu_used_mib_built"] = gpu_used_mib()
        if options.get("speculative") == "suffix":  # the corpus, seeded (suffix_cache.py)
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
        if options.get("speculative"):
            run_batch = lambda rows: guard.classify_batch(conversations(rows))  # noqa: E731
            data["curves"][name] = result["curve"] = curve(run_batch, data["curve"], result)
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


# -- the run -------------------------------------------------------------------------------------------------


def state_path(model: Path) -> Path:
    return model.parent / "vllm_perf_state.json"


def load_state(model: Path) -> dict:
    path = state_path(model)
    return json.loads(path.read_text()) if path.is_file() else {}


def save_state(model: Path, data: dict) -> None:
    if model.is_dir():
        state_path(model).write_text(json.dumps({key: data[key] for key in CARRIED if key in data}))


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
        "curve": unseen[269 : 269 + sum(SWEEP)],
        "curves": {},
        **{key: value for key, value in load_state(args.model).items() if key in CARRIED},
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
        if "skipped" in leg or "error" in leg or name in ("step_8b", "fp32_tokens", "modes"):
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
        k: len(data[k]) for k in ("warmup", "single", "concurrent", "curve", "batch", "warm_pairs")
    }
    # Rough seconds per leg (engine build with a warm compile cache + measurements), for the budget.
    needs = {"direct": 70, "step_8b": 110, "batch_invariant": 60, "fp32_tokens": 80, "modes": 120}
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
            function = lambda: step_8b_leg(args, data, MEMORY)  # noqa: E731
        elif name == "fp32_tokens":
            function = lambda: fp32_tokens_leg(args, data)  # noqa: E731
        elif name == "modes":
            function = lambda: modes_leg(args, data, lambda: vllm_guard(args, "bfloat16"))  # noqa: E731
        elif name == "suffix_tuned":
            cut = crossover(data["curves"])
            options = dict(LEGS[name][1], **({"speculate_up_to_batch": cut} if cut and cut < 512 else {}))
            run.results["suffix_tuned_cutoff"] = {
                "speculate_up_to_batch": cut,
                "curves": dict(data["curves"]),
            }
            function = lambda options=options, name=name: engine_leg(args, data, name, options)  # noqa: E731
        else:
            function = lambda name=name: engine_leg(args, data, name, LEGS[name][1])  # noqa: E731
        run.leg(name, function, needs.get(name, 45))
        if name == "suffix":
            accepted = (run.results["legs"][name].get("acceptance_batch_512") or {}).get(
                "mean_accepted_length"
            )
            data["standin_mean_accepted_length"] = accepted
        save_state(args.model, data)
    run.write()
    print("\n" + table(run.results), flush=True)


if __name__ == "__main__":
    main()
