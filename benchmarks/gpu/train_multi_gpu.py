"""R-SFT throughput on N GPUs of one host, one process per GPU (launched by ``train_multi_gpu.sh`` via accelerate).

Same model and data as ``train_throughput.py`` (random-init Llama-3.2-1B architecture, sequences drawn from
GuardReasoner's length distribution, fp32 master weights, bf16 compute), with the shipped RSFTTrainer under the
accelerate config given to ``accelerate launch`` (FSDP2 or DeepSpeed ZeRO-3). Each rank counts the tokens of its
own batches and times its own steps; rank 0 writes one JSON with per-rank tokens/s and peak memory.

    accelerate launch --config_file training/configs/accelerate_fsdp.yaml --num_processes 4 \\
        benchmarks/gpu/train_multi_gpu.py --out results/fsdp_4gpu.json
    python benchmarks/gpu/train_multi_gpu.py --summarize results/      # scaling vs the 1-GPU file

``--tiny`` runs a tiny model on CPU (gloo) to check the script and configs; it measures nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

VARIANTS = {
    "varlen_liger": dict(padding_free=True, attn_implementation="guardreasoner_varlen", liger_kernels=True),
    "varlen": dict(padding_free=True, attn_implementation="guardreasoner_varlen"),
    "padded": dict(attn_implementation="sdpa"),
}


def run(args: argparse.Namespace) -> None:
    import torch
    import train_throughput as tt
    from datasets import Dataset
    from guardreasoner_training.rsft import RSFTConfig, RSFTTrainer

    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available() and not args.tiny
    cfg = tt.LLAMA_1B if cuda else tt.TINY
    head = cfg["vocab_size"] * cfg["hidden_size"]
    body = sum(p.numel() for p in tt.build_model(cfg, "meta").parameters()) - head
    lengths = tt.load_lengths(args.lengths, args.cutoff)
    rows = args.per_device_batch * world * (args.warmup + args.steps)
    data = Dataset.from_list(tt.sft_rows(lengths, rows, cfg["vocab_size"], seed=0))
    options = dict(VARIANTS[args.variant])
    if not cuda:
        options = {"attn_implementation": "sdpa"}
    config = RSFTConfig(
        # seed 42 (transformers' default): the data order the committed multi-GPU results were measured with
        **tt.common_args(
            str(Path(args.out).with_suffix("")) + "_trainer", args.warmup + args.steps, cuda, seed=42
        ),
        per_device_train_batch_size=args.per_device_batch,
        gradient_checkpointing=False,
        cutoff_len=args.cutoff,
        **options,
    )
    trainer = RSFTTrainer(
        tt.build_model(cfg, "cpu"), args=config, train_dataset=data, processing_class=tt.tokenizer_stub()
    )
    timer, stats = tt.train_measured(trainer, "sft", args.warmup)
    local = tt.summarize(f"rank{rank}", timer, stats, args.warmup, cfg, body, head, passes=6)
    everyone = [None] * world
    if world > 1:
        torch.distributed.all_gather_object(everyone, local)
    else:
        everyone = [local]
    if rank == 0:
        total = sum(r["tokens_per_s"] for r in everyone)
        report = {
            "date": time.strftime("%Y-%m-%d"),
            "gpus": world,
            "variant": args.variant,
            "accelerate_config": os.environ.get("ACCELERATE_CONFIG_FILE_USED", args.config_name),
            "per_device_batch": args.per_device_batch,
            "timed_steps": args.steps,
            "tokens_per_s": round(total, 1),
            "tokens_per_s_per_gpu": round(total / world, 1),
            "mfu_mean": round(sum(r["mfu"] for r in everyone) / world, 4),
            "peak_memory_gib_per_gpu": [r["peak_memory_gib"] for r in everyone],
            "ranks": everyone,
            "versions": tt.versions(),
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1))
        print(
            f"{world} GPU(s): {report['tokens_per_s_per_gpu']} tok/s per GPU, peak {report['peak_memory_gib_per_gpu']} GiB"
        )


def summarize(folder: Path) -> None:
    """Scaling efficiency of each N-GPU file against the 1-GPU file of the same backend."""
    files = sorted(folder.glob("*gpu.json"))
    reports = [json.loads(f.read_text()) | {"file": f.name} for f in files]
    summary = []
    for report in reports:
        backend = report["file"].rsplit("_", 1)[0]
        base = next((r for r in reports if r["file"] == f"{backend}_1gpu.json"), None)
        efficiency = report["tokens_per_s_per_gpu"] / base["tokens_per_s_per_gpu"] if base else None
        summary.append(
            {
                "file": report["file"],
                "gpus": report["gpus"],
                "tokens_per_s": report["tokens_per_s"],
                "tokens_per_s_per_gpu": report["tokens_per_s_per_gpu"],
                "scaling_efficiency_vs_1gpu": round(efficiency, 3) if efficiency else None,
                "peak_memory_gib_per_gpu": report["peak_memory_gib_per_gpu"],
            }
        )
        print(
            f"{report['file']:<24} {report['gpus']} GPU  {report['tokens_per_s_per_gpu']:>9.0f} tok/s/GPU  "
            f"efficiency {summary[-1]['scaling_efficiency_vs_1gpu']}  peak {report['peak_memory_gib_per_gpu']}"
        )
    (folder / "summary.json").write_text(json.dumps(summary, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="train_multi_gpu.json")
    parser.add_argument("--summarize", type=Path, help="folder of N-GPU files: write summary.json and stop")
    parser.add_argument("--lengths", type=Path, default=HERE / "train_lengths.json")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="varlen_liger")
    parser.add_argument("--per-device-batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--cutoff", type=int, default=2048)
    parser.add_argument("--config-name", default="")
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args()
    if args.summarize:
        summarize(args.summarize)
    else:
        run(args)


if __name__ == "__main__":
    main()
