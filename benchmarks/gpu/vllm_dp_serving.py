"""GuardReasoner-8B on two GPUs as two independent one-GPU engines (data parallel) against tensor parallel.

Companion of ``vllm_tp_serving.py`` (same model, same 512-prompt workload, same work folder, which that script
fills first). Data parallel here means what a user can do today without any cluster: one process per GPU
(``CUDA_VISIBLE_DEVICES`` pins each), each a plain ``GuardReasoner(engine="vllm")`` classifying its half of
the batch; both start together after loading, and the throughput is 512 over the slower half's wall time.
Latency of one verdict is the one-GPU figure (each request runs on one GPU), which ``vllm_tp_serving.py``
measures at tp=1.

    python3 benchmarks/gpu/vllm_dp_serving.py --assets $GPU_ASSETS --out "$OUT"   # after vllm_tp_serving.py

Writes ``vllm_dp_serving.json`` and prints one line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
# Importing vllm_tp_serving turns NVLink multicast off (its environment variables) before torch, NCCL or vLLM
# load, here and in the shards, which inherit this environment.
import vllm_tp_serving as tp_serving  # noqa: E402


def run_shard(args) -> dict:
    """This process's half: load, signal ready, wait for the start file, classify, report."""
    from guardreasoner.guard import GuardReasoner

    prompts = json.loads((args.work / "prompts.json").read_text(encoding="utf-8"))[: args.count]
    shard = prompts[args.shard :: args.shards]
    guard = GuardReasoner(str(args.work / "guardreasoner-8b-random"), **tp_serving.engine_options(args, 1))
    guard.classify(prompts[-1])  # load, compile, capture graphs
    (args.work / f"ready{args.shard}").touch()
    while not (args.work / "go").exists():
        time.sleep(0.01)
    started = time.time()
    verdicts = guard.classify_batch([(p, None) for p in shard])
    finished = time.time()
    guard.close()
    return {
        "shard": args.shard,
        "prompts": len(shard),
        "start_unix": started,
        "end_unix": finished,
        "wall_s": round(finished - started, 2),
        "generated_tokens": sum(v.num_generated_tokens or 0 for v in verdicts),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "benchmarks/results")))
    tp_serving.add_shared_flags(parser)  # they must match the run that filled --work
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--shard", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--timeout-s", type=float, default=300)
    args = parser.parse_args()

    if args.shard is not None:
        result = run_shard(args)
        (args.out / f"vllm_dp_shard{args.shard}.json").write_text(json.dumps(result) + "\n")
        return

    if not (args.work / "prompts.json").exists():
        raise SystemExit(f"{args.work}/prompts.json is missing: run vllm_tp_serving.py first (same --work).")
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in [args.work / "go", *(args.work / f"ready{i}" for i in range(args.shards))]:
        stale.unlink(missing_ok=True)
    started = time.time()
    children = [
        subprocess.Popen(
            [sys.executable, __file__, *sys.argv[1:], "--shard", str(i)],
            env={**os.environ, "CUDA_VISIBLE_DEVICES": str(i)},
        )
        for i in range(args.shards)
    ]
    deadline = time.time() + args.timeout_s
    while not all((args.work / f"ready{i}").exists() for i in range(args.shards)):
        if time.time() > deadline or any(c.poll() not in (None, 0) for c in children):
            for child in children:
                child.kill()
            raise SystemExit("a shard failed to load (see its output above)")
        time.sleep(0.05)
    load_s = time.time() - started
    (args.work / "go").touch()
    for child in children:
        child.wait(timeout=max(1.0, deadline - time.time()))
    shards = [json.loads((args.out / f"vllm_dp_shard{i}.json").read_text()) for i in range(args.shards)]
    wall = max(s["end_unix"] for s in shards) - min(s["start_unix"] for s in shards)
    result = {
        "command": " ".join(sys.argv),
        "engines": args.shards,
        "load_s": round(load_s, 1),
        "batch_wall_s": round(wall, 2),
        "verdicts_per_s": round(args.count / wall, 1),
        "generated_tokens_per_s": round(sum(s["generated_tokens"] for s in shards) / wall),
        "shards": shards,
    }
    (args.out / "vllm_dp_serving.json").write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"data parallel x{args.shards}: {args.count} verdicts in {result['batch_wall_s']} s, "
        f"{result['verdicts_per_s']} verdicts/s, {result['generated_tokens_per_s']} generated tokens/s"
    )


if __name__ == "__main__":
    main()
