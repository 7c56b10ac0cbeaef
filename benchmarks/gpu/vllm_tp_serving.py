"""GuardReasoner-8B on vLLM: tensor_parallel_size=2 against 1 on one machine of two GPUs (issue 5).

    # here (CPU): the plan, the workload's measured token counts, no GPU needed
    .venv/bin/python benchmarks/gpu/vllm_tp_serving.py --assets $GPU_ASSETS --dry-run
    # on nvidia-h200-x2, with vLLM installed (see vllm_suite.py for the bundle):
    PYTHONPATH=packages/core/src python3 benchmarks/gpu/vllm_tp_serving.py --assets $GPU_ASSETS --out "$OUT"

The model has GuardReasoner-8B's architecture (Llama 3.1 8B: hidden 4096, 32 layers, 32 heads, 8 KV heads,
intermediate 14336, vocab 128256, untied embeddings, llama3 RoPE) with random bf16 weights that vLLM draws
itself (``load_format="dummy"``); only the config and tokenizer are written to ``--work``. The workload is 512 GuardReasoner prompts of exactly ``--prompt-tokens`` (400)
tokens, BOS included, that share their first tokens (the instruction and ``Human user:``; about 100 tokens,
the measured count is reported) and differ after; each generates ``--new-tokens`` (270) tokens with EOS
ignored (random weights never stop on their own). Each ``--tp`` size runs in its own process (a clean GPU and
NCCL state), through ``GuardReasoner(..., engine="vllm", tensor_parallel_size=N)``:

- ``single_latency``: one ``classify`` at a time, ``--single-repeats`` times (after a warm-up): the latency
  of one verdict;
- ``batch_512``: ``classify_batch`` of the 512 prompts: verdicts/s and generated tokens/s;
- ``concurrent_512``: 512 concurrent ``aclassify`` calls on a second guard (vLLM's ``AsyncLLM``), with
  per-call latency percentiles.

NVLink multicast stays off (``NCCL_NVLS_ENABLE=0``, ``TORCH_SYMM_MEM_DISABLE_MULTICAST=1``,
``NVSHMEM_DISABLE_NVLS=1``, set here before anything starts and inherited by every process). vLLM 0.26 also
fuses all-reduce with RMSNorm at tensor_parallel_size > 1 through FlashInfer, whose default backend
(``mnnvl``) allocates NVSwitch multicast memory: the fusion is turned off (``fuse_allreduce_rms=False``) and
``VLLM_FLASHINFER_ALLREDUCE_BACKEND=trtllm`` (IPC buffers, no multicast) is set in case anything asks for it.
(The previous session's TP=2 run logged "backend=mnnvl" and stalled in warm-up until killed.)
Writes ``vllm_tp_serving.json`` to ``--out`` and prints a table last.
"""

from __future__ import annotations

import os

# Before torch, NCCL or vLLM load anywhere in this process tree.
for _name, _value in (
    ("NCCL_NVLS_ENABLE", "0"),
    ("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1"),
    ("NVSHMEM_DISABLE_NVLS", "1"),
    ("VLLM_FLASHINFER_ALLREDUCE_BACKEND", "trtllm"),
):
    os.environ[_name] = _value
MULTICAST_OFF = ("NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST", "NVSHMEM_DISABLE_NVLS")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llama_configs import LLAMA_8B  # noqa: E402
from vllm_suite import assets_tokenizer, latency_stats, load_rows, now, timed_batch  # noqa: E402

FILLER = " x"


def tokenizer_for(assets: Path, directory: Path | None = None):
    import transformers

    if directory is not None and (directory / "tokenizer_config.json").exists():
        return transformers.AutoTokenizer.from_pretrained(directory)
    return assets_tokenizer(assets)


def workload(assets: Path, tokenizer, count: int, prompt_tokens: int) -> list[str]:
    """``count`` user prompts whose guard prompt is exactly ``prompt_tokens`` tokens (BOS included).

    Each takes a real conversation from the workload as its text, cut at the longest word prefix that fits,
    then padded with single-token fillers to the exact length.
    """
    from guardreasoner.prompt import build_prompt

    def length(text: str) -> int:
        return len(tokenizer(build_prompt(text, None)).input_ids)

    rows = load_rows(assets)
    sources = [" ".join(filter(None, (r["prompt"], r["response"]))) for r in rows]
    prompts = []
    for index in range(count):
        words = (sources[index % len(sources)] + " ") * 4
        words = f"[{index}] {words}".split(" ")  # the index makes every prompt differ right after the prefix
        low, high = 1, len(words)
        while low < high:  # the longest word prefix that fits
            middle = (low + high + 1) // 2
            if length(" ".join(words[:middle])) <= prompt_tokens:
                low = middle
            else:
                high = middle - 1
        text = " ".join(words[:low])
        while length(text) < prompt_tokens:
            text += FILLER
        if length(text) != prompt_tokens:  # a filler merged with the text: trim and retry once
            text = text[: -len(FILLER)]
            while length(text) < prompt_tokens:
                text += "\n"
        prompts.append(text)
    return prompts


def describe(prompts: list[str], tokenizer) -> dict:
    from guardreasoner.prompt import build_prompt

    encoded = [tokenizer(build_prompt(p, None)).input_ids for p in prompts]
    shared = len(encoded[0])
    for ids in encoded[1:]:
        shared = min(shared, next((i for i, (a, b) in enumerate(zip(encoded[0], ids)) if a != b), len(ids)))
    lengths = [len(ids) for ids in encoded]
    return {
        "prompts": len(prompts),
        "prompt_tokens_min": min(lengths),
        "prompt_tokens_max": max(lengths),
        "prompt_tokens_mean": round(statistics.fmean(lengths), 2),
        "shared_prefix_tokens": shared,
    }


def build_model(assets: Path, directory: Path) -> dict:
    """The config and tokenizer only: vLLM draws the random weights itself (``load_format="dummy"``).

    Random weights are random either way; skipping the 16 GB build and write saves about a minute of GPU time,
    and the timings do not depend on the values (generation length is fixed by ``ignore_eos``).
    """
    import torch
    import transformers

    if (directory / "config.json").exists():
        return {"reused": str(directory)}
    started = now()
    tokenizer_for(assets).save_pretrained(directory)
    config = transformers.LlamaConfig(**LLAMA_8B)
    config.dtype = torch.bfloat16
    config.save_pretrained(directory)
    return {"weights": "vLLM load_format=dummy", "build_s": round(now() - started, 1)}


def engine_options(args, tp: int) -> dict:
    no_multicast = {"compilation_config": {"pass_config": {"fuse_allreduce_rms": False}}} if tp > 1 else {}
    return dict(
        **no_multicast,
        engine="vllm",
        tensor_parallel_size=tp,
        max_new_tokens=args.new_tokens,
        ignore_eos=True,
        dtype="bfloat16",
        gpu_memory_utilization=args.gpu_memory_utilization,
        max_model_len=args.max_model_len,
        load_format="dummy",
        scores=False,  # random weights: nothing to score; the serving figures stay comparable with before
    )


def run_one(args, tp: int) -> dict:
    """One tensor-parallel size, in this (child) process."""
    from guardreasoner.guard import GuardReasoner

    directory = args.work / "guardreasoner-8b-random"
    tokenizer = tokenizer_for(args.assets, directory)
    prompts = json.loads((args.work / "prompts.json").read_text(encoding="utf-8"))  # written by the parent
    batch, singles = prompts[: args.count], prompts[args.count :]
    result: dict = {"tp": tp, "options": engine_options(args, tp), "workload": describe(batch, tokenizer)}

    started = now()
    guard = GuardReasoner(str(directory), **engine_options(args, tp))
    guard.classify(singles[0])  # loads vLLM's offline LLM: weights, compile, CUDA graphs
    result["load_and_first_verdict_s"] = round(now() - started, 1)
    latencies = []
    for prompt in singles[1 : 1 + args.single_repeats]:
        started = now()
        verdict = guard.classify(prompt)
        latencies.append(now() - started)
    result["single_latency"] = latency_stats(latencies)
    result["single_generated_tokens"] = verdict.num_generated_tokens
    result["single_ms_per_token"] = round(1000 * statistics.median(latencies) / args.new_tokens, 2)

    verdicts, wall, generated = timed_batch(guard, [(p, None) for p in batch])
    result["batch_512"] = {
        "wall_s": round(wall, 2),
        "verdicts_per_s": round(len(batch) / wall, 1),
        "generated_tokens_per_s": round(generated / wall),
        "generated_tokens": generated,
        "finish_reasons": sorted({v.finish_reason for v in verdicts}),
    }
    guard.close()

    if args.concurrent:
        guard = GuardReasoner(str(directory), **engine_options(args, tp))

        async def concurrent() -> dict:
            await guard.aclassify(singles[-1])  # loads the AsyncLLM

            async def one(prompt: str) -> float:
                started = now()
                await guard.aclassify(prompt)
                return now() - started

            started = now()
            times = await asyncio.gather(*(one(p) for p in batch))
            wall = now() - started
            return {
                "wall_s": round(wall, 2),
                "verdicts_per_s": round(len(batch) / wall, 1),
                "latency": latency_stats(times),
            }

        result["concurrent_512"] = asyncio.run(concurrent())
        guard.close()
    return result


def table(results: dict) -> str:
    lines = [f"GuardReasoner-8B architecture (random bf16) on {results.get('gpus')}"]
    lines.append(
        f"{'tp':>3} {'1 verdict p50 s':>16} {'ms/token':>9} {'batch 512 s':>12} {'verdicts/s':>11} {'gen tok/s':>10} {'conc p50 s':>11}"
    )
    for tp, run in sorted(results.get("runs", {}).items()):
        if "error" in run:
            lines.append(f"{tp:>3} ERROR {run['error'][:150]}")
            continue
        conc = run.get("concurrent_512", {}).get("latency", {}).get("p50_s", "-")
        lines.append(
            f"{tp:>3} {run['single_latency']['p50_s']:>16} {run['single_ms_per_token']:>9} "
            f"{run['batch_512']['wall_s']:>12} {run['batch_512']['verdicts_per_s']:>11} "
            f"{run['batch_512']['generated_tokens_per_s']:>10} {conc:>11}"
        )
    return "\n".join(lines)


# The flags vllm_dp_serving.py shares with this script: the same work folder, workload and engine settings.
SHARED_FLAGS: dict[str, dict] = {
    "--work": dict(type=Path, default=Path("/tmp/guardreasoner-vllm-tp")),
    "--count": dict(type=int, default=512),
    "--new-tokens": dict(type=int, default=270),
    "--gpu-memory-utilization": dict(type=float, default=0.9),
    "--max-model-len": dict(type=int, default=4096),
}


def add_shared_flags(parser: argparse.ArgumentParser, *names: str) -> None:
    """Add the shared flags ``names`` (all of them when none is named) to ``parser``, in that order."""
    for name in names or SHARED_FLAGS:
        parser.add_argument(name, **SHARED_FLAGS[name])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=Path, required=True, help="the folder vllm_assets.py wrote")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "benchmarks/results")))
    add_shared_flags(parser, "--work")
    parser.add_argument("--tp", type=int, nargs="+", default=[1, 2], help="tensor-parallel sizes to compare")
    add_shared_flags(parser, "--count")
    parser.add_argument("--prompt-tokens", type=int, default=400)
    add_shared_flags(parser, "--new-tokens")
    parser.add_argument("--single-repeats", type=int, default=5)
    add_shared_flags(parser, "--gpu-memory-utilization", "--max-model-len")
    parser.add_argument("--no-concurrent", dest="concurrent", action="store_false")
    parser.add_argument("--child-tp", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--dry-run", action="store_true", help="print the plan and the workload's token counts"
    )
    args = parser.parse_args()

    if args.child_tp is not None:  # one size, in its own process
        try:
            result = run_one(args, args.child_tp)
        except Exception as exc:
            import traceback

            traceback.print_exc()
            result = {"error": f"{type(exc).__name__}: {exc}"}
        (args.out / f"vllm_tp_serving_tp{args.child_tp}.json").write_text(json.dumps(result, indent=2) + "\n")
        return

    if args.dry_run:
        tokenizer = tokenizer_for(args.assets)
        started = now()
        prompts = workload(args.assets, tokenizer, args.count, args.prompt_tokens)
        plan = {
            "model": LLAMA_8B,
            "parameters_estimate": 2 * 128256 * 4096
            + 32 * (4096 * (4096 + 2 * 1024 + 4096) + 3 * 4096 * 14336 + 2 * 4096)
            + 4096,
            "workload": describe(prompts, tokenizer) | {"built_s": round(now() - started, 1)},
            "runs": {tp: engine_options(args, tp) for tp in args.tp},
            "environment": {
                k: os.environ[k]
                for k in ("NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST", "NVSHMEM_DISABLE_NVLS")
            },
            "children": [
                [
                    sys.executable,
                    __file__,
                    "--assets",
                    str(args.assets),
                    "--out",
                    str(args.out),
                    "--child-tp",
                    str(tp),
                ]
                for tp in args.tp
            ],
        }
        print(json.dumps(plan, indent=1, default=str))
        return

    import torch

    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    if torch.cuda.device_count() < max(args.tp):
        raise SystemExit(
            f"--tp {max(args.tp)} needs {max(args.tp)} GPUs; this machine has {torch.cuda.device_count()}."
        )
    results: dict = {
        "command": " ".join(sys.argv),
        "gpus": f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}",
        "environment": {k: os.environ[k] for k in (*MULTICAST_OFF, "VLLM_FLASHINFER_ALLREDUCE_BACKEND")},
        "model": build_model(args.assets, args.work / "guardreasoner-8b-random"),
        "runs": {},
    }
    started = now()
    tokenizer = tokenizer_for(args.assets)
    prompts = workload(args.assets, tokenizer, args.count + args.single_repeats + 2, args.prompt_tokens)
    (args.work / "prompts.json").write_text(json.dumps(prompts), encoding="utf-8")
    results["workload"] = describe(prompts[: args.count], tokenizer) | {"built_s": round(now() - started, 1)}
    torch.cuda.empty_cache()
    passthrough = sys.argv[1:]
    for tp in args.tp:
        started = now()
        child = subprocess.run([sys.executable, __file__, *passthrough, "--child-tp", str(tp)], check=False)
        path = args.out / f"vllm_tp_serving_tp{tp}.json"
        run = json.loads(path.read_text()) if path.exists() else {"error": f"exit code {child.returncode}"}
        run["process_s"] = round(now() - started, 1)
        results["runs"][tp] = run
        (args.out / "vllm_tp_serving.json").write_text(json.dumps(results, indent=2) + "\n")
    print("\n" + table(results), flush=True)


if __name__ == "__main__":
    main()
