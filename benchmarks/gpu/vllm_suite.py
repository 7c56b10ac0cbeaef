"""The vllm engine on a GPU: parity with transformers, then classify_batch and concurrent aclassify timings.

One command (on a CUDA machine with vLLM; the inputs come from ``vllm_assets.py``):

    PYTHONPATH=packages/core/src python3 benchmarks/gpu/vllm_suite.py --assets $GPU_ASSETS --out "$OUT"

Sections, in order (each writes ``vllm_suite.json`` as it finishes, so a run cut short keeps what it did):

1. ``parity_float32``: a random-weight Llama (4 layers, hidden 256, ``build_tiny_llama``'s trained BPE) in
   transformers (eager attention) and in ``VLLMEngine`` (defaults: torch.compile, CUDA graphs, prefix
   caching), both float32 on the GPU, greedy, 64 new tokens, 40 GuardReasoner prompts from the workload, one
   at a time in transformers and as one batch in vLLM. Token ids must be identical. Then the same prompts
   through ``agenerate`` on the same engine (the offline backend's driver: continuous batching), and 8 in the
   chat format through a second ``VLLMEngine`` built on the same ``vllm.LLM`` (``llm=``).
2. ``agreement_bfloat16``: the same in bfloat16 (transformers with its default SDPA attention): the fraction
   of identical sequences and the mean matching prefix (bf16 rounding differs between the kernels, so
   greedy paths part after a near-tie).
3. ``classify_batch_1b``: ``GuardReasoner(<Llama-3.2-1B architecture, random bf16 weights>, engine="vllm")``
   and ``classify_batch`` over 512 conversations (twice, different conversations). Random weights never
   emit EOS on their own, so generation is capped at 256 tokens with ``ignore_eos=True`` (every verdict is
   therefore "truncated"; the timing is what counts). Then 256 concurrent ``aclassify`` on the same (offline)
   engine: the driver thread path.
4. ``aclassify_1b``: a fresh guard whose first call is ``aclassify``, so it runs vLLM's ``AsyncLLM``: 256
   concurrent calls (``asyncio.gather``) with per-call latency, against 8 calls one after another (the cost
   without batching) and one ``classify_batch`` of 256 (the cost of an ideal batch).
5. ``verdicts_tiny_guard``: ``train_tiny_guard``'s model through ``GuardReasoner`` with ``engine="hf"`` and
   ``engine="vllm"`` (float32): verdicts, raw outputs and finish reasons must be the same.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import json
import logging
import os
import statistics
import subprocess
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llama_configs import LLAMA_1B  # noqa: E402

PARITY_MODEL = dict(
    hidden_size=256, num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=4, intermediate_size=512
)


def now() -> float:
    return time.perf_counter()


class Suite:
    """Sections run in order within a time budget: one that would not fit is skipped, one that raises is recorded
    (later sections are independent), and the results file is rewritten after each, so a run cut short keeps
    what it did. ``vllm_perf.py``'s legs run on it too, under their own names."""

    entries = "sections"  # the results' key for the sections, and each one's seconds
    seconds = "section_s"
    traceback_chars = 4000

    def __init__(self, path: Path, budget_s: float, results: dict):
        self.path = path
        self.started = now()
        self.budget_s = budget_s
        self.results = results

    def left(self) -> float:
        return self.budget_s - (now() - self.started)

    def write(self) -> None:
        self.results["elapsed_s"] = round(now() - self.started, 1)
        self.path.write_text(json.dumps(self.results, indent=2, default=str) + "\n")

    def skip_note(self, needs_s: float) -> str:
        return f"{self.left():.0f} s left of the budget, needs {needs_s}"

    def heading(self, name: str) -> str:
        return f"\n=== {name} ({now() - self.started:.0f} s in)"

    def run(self, name: str, function, *args, needs_s: float = 0.0) -> None:
        if self.left() < needs_s:
            self.results[self.entries][name] = {"skipped": self.skip_note(needs_s)}
            self.write()
            return
        print(self.heading(name), flush=True)
        started = now()
        try:
            result = function(*args)
        except Exception as exc:  # noqa: BLE001 - keep going: later sections are independent
            traceback.print_exc()
            result = {
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()[-self.traceback_chars :],
            }
        result[self.seconds] = round(now() - started, 1)
        self.results[self.entries][name] = result
        self.write()
        free()


def free() -> None:
    gc.collect()
    try:
        import torch

        torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001 - best effort between sections
        pass


def environment() -> dict:
    import torch
    import transformers
    import vllm

    smi = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "date": datetime.date.today().isoformat(),
        "gpu": torch.cuda.get_device_name(0),
        "nvidia_smi": smi,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "vllm": vllm.__version__,
        "transformers": transformers.__version__,
    }


def load_rows(assets: Path) -> list[dict]:
    return [json.loads(line) for line in (assets / "workload.jsonl").read_text(encoding="utf-8").splitlines()]


def latency_stats(latencies: list[float]) -> dict:
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))], 3)

    return {
        "n": len(ordered),
        "p50_s": pct(50),
        "p95_s": pct(95),
        "p99_s": pct(99),
        "max_s": round(ordered[-1], 3),
        "mean_s": round(statistics.fmean(ordered), 3),
    }


# -- 1 and 2: parity ------------------------------------------------------------------------------------


def hf_greedy(hf, prompts: list[str | list[int]], max_new_tokens: int) -> list[list[int]]:
    """transformers' greedy ids, one prompt at a time (no padding), stopping where the hf engine stops.

    A prompt is a raw prompt or the token ids to feed as they are (a forced answer's, as in ``tests/gpu``).
    """
    import torch

    sequences = []
    stops = sorted(hf._eos_ids)
    for prompt in prompts:
        ids = prompt if isinstance(prompt, list) else hf.encode(prompt)
        with torch.inference_mode():
            out = hf.model.generate(
                input_ids=torch.tensor([ids], device=hf.device),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=hf.device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                eos_token_id=stops,
                pad_token_id=hf.tokenizer.pad_token_id,
            )
        sequences.append(out[0, len(ids) :].tolist())
    return sequences


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def divergences(hf, prompts, hf_ids, vllm_ids, limit: int = 10) -> list[dict]:
    """Where a pair parts: transformers' top-2 logit gap there, and what a float64 copy of the model picks."""
    import copy

    import torch

    found = []
    referee = copy.deepcopy(hf.model).double() if any(a != b for a, b in zip(hf_ids, vllm_ids)) else None
    for index, (prompt, a, b) in enumerate(zip(prompts, hf_ids, vllm_ids)):
        if a == b or len(found) >= limit:
            continue
        k = common_prefix(a, b)
        entry = {"prompt": index, "position": k, "hf_token": a[k] if k < len(a) else None}
        entry["vllm_token"] = b[k] if k < len(b) else None
        if entry["hf_token"] is not None and entry["vllm_token"] is not None:
            ids = torch.tensor([hf.encode(prompt) + a[:k]], device=hf.device)
            with torch.inference_mode():
                logits = hf.model(input_ids=ids).logits[0, -1].float()
                exact = referee(input_ids=ids).logits[0, -1]
            top = torch.topk(logits, 2)
            entry["hf_top2_gap"] = float(top.values[0] - top.values[1])
            entry["hf_logit_diff_chosen"] = float(logits[entry["hf_token"]] - logits[entry["vllm_token"]])
            entry["float64_pick"] = int(exact.argmax())
        found.append(entry)
    del referee
    return found


def parity(assets: Path, work: Path, dtype: str, count: int, max_new_tokens: int, extras: bool) -> dict:
    import torch
    from guardreasoner.engines import GenerationConfig
    from guardreasoner.engines.hf import HFEngine
    from guardreasoner.engines.vllm import VLLMEngine
    from guardreasoner.engines.vllm.raw import arequest_outputs, request_outputs, to_generation
    from guardreasoner.prompt import build_prompt
    from guardreasoner.testing import build_tiny_llama

    directory = work / "parity-llama"
    if not (directory / "config.json").exists():
        build_tiny_llama(directory, seed=0, max_position_embeddings=4096, **PARITY_MODEL)
    rows = load_rows(assets)
    hf = HFEngine(
        str(directory),
        device="cuda",
        dtype=dtype,
        batch_size=1,
        attn_implementation="eager" if dtype == "float32" else None,
    )
    prompts = []
    for row in rows:  # the first ``count`` conversations whose prompt fits 1,500 tokens of this small vocab
        prompt = build_prompt(row["prompt"], row["response"])
        if hf.count_tokens(prompt) <= 1500:
            prompts.append(prompt)
        if len(prompts) == count:
            break
    config = GenerationConfig(max_new_tokens=max_new_tokens)
    started = now()
    hf_ids = hf_greedy(hf, prompts, max_new_tokens)
    hf_s = now() - started
    hf_generations = [hf._finish(ids) for ids in hf_ids]

    started = now()
    engine = VLLMEngine(str(directory), dtype=dtype, gpu_memory_utilization=0.1, max_model_len=4096)
    outputs = request_outputs(engine, prompts, config)  # builds the offline LLM on first use
    load_and_run_s = now() - started
    vllm_ids = [list(o.outputs[0].token_ids) for o in outputs]
    started = now()
    repeat = request_outputs(engine, prompts, config)  # every prompt now in the prefix cache
    vllm_s = now() - started
    generations = [to_generation(o) for o in outputs]

    identical = sum(a == b for a, b in zip(hf_ids, vllm_ids))
    prefixes = [common_prefix(a, b) for a, b in zip(hf_ids, vllm_ids)]
    result = {
        "dtype": dtype,
        "model": {**PARITY_MODEL, "vocab_size": len(hf.tokenizer)},
        "prompts": len(prompts),
        "prompt_tokens_min_max": [
            min(len(o.prompt_token_ids) for o in outputs),
            max(len(o.prompt_token_ids) for o in outputs),
        ],
        "max_new_tokens": max_new_tokens,
        "hf_attention": hf.model.config._attn_implementation,
        "identical_sequences": identical,
        "identical_fraction": round(identical / len(prompts), 4),
        "mean_matching_prefix_tokens": round(statistics.fmean(prefixes), 2),
        "mean_sequence_tokens": round(statistics.fmean(map(len, hf_ids)), 2),
        "same_text": sum(g.text == h[0] for g, h in zip(generations, hf_generations)),
        "same_finish_reason": sum(g.finish_reason == h[1] for g, h in zip(generations, hf_generations)),
        "same_generated_count": sum(
            g.num_generated_tokens == h[2] for g, h in zip(generations, hf_generations)
        ),
        "same_prompt_ids": sum(list(o.prompt_token_ids) == hf.encode(p) for o, p in zip(outputs, prompts)),
        "finish_reasons": dict(Counter(g.finish_reason for g in generations)),
        "hf_s": round(hf_s, 2),
        "vllm_first_call_with_load_s": round(load_and_run_s, 2),
        "vllm_batch_s": round(vllm_s, 3),
        "repeat_with_cached_prompts_identical": sum(
            list(o.outputs[0].token_ids) == ids for o, ids in zip(repeat, vllm_ids)
        ),
        "triton_f32_default": os.environ.get("TRITON_F32_DEFAULT"),
        "divergences": divergences(hf, prompts, hf_ids, vllm_ids),
    }
    if extras:
        # The offline engine serving concurrent async callers (driver thread): same tokens?
        async def concurrent() -> list:
            return await asyncio.gather(*(arequest_outputs(engine, [p], config) for p in prompts))

        started = now()
        async_outputs = [o[0] for o in asyncio.run(concurrent())]
        result["driver_concurrent_s"] = round(now() - started, 3)
        async_ids = [list(o.outputs[0].token_ids) for o in async_outputs]
        result["driver_identical_to_batch"] = sum(a == b for a, b in zip(async_ids, vllm_ids))
        result["driver_identical_to_hf"] = sum(a == b for a, b in zip(async_ids, hf_ids))

        # Chat format on the same vllm.LLM (llm=), against transformers' chat encoding.
        llm = engine._backend.result().llm
        chat = VLLMEngine(llm=llm, prompt_format="chat")
        hf_chat = HFEngine(prompt_format="chat", model=hf.model, tokenizer=hf.tokenizer)
        chat_prompts = prompts[:8]
        chat_outputs = request_outputs(chat, chat_prompts, config)
        chat_hf = hf_greedy(hf_chat, chat_prompts, max_new_tokens)
        bos = hf.tokenizer.bos_token_id
        result["chat"] = {
            "prompts": len(chat_prompts),
            "identical_sequences": sum(
                list(o.outputs[0].token_ids) == ids for o, ids in zip(chat_outputs, chat_hf)
            ),
            "same_prompt_ids": sum(
                list(o.prompt_token_ids) == hf_chat.encode(p) for o, p in zip(chat_outputs, chat_prompts)
            ),
            "single_bos": all(list(o.prompt_token_ids).count(bos) == 1 for o in chat_outputs),
            "starts_with_bos": all(o.prompt_token_ids[0] == bos for o in chat_outputs),
        }
        chat.close()  # does not shut down a ready LLM
    free_before = torch.cuda.mem_get_info()[0]
    engine.close()
    del hf
    free()
    time.sleep(2)
    result["gpu_free_gib_before_close"] = round(free_before / 2**30, 1)
    result["gpu_free_gib_after_close"] = round(torch.cuda.mem_get_info()[0] / 2**30, 1)
    return result


# -- 3 and 4: the 1B model ------------------------------------------------------------------------------


def assets_tokenizer(assets: Path):
    """The tokenizer vllm_assets.py wrote, with Llama 3's special tokens and chat template."""
    import transformers
    from guardreasoner.testing.tiny import CHAT_TEMPLATE

    return transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(assets / "tokenizer.json"),
        bos_token="<|begin_of_text|>",
        eos_token="<|end_of_text|>",
        pad_token="<|finetune_right_pad_id|>",
        chat_template=CHAT_TEMPLATE,
    )


def build_1b(assets: Path, directory: Path, device: str = "cuda", **overrides) -> dict:
    import torch
    import transformers

    if (directory / "config.json").exists():
        return {"reused": str(directory)}
    started = now()
    tokenizer = assets_tokenizer(assets)
    tokenizer.save_pretrained(directory)
    torch.manual_seed(0)
    config = transformers.LlamaConfig(**{**LLAMA_1B, **overrides})
    with torch.device(device):
        model = transformers.LlamaForCausalLM(config)
    model = model.to(torch.bfloat16)
    model.config.dtype = torch.bfloat16
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(directory)
    del model
    free()
    return {"parameters": params, "tokenizer_size": len(tokenizer), "build_s": round(now() - started, 1)}


def guard_rows(rows: list[dict]) -> list[tuple[str, str | None]]:
    return [(r["prompt"], r["response"]) for r in rows]


def timed_batch(guard, conversations: list[tuple[str, str | None]]) -> tuple[list, float, int]:
    """``guard.classify_batch`` timed: its verdicts, the wall seconds and the tokens they generated."""
    started = now()
    verdicts = guard.classify_batch(conversations)
    wall = now() - started
    return verdicts, wall, sum(v.num_generated_tokens or 0 for v in verdicts)


def batch_run(guard, rows) -> dict:
    verdicts, wall, generated = timed_batch(guard, guard_rows(rows))
    prompt_tokens = sum(v.num_prompt_tokens or 0 for v in verdicts)
    return {
        "conversations": len(rows),
        "wall_s": round(wall, 3),
        "verdicts_per_s": round(len(rows) / wall, 1),
        "generated_tokens": generated,
        "generated_tokens_per_s": round(generated / wall),
        "prompt_tokens": prompt_tokens,
        "prompt_tokens_per_s": round(prompt_tokens / wall),
        "parse_status": dict(Counter(v.parse_status.value for v in verdicts)),
        "finish_reasons": dict(Counter(v.finish_reason for v in verdicts)),
    }


async def concurrent_run(guard, rows) -> dict:
    async def one(prompt, response):
        started = now()
        verdict = await guard.aclassify(prompt, response)
        return now() - started, verdict

    started = now()
    results = await asyncio.gather(*(one(p, r) for p, r in guard_rows(rows)))
    wall = now() - started
    generated = sum(v.num_generated_tokens or 0 for _, v in results)
    return {
        "calls": len(rows),
        "wall_s": round(wall, 3),
        "verdicts_per_s": round(len(rows) / wall, 1),
        "generated_tokens_per_s": round(generated / wall),
        "latency": latency_stats([t for t, _ in results]),
        "parse_status": dict(Counter(v.parse_status.value for _, v in results)),
        "finish_reasons": dict(Counter(v.finish_reason for _, v in results)),
    }


async def sequential_run(guard, rows) -> dict:
    latencies = []
    for prompt, response in guard_rows(rows):
        started = now()
        await guard.aclassify(prompt, response)
        latencies.append(now() - started)
    return {"calls": len(rows), "latency": latency_stats(latencies)}


def guard_options(args) -> dict:
    return dict(
        engine="vllm",
        max_new_tokens=args.max_new_tokens,
        ignore_eos=True,
        dtype="bfloat16",
        gpu_memory_utilization=args.gpu_memory_utilization,
    )


def classify_batch_1b(args, rows: list[dict]) -> dict:
    from guardreasoner.guard import GuardReasoner

    result = {"model": build_1b(args.assets, args.work / "llama-3.2-1b-random")}
    options = guard_options(args)
    result["options"] = options
    started = now()
    guard = GuardReasoner(str(args.work / "llama-3.2-1b-random"), **options)
    result["construct_s"] = round(now() - started, 2)
    started = now()
    guard.classify_batch(guard_rows(rows[:8]))  # builds vLLM's offline LLM (load, compile, CUDA graphs)
    result["load_and_first_batch_s"] = round(now() - started, 1)
    result["engine_backend"] = guard.engine.backend
    result["max_context_tokens"] = guard.engine.max_context_tokens
    result["runs"] = [batch_run(guard, rows[8:520]), batch_run(guard, rows[520:1032])]
    print(json.dumps(result["runs"], indent=1), flush=True)
    # 256 concurrent async callers on the offline engine: the driver thread batches them.
    result["driver_concurrent_256"] = asyncio.run(concurrent_run(guard, rows[1032:1288]))
    guard.close()
    return result


def aclassify_1b(args, rows: list[dict]) -> dict:
    from guardreasoner.guard import GuardReasoner

    options = guard_options(args)
    result = {"options": options}
    guard = GuardReasoner(str(args.work / "llama-3.2-1b-random"), **options)

    async def measure() -> None:
        started = now()
        await guard.aclassify(rows[1288]["prompt"], rows[1288]["response"])  # builds the AsyncLLM
        result["load_and_first_call_s"] = round(now() - started, 1)
        result["engine_backend"] = guard.engine.backend
        result["concurrent_256"] = await concurrent_run(guard, rows[1289:1545])
        result["sequential_8"] = await sequential_run(guard, rows[1545:1553])

    asyncio.run(measure())
    # The same AsyncLLM, one classify_batch of 256 (the sync path on the async backend).
    result["batch_256"] = batch_run(guard, rows[1553:1809])
    one = result["sequential_8"]["latency"]["mean_s"]
    result["one_at_a_time_256_estimate_s"] = round(256 * one, 1)
    result["concurrent_speedup_vs_one_at_a_time"] = round(256 * one / result["concurrent_256"]["wall_s"], 1)
    result["concurrent_wall_over_batch_wall"] = round(
        result["concurrent_256"]["wall_s"] / result["batch_256"]["wall_s"], 3
    )
    guard.close()
    return result


# -- 5: verdicts of a trained tiny guard ----------------------------------------------------------------


def tiny_guard_verdicts(args, rows: list[dict]) -> dict:
    from guardreasoner.guard import GuardReasoner
    from guardreasoner.testing import TINY_GUARD_CASES

    directory = args.assets / "tiny_guard"
    items = [(c.prompt, c.response) for c in TINY_GUARD_CASES] + guard_rows(rows[2000:2027])
    hf = GuardReasoner(
        str(directory),
        engine="hf",
        device="cuda",
        dtype="float32",
        batch_size=1,
        attn_implementation="eager",
        max_new_tokens=128,
        truncation="head_tail",
    )
    reference = hf.classify_batch(items)
    hf.close()
    guard = GuardReasoner(
        str(directory),
        engine="vllm",
        dtype="float32",
        gpu_memory_utilization=0.1,
        max_new_tokens=128,
        truncation="head_tail",
    )
    verdicts = guard.classify_batch(items)
    guard.close()

    def labels(v):
        return (v.prompt_harmfulness, v.response_refusal, v.response_harmfulness, v.parse_status.value)

    return {
        "conversations": len(items),
        "same_labels": sum(labels(a) == labels(b) for a, b in zip(reference, verdicts)),
        "same_raw_output": sum(a.raw_output == b.raw_output for a, b in zip(reference, verdicts)),
        "same_finish_reason": sum(a.finish_reason == b.finish_reason for a, b in zip(reference, verdicts)),
        "same_generated_tokens": sum(
            a.num_generated_tokens == b.num_generated_tokens for a, b in zip(reference, verdicts)
        ),
        "trained_cases_correct": sum(
            (v.prompt_harmfulness, v.response_refusal, v.response_harmfulness)
            == (c.prompt_harmfulness, c.response_refusal, c.response_harmfulness)
            for v, c in zip(verdicts, TINY_GUARD_CASES)
        ),
        "vllm_parse_status": dict(Counter(v.parse_status.value for v in verdicts)),
        "vllm_finish_reasons": dict(Counter(v.finish_reason for v in verdicts)),
    }


# -- the table -----------------------------------------------------------------------------------------


def table(results: dict) -> str:
    s = results["sections"]
    lines = [f"vllm suite on {results.get('environment', {}).get('gpu')} ({results.get('elapsed_s')} s)"]

    def get(name, *keys):
        value = s.get(name, {})
        for key in keys:
            if not isinstance(value, dict):
                return None
            value = value.get(key)
        return value

    for name in ("parity_float32", "agreement_bfloat16"):
        if "error" in s.get(name, {}):
            lines.append(f"{name:<22} ERROR {s[name]['error'][:200]}")
            continue
        lines.append(
            f"{name:<22} identical {get(name, 'identical_sequences')}/{get(name, 'prompts')} "
            f"prefix {get(name, 'mean_matching_prefix_tokens')}/{get(name, 'mean_sequence_tokens')} "
            f"text {get(name, 'same_text')} driver {get(name, 'driver_identical_to_batch')} "
            f"chat {get(name, 'chat', 'identical_sequences')}"
        )
    name = "classify_batch_1b"
    if "error" in s.get(name, {}):
        lines.append(f"{name:<22} ERROR {s[name]['error'][:200]}")
    for index, run in enumerate(get(name, "runs") or []):
        lines.append(
            f"{name:<22} run {index}: 512 in {run['wall_s']} s, {run['verdicts_per_s']} verdicts/s, "
            f"{run['generated_tokens_per_s']} gen tok/s, {run['prompt_tokens_per_s']} prompt tok/s"
        )
    driver = get(name, "driver_concurrent_256")
    if driver:
        lat = driver["latency"]
        lines.append(
            f"{'  driver 256 async':<22} wall {driver['wall_s']} s p50 {lat['p50_s']} p95 {lat['p95_s']} p99 {lat['p99_s']}"
        )
    name = "aclassify_1b"
    if "error" in s.get(name, {}):
        lines.append(f"{name:<22} ERROR {s[name]['error'][:200]}")
    conc = get(name, "concurrent_256")
    if conc:
        lat = conc["latency"]
        lines.append(
            f"{name:<22} 256 concurrent: wall {conc['wall_s']} s, {conc['verdicts_per_s']} verdicts/s, "
            f"p50 {lat['p50_s']} p95 {lat['p95_s']} p99 {lat['p99_s']} s"
        )
        lines.append(
            f"{'':<22} one call alone {get(name, 'sequential_8', 'latency', 'mean_s')} s -> 256 one at a time "
            f"~{get(name, 'one_at_a_time_256_estimate_s')} s; batch of 256 {get(name, 'batch_256', 'wall_s')} s; "
            f"speedup {get(name, 'concurrent_speedup_vs_one_at_a_time')}x"
        )
    name = "verdicts_tiny_guard"
    if s.get(name):
        value = s[name]
        lines.append(
            f"{name:<22} "
            + (
                f"ERROR {value['error'][:200]}"
                if "error" in value
                else f"labels {value.get('same_labels')}/{value.get('conversations')} raw {value.get('same_raw_output')} "
                f"finish {value.get('vllm_finish_reasons')}"
            )
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=Path, required=True, help="the folder vllm_assets.py wrote")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "benchmarks/results")))
    parser.add_argument("--work", type=Path, default=Path("/tmp/guardreasoner-vllm-suite"))
    parser.add_argument("--parity-prompts", type=int, default=40)
    parser.add_argument("--parity-tokens", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.45)
    parser.add_argument("--budget-s", type=float, default=560, help="skip sections that would not fit")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    args = parser.parse_args()
    if args.dry_run:
        print(json.dumps({k: str(v) for k, v in vars(args).items()}, indent=1))
        print(
            "sections: parity_float32, agreement_bfloat16, classify_batch_1b, aclassify_1b, verdicts_tiny_guard"
        )
        return
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    logging.getLogger("guardreasoner").setLevel(logging.ERROR)  # 512 "truncated" warnings otherwise

    suite = Suite(args.out / "vllm_suite.json", args.budget_s, {"sections": {}})
    suite.results["command"] = " ".join(sys.argv)
    suite.results["environment"] = environment()
    print(json.dumps(suite.results["environment"]), flush=True)
    suite.write()
    rows = load_rows(args.assets)
    tokens = args.parity_tokens
    suite.run("parity_float32", parity, args.assets, args.work, "float32", args.parity_prompts, tokens, True)
    suite.run(
        "agreement_bfloat16", parity, args.assets, args.work, "bfloat16", args.parity_prompts, tokens, False
    )
    suite.run("classify_batch_1b", classify_batch_1b, args, rows, needs_s=150)
    suite.run("aclassify_1b", aclassify_1b, args, rows, needs_s=100)
    suite.run("verdicts_tiny_guard", tiny_guard_verdicts, args, rows, needs_s=60)
    suite.write()
    print("\n" + table(suite.results), flush=True)


if __name__ == "__main__":
    main()
