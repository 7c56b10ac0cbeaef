"""``guardreasoner.audit`` on the H200: the in-process runner against Ray Data with one GPU actor (issue 13),
and with ``--gpus 2`` one Ray actor against two on a two-GPU machine (the multi-GPU issue).

    # here (CPU), the whole flow on a tiny random Llama with engine="hf", 300 records (a few minutes):
    .venv/bin/python benchmarks/gpu/audit_bench.py --smoke --out /tmp/audit-bench-smoke
    # GPU, on a machine staged by stage.sh (built with STAGE_RAY=1: the image lacks Ray 2.60):
    bash benchmarks/gpu/run.sh audit:560
    # the same on nvidia-h200-x2 with --gpus 2

The input is 10,000 records (``--count``): the 2,048 benchmark conversations of ``$GPU_ASSETS/workload.jsonl``
(drawn by ``vllm_assets.py`` from the paper's ten sets) shuffled and repeated, each with its own id, written
as one Parquet file. The model has Llama-3.2-1B's architecture with random bf16 weights (``vllm_suite.build_1b``);
random weights never stop on their own, so every verdict generates exactly ``--max-new-tokens`` (128)
tokens (``ignore_eos``) and comes back ``truncated`` (the fail-closed policy decides): the timing is what
counts. Each leg runs in its own process (a clean GPU) and times ``guardreasoner.audit(...)`` whole: reading,
validation, the model load (in the actor for Ray), generation and writing the parts. Ray's start
(``ray.init``) is timed apart: a cluster is already up in production.

Legs: ``--gpus 1``: ``inprocess`` then ``ray_1_actor``; ratio = Ray's time / in-process time (target
<= 1.10). ``--gpus 2``: ``ray_1_actor`` then ``ray_2_actors``; scaling efficiency = t(1) / (2 t(2)). The
legs' verdicts are compared by id (raw outputs; bf16 batches of different make-up may part after a near-tie).
Writes ``audit_bench.json`` (``audit_bench_gpus2.json``) to ``--out`` as each leg finishes.
"""

from __future__ import annotations

import os

for _name, _value in (  # NVLink multicast stays off, before anything loads NCCL (KINDS.md)
    ("NCCL_NVLS_ENABLE", "0"),
    ("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1"),
    ("NVSHMEM_DISABLE_NVLS", "1"),
):
    os.environ[_name] = _value

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def build_input(args) -> dict:
    """``--count`` records from the assets' workload (or, with --smoke, the tiny guard's five cases)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if args.smoke:
        from guardreasoner.testing import TINY_GUARD_CASES

        base = [{"prompt": c.prompt, "response": c.response} for c in TINY_GUARD_CASES]
    else:
        lines = (args.assets / "workload.jsonl").read_text(encoding="utf-8").splitlines()
        base = [
            {"prompt": r["prompt"], "response": r["response"]} for r in map(json.loads, filter(None, lines))
        ]
    rng = random.Random(0)
    rows = []
    while len(rows) < args.count:
        rng.shuffle(base)
        rows += base
    rows = [{"id": i, **row} for i, row in enumerate(rows[: args.count])]
    path = args.work / "input.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=1000)
    return {"records": len(rows), "distinct_conversations": len(base), "path": str(path)}


def guard_options(args) -> dict:
    if args.smoke:
        return {"model": str(args.work / "tiny_llama"), "engine": "hf", "max_new_tokens": args.max_new_tokens}
    return {
        "model": str(args.work / "llama-1b"),
        "engine": "vllm",
        "max_new_tokens": args.max_new_tokens,
        "ignore_eos": True,
        "dtype": "bfloat16",
        "gpu_memory_utilization": args.gpu_memory_utilization,
        "max_model_len": args.max_model_len,
        "max_num_seqs": args.max_num_seqs,
        "scores": False,  # random weights: nothing to score (the scaling of the runner is measured)
    }


def run_leg(args, leg: str) -> dict:
    """One leg in this process: ``inprocess``, ``ray_1_actor`` or ``ray_2_actors``."""
    import guardreasoner

    result: dict = {"leg": leg}
    options = guard_options(args)
    output = args.work / f"out-{leg}"
    if leg != "inprocess":
        import ray

        # Ray's workers inherit this environment but not the working directory: absolute paths only.
        paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
        os.environ["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p) for p in paths if p)
        started = time.perf_counter()
        if args.smoke:  # two CPU actors need two logical CPUs; the reads and writes take none
            ray.init(num_cpus=2, include_dashboard=False)
        else:
            import torch

            ray.init(num_gpus=torch.cuda.device_count(), include_dashboard=False)
        result["ray_init_s"] = round(time.perf_counter() - started, 2)
        result["ray"] = ray.__version__
    started = time.perf_counter()
    summary = guardreasoner.audit(
        args.work / "input.parquet",
        output,
        runner="local" if leg == "inprocess" else "ray",
        num_actors=2 if leg == "ray_2_actors" else 1,
        batch_size=args.batch_size,
        **options,
    )
    result["audit_s"] = round(time.perf_counter() - started, 2)
    result["verdicts_per_s"] = round(summary.classified / result["audit_s"], 2)
    result["summary"] = summary.model_dump()
    return result


def outputs_agree(work: Path, first: str, second: str) -> dict:
    """Raw outputs of two legs compared by id."""
    from guardreasoner.audit import OutputStore

    tables = [
        OutputStore(str(work / f"out-{leg}"), "parquet").read(["id", "raw_output"]) for leg in (first, second)
    ]
    a, b = (
        {i: r for i, r in zip(t.column("id").to_pylist(), t.column("raw_output").to_pylist())} for t in tables
    )
    same = sum(a[i] == b.get(i) for i in a)
    return {"ids_equal": set(a) == set(b), "identical_raw_outputs": same, "of": len(a)}


def environment(args) -> dict:
    import platform

    info = {"python": platform.python_version(), "date": time.strftime("%Y-%m-%d")}
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        import vllm

        info["vllm"] = vllm.__version__
    except ImportError:
        pass
    return info


def prepare_model(args) -> dict:
    started = time.perf_counter()
    if args.smoke:  # like the GPU's model: random weights, only tiny
        from guardreasoner.testing import build_tiny_llama

        if not (args.work / "tiny_llama" / "config.json").exists():
            build_tiny_llama(args.work / "tiny_llama")
        return {"model": "build_tiny_llama", "build_s": round(time.perf_counter() - started, 1)}
    from vllm_suite import build_1b

    return {
        "model": "Llama-3.2-1B architecture, random bf16 weights",
        **build_1b(args.assets, args.work / "llama-1b"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--assets",
        type=Path,
        default=Path(os.environ.get("GPU_ASSETS", ".gpu/stage/assets")),
        help="the folder vllm_assets.py wrote",
    )
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "benchmarks/results")))
    parser.add_argument("--work", type=Path, default=Path("/tmp/guardreasoner-audit-bench"))
    parser.add_argument("--gpus", type=int, choices=(1, 2), default=1)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=1024, help="records per guard call, both runners")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--max-model-len", type=int, default=4096)
    parser.add_argument("--max-num-seqs", type=int, default=512)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.85)
    parser.add_argument("--budget-s", type=float, default=540, help="skip a leg that would start past this")
    parser.add_argument("--leg-timeout-s", type=float, default=240, help="a leg running longer is stopped")
    parser.add_argument("--smoke", action="store_true", help="CPU: a tiny random Llama, engine hf")
    parser.add_argument("--leg", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke and args.count == 10_000:
        args.count, args.batch_size, args.max_new_tokens = 300, 50, 16
    args.work.mkdir(parents=True, exist_ok=True)
    if args.leg:
        print(json.dumps(run_leg(args, args.leg)), flush=True)
        return

    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    report_path = args.out / ("audit_bench.json" if args.gpus == 1 else "audit_bench_gpus2.json")
    report: dict = {
        "gpus": args.gpus,
        "smoke": args.smoke,
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    report["environment"] = environment(args)
    report["model"] = prepare_model(args)
    report["input"] = build_input(args)
    legs = ["inprocess", "ray_1_actor"] if args.gpus == 1 else ["ray_1_actor", "ray_2_actors"]
    report["legs"] = {}
    for leg in legs:
        left = args.budget_s - (time.perf_counter() - started)
        if left < 30:
            report["legs"][leg] = {"skipped": f"{left:.0f} s of the budget left"}
            continue
        subprocess.run(["rm", "-rf", str(args.work / f"out-{leg}")], check=True)
        print(f"=== {leg} ({time.perf_counter() - started:.0f} s in)", flush=True)
        command = [sys.executable, __file__, *sys.argv[1:], "--leg", leg]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=min(args.leg_timeout_s, left)
            )
            sys.stderr.write(done.stderr[-6000:])
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            report["legs"][leg] = (
                json.loads(lines[-1])
                if done.returncode == 0 and lines
                else {"error": f"exit {done.returncode}", "stderr": done.stderr[-3000:]}
            )
        except subprocess.TimeoutExpired as exc:
            report["legs"][leg] = {"error": f"timed out after {exc.timeout:.0f} s"}
        report_path.write_text(json.dumps(report, indent=2) + "\n")
    first, second = legs
    a, b = report["legs"][first], report["legs"][second]
    if "audit_s" in a and "audit_s" in b:
        if args.gpus == 1:
            report["ray_over_inprocess"] = round(b["audit_s"] / a["audit_s"], 3)
        else:
            report["scaling_efficiency"] = round(a["audit_s"] / (2 * b["audit_s"]), 3)
        report["agreement"] = outputs_agree(args.work, first, second)
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    for leg, r in report["legs"].items():
        print(
            f"{leg:>14}: "
            + (
                f"{r['audit_s']:.1f} s, {r['verdicts_per_s']:.1f} verdicts/s"
                if "audit_s" in r
                else str(r)[:300]
            )
        )
    for key in ("ray_over_inprocess", "scaling_efficiency", "agreement"):
        if key in report:
            print(f"{key}: {report[key]}")


if __name__ == "__main__":
    main()
