"""Training throughput of the shipped R-SFT and HS-DPO trainers on one GPU, variant by variant.

A random-init Llama-3.2-1B-architecture model (hidden 2048, 16 layers, 32 heads, 8 KV heads, intermediate 8192,
vocab 128256, tied embeddings) is trained with ``guardreasoner_training``'s RSFTTrainer / HSDPOTrainer on random
token ids whose prompt and answer lengths are drawn from GuardReasoner's real distribution
(``train_lengths.json``: the released models' prompts and outputs, ceil(chars / 4) tokens, cut at 2048).
Weights and AdamW state are fp32 (master weights), compute is bf16 autocast: a faithful full fine-tune.

Each variant runs ``warmup + steps`` optimizer steps (no gradient accumulation unless the variant says so); only the
steps after warm-up are timed (CUDA synchronised at each step end, so data loading and the optimizer are inside the time). Reported:
trained tokens/s (non-padding tokens of prompt + answer), answer tokens/s, MFU and peak memory. MFU counts the
useful FLOPs only: 6 x (non-embedding parameters) per token + 6 x LM-head parameters per answer token (trl's fused
head projects answer positions only) + 6 x layers x hidden x length^2 causal attention per sequence; for DPO 8
instead of 6 (the reference forward). Neither padding nor recomputation counts. Peak: 989 TFLOP/s (H100/H200 SXM
dense bf16, datasheet); the measured bf16 matmul ceiling is reported too.

    PYTHONUNBUFFERED=1 python benchmarks/gpu/train_throughput.py --out $OUT          # on the GPU
    python benchmarks/gpu/train_throughput.py --tiny --out /tmp/bench                 # CPU dry run
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import random
import sys
import time
import traceback
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from llama_configs import LLAMA_1B as LLAMA_3_2_1B

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "training" / "src"))
sys.path.insert(0, str(HERE.parents[1] / "packages" / "core" / "src"))
from guardreasoner.testing import TINY_LLAMA  # noqa: E402

PEAK_TFLOPS = 989.0
# llama_configs' 1B as the committed results (results/train_throughput_h200_run*.json) were measured:
# RoPE at the same theta without llama3's long-context scaling (it changes no FLOP), head_dim left to its
# default (hidden / heads: the same 64), the special ids those of the trainers' stub tokenizer (build_model).
LLAMA_1B = {
    key: value
    for key, value in LLAMA_3_2_1B.items()
    if key not in ("head_dim", "bos_token_id", "eos_token_id", "rope_parameters")
} | {"rope_theta": LLAMA_3_2_1B["rope_parameters"]["rope_theta"]}
TINY = dict(vocab_size=1024, **TINY_LLAMA, max_position_embeddings=4096, tie_word_embeddings=True)

# The padding-free varlen variant the others add to (or change one option of).
PADFREE_VARLEN_BS32 = dict(
    per_device_train_batch_size=32,
    gradient_checkpointing=False,
    padding_free=True,
    attn_implementation="guardreasoner_varlen",
)

# name, prediction written before the run, RSFT options
# The last two are informative extras, run after the long R-SFT and the HS-DPO runs if time is left.
EXTRA_VARIANTS = ("padfree_sdpa_bs8", "padfree_flex_bs32")
RSFT_VARIANTS: list[tuple[str, str, dict[str, Any]]] = [
    (
        "padded_bs8_ckpt",
        "plain trl as quoted (padded batches of 8, gradient checkpointing, sdpa). The quoted 40.6k tok/s was on "
        "uniform 1024-token rows with bf16 weights; here ~half of each padded batch is padding (length spread "
        "382..1976 tokens, mean 724) and autocast re-casts fp32 weights: expect ~20k trained tok/s.",
        dict(per_device_train_batch_size=8, gradient_checkpointing=True, attn_implementation="sdpa"),
    ),
    (
        "padded_bs32",
        "no recomputation (-25% FLOPs) and 4x larger batches: padded throughput ~54k x 0.55 useful ~ 27-30k.",
        dict(per_device_train_batch_size=32, gradient_checkpointing=False, attn_implementation="sdpa"),
    ),
    (
        "padfree_varlen_bs32",
        "padding-free rows (trl padding_free) + torch's FlashAttention varlen kernel: the ~45% padding disappears, "
        "attention stays per sequence: expect ~1.7x padded_bs32, ~50k.",
        dict(PADFREE_VARLEN_BS32),
    ),
    (
        "padfree_varlen_bs32_liger",
        "+ Liger RMSNorm/SwiGLU/RoPE: fewer elementwise passes over activations (memory-bound ~15% of step): +5-10%.",
        dict(PADFREE_VARLEN_BS32, liger_kernels=True),
    ),
    (
        "padfree_varlen_bs32_compile",
        "+ regional torch.compile of the decoder layers (dynamic shapes): fuses norms, SiLU-mul, RoPE and casts "
        "like Liger plus more; +5-15% over varlen once compiled (compile time is excluded: it is in warm-up).",
        dict(PADFREE_VARLEN_BS32, compile_layers=True),
    ),
    (
        "padded_bs16",
        "follow-up after padded_bs32 ran out of memory (32 rows padded to up to 2048 tokens, no recomputation): "
        "16 rows fit; no recomputation and 2x the batch of padded_bs8_ckpt: ~1.6x its 8.2k, ~13k.",
        dict(per_device_train_batch_size=16, gradient_checkpointing=False, attn_implementation="sdpa"),
    ),
    (
        "padfree_varlen_bs32_liger_ga12",
        "the paper's effective batch of 384 on one GPU: 32 x 12 accumulation. The fp32 AdamW step and the "
        "zeroing run once per 12 micro-batches instead of every one: +3-5% over the 12-step varlen+liger figure.",
        dict(PADFREE_VARLEN_BS32, liger_kernels=True, gradient_accumulation_steps=12, warmup=1),
    ),
    (
        "padfree_sdpa_bs8",
        "padding-free with plain sdpa: transformers builds a dense block-diagonal mask over the packed row and the "
        "masked kernel computes all of it (row ~5.8k tokens: ~8x the attention FLOPs): slower than varlen.",
        dict(
            per_device_train_batch_size=8,
            gradient_checkpointing=False,
            padding_free=True,
            attn_implementation="sdpa",
        ),
    ),
    (
        "padfree_flex_bs32",
        "padding-free with flex_attention: block mask skips cross-sequence blocks, but compiles (dynamic) and builds "
        "the block mask each step: between sdpa and varlen.",
        dict(PADFREE_VARLEN_BS32, attn_implementation="flex_attention"),
    ),
]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------------------------------------------------------
# Data


def load_lengths(path: Path, cutoff: int) -> list[tuple[int, int]]:
    pairs = json.loads(path.read_text())["pairs"]
    out = []
    for prompt, answer in pairs:
        prompt, answer = prompt + 1, answer + 1  # BOS, EOS
        if prompt + answer > cutoff:
            answer = max(1, cutoff - prompt)
            prompt = min(prompt, cutoff - answer)
        out.append((prompt, answer))
    return out


def sft_rows(lengths: list[tuple[int, int]], count: int, vocab: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        prompt, answer = rng.choice(lengths)
        ids = [rng.randrange(8, vocab) for _ in range(prompt + answer)]
        # labels given: trl leaves them as they are (the answer-only loss), no per-token map per variant
        rows.append({"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]})
    return rows


def dpo_rows(
    lengths: list[tuple[int, int]], count: int, vocab: int, seed: int, cutoff: int
) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        prompt, chosen = rng.choice(lengths)
        _, rejected = rng.choice(lengths)
        chosen, rejected = min(chosen, cutoff - prompt), min(rejected, cutoff - prompt)
        rows.append(
            {
                "prompt_ids": [rng.randrange(8, vocab) for _ in range(prompt)],
                "chosen_ids": [rng.randrange(8, vocab) for _ in range(max(chosen, 1))],
                "rejected_ids": [rng.randrange(8, vocab) for _ in range(max(rejected, 1))],
                "sample_weight": rng.uniform(0.8, 1.2),
            }
        )
    return rows


def tokenizer_stub() -> Any:
    """A tokenizer with the special tokens the trainers need; the data is already token ids."""
    import tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3}
    core = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>"
    )


# ---------------------------------------------------------------------------------------------------------------
# Measurement


class BatchStats:
    """Wraps the trainer's collator and records, per batch, the token counts the FLOPs and rates are computed from."""

    def __init__(self, collator: Any, kind: str):
        self.collator, self.kind, self.batches = collator, kind, []

    def __call__(self, examples: list[dict[str, Any]]) -> Any:
        if self.kind == "sft":
            lengths = [len(e["input_ids"]) for e in examples]
            answers = [sum(1 for label in e["labels"] if label != -100) for e in examples]
        else:
            lengths, answers = [], []
            for e in examples:
                for key in ("chosen_ids", "rejected_ids"):
                    lengths.append(len(e["prompt_ids"]) + len(e[key]))
                    answers.append(len(e[key]))
        batch = self.collator(examples)
        self.batches.append(
            {
                "tokens": sum(lengths),
                "answer_tokens": sum(answers),
                "sum_sq": sum(n * n for n in lengths),
                "row_tokens": int(batch["input_ids"].numel()),
            }
        )
        return batch


def make_timer(warmup: int) -> Any:
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.ends: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.ends.append(time.perf_counter())

    return StepTimer()


def model_flops(stats: list[dict[str, Any]], cfg: dict[str, Any], body: int, head: int, passes: int) -> float:
    layers, hidden = cfg["num_hidden_layers"], cfg["hidden_size"]
    total = 0.0
    for b in stats:
        total += passes * (body * b["tokens"] + head * b["answer_tokens"] + layers * hidden * b["sum_sq"])
    return total


def summarize(
    name: str,
    timer: Any,
    stats: BatchStats,
    warmup: int,
    cfg: dict,
    body: int,
    head: int,
    passes: int,
    accumulation: int = 1,
) -> dict:
    steps = len(timer.ends) - warmup
    if steps < 1:
        raise RuntimeError(f"only {len(timer.ends)} steps ran")
    seconds = timer.ends[-1] - timer.ends[warmup - 1] if warmup > 0 else timer.ends[-1] - timer.ends[0]
    timed = stats.batches[warmup * accumulation : (warmup + steps) * accumulation]
    tokens = sum(b["tokens"] for b in timed)
    answers = sum(b["answer_tokens"] for b in timed)
    rows = sum(b["row_tokens"] for b in timed)
    flops = model_flops(timed, cfg, body, head, passes)
    per_step = (
        [round(b - a, 4) for a, b in zip(timer.ends[warmup - 1 : -1], timer.ends[warmup:])] if warmup else []
    )
    result = {
        "variant": name,
        "timed_steps": steps,
        "seconds": round(seconds, 3),
        "tokens": tokens,
        "tokens_per_s": round(tokens / seconds, 1),
        "answer_tokens_per_s": round(answers / seconds, 1),
        "padding_fraction": round(1 - tokens / rows, 4) if rows else None,
        "model_tflops_per_s": round(flops / seconds / 1e12, 2),
        "mfu": round(flops / seconds / 1e12 / PEAK_TFLOPS, 4),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
        if torch.cuda.is_available()
        else None,
        "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2)
        if torch.cuda.is_available()
        else None,
        "step_seconds_median": round(sorted(per_step)[len(per_step) // 2], 4) if per_step else None,
        "first_step_seconds": round(timer.ends[0] - getattr(timer, "start", timer.ends[0]), 2),
    }
    return result


# ---------------------------------------------------------------------------------------------------------------
# Runs


def build_model(cfg: dict[str, Any], device: str) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(**cfg, pad_token_id=0, bos_token_id=2, eos_token_id=1)
    with torch.device(device):
        model = LlamaForCausalLM(config)
    return model.float()


def common_args(output_dir: str, steps: int, use_cuda: bool, seed: int = 0) -> dict[str, Any]:
    """The trainer arguments of every run: constant learning rate, bf16 on CUDA, nothing saved or reported."""
    return dict(
        output_dir=output_dir,
        max_steps=steps,
        learning_rate=5e-5,
        lr_scheduler_type="constant",
        bf16=use_cuda,
        use_cpu=not use_cuda,
        report_to=[],
        save_strategy="no",
        logging_steps=10,
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=seed,
    )


def train_measured(trainer: Any, kind: str, warmup: int) -> tuple[Any, BatchStats]:
    """Trains with each batch's tokens counted (``kind``: "sft" or "dpo") and each step timed."""
    stats = BatchStats(trainer.data_collator, kind)
    trainer.data_collator = stats
    timer = make_timer(warmup)
    trainer.add_callback(timer)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    timer.start = time.perf_counter()
    trainer.train()
    return timer, stats


def run_rsft(
    name: str, options: dict, data: Any, args: argparse.Namespace, cfg: dict, body: int, head: int, steps: int
) -> dict:
    from guardreasoner_training.rsft import RSFTConfig, RSFTTrainer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = build_model(cfg, device)
    options = dict(options)
    attn = options.pop("attn_implementation", "sdpa")
    warmup = options.pop("warmup", args.warmup) if not args.tiny else args.warmup
    config = RSFTConfig(
        **common_args(str(args.out / "trainer"), warmup + steps, device == "cuda"),
        attn_implementation=attn,
        cutoff_len=args.cutoff,
        **options,
    )
    accumulation = config.gradient_accumulation_steps
    rows_needed = config.per_device_train_batch_size * accumulation * (warmup + steps)
    data = data.select(range(min(rows_needed, len(data))))
    trainer = RSFTTrainer(model, args=config, train_dataset=data, processing_class=tokenizer_stub())
    timer, stats = train_measured(trainer, "sft", warmup)
    result = summarize(name, timer, stats, warmup, cfg, body, head, passes=6, accumulation=accumulation)
    result["warmup_steps"] = warmup
    result["losses"] = [round(h["loss"], 4) for h in trainer.state.log_history if "loss" in h]
    del trainer, model
    return result


def run_dpo(
    name: str, data: Any, args: argparse.Namespace, cfg: dict, body: int, head: int, steps: int, liger: bool
) -> dict:
    from guardreasoner_training.hsdpo import HSDPOConfig, HSDPOTrainer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = build_model(cfg, device)
    ref = copy.deepcopy(model).eval().requires_grad_(False)
    config = HSDPOConfig(
        **common_args(str(args.out / "trainer"), args.warmup + steps, device == "cuda"),
        attn_implementation="sdpa",
        per_device_train_batch_size=args.dpo_batch,
        gradient_checkpointing=False,
        max_length=args.cutoff,
        liger_kernels=liger,
    )
    trainer = HSDPOTrainer(
        model, ref_model=ref, args=config, train_dataset=data, processing_class=tokenizer_stub()
    )
    timer, stats = train_measured(trainer, "dpo", args.warmup)
    result = summarize(name, timer, stats, args.warmup, cfg, body, head, passes=8)
    result["losses"] = [round(h["loss"], 4) for h in trainer.state.log_history if "loss" in h]
    del trainer, model, ref
    return result


def check_varlen(device: str) -> dict[str, Any]:
    """The varlen attention against per-sequence sdpa, forward and backward, on fresh random data."""
    from guardreasoner_training.attention import _varlen_kernel

    torch.manual_seed(1)
    lengths = [37, 700, 1, 1290, 512]
    heads, kv_heads, dim = 32, 8, 64
    total = sum(lengths)
    q = torch.randn(total, heads, dim, device=device, dtype=torch.bfloat16, requires_grad=True)
    k = torch.randn(total, kv_heads, dim, device=device, dtype=torch.bfloat16, requires_grad=True)
    v = torch.randn(total, kv_heads, dim, device=device, dtype=torch.bfloat16, requires_grad=True)
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], device=device, dtype=torch.int32)
    out = _varlen_kernel(q, k, v, cu, max(lengths), None)
    grad = torch.randn_like(out)
    out.backward(grad)
    got = (out.detach().double(), q.grad.double(), k.grad.double(), v.grad.double())
    q2, k2, v2 = (t.detach().double().requires_grad_(True) for t in (q, k, v))
    pieces = []
    for start, end in zip(cu[:-1].tolist(), cu[1:].tolist()):
        qs = q2[start:end].transpose(0, 1)
        ks = k2[start:end].transpose(0, 1).repeat_interleave(heads // kv_heads, 0)
        vs = v2[start:end].transpose(0, 1).repeat_interleave(heads // kv_heads, 0)
        pieces.append(
            torch.nn.functional.scaled_dot_product_attention(qs, ks, vs, is_causal=True).transpose(0, 1)
        )
    ref = torch.cat(pieces)
    ref.backward(grad.double())
    want = (ref.detach(), q2.grad, k2.grad, v2.grad)
    errors = {n: float((g - w).norm() / w.norm()) for n, g, w in zip(("out", "dq", "dk", "dv"), got, want)}
    return {"relative_errors_vs_fp64_sdpa": errors, "ok": all(e < 2e-2 for e in errors.values())}


def matmul_ceiling() -> float:
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(20):
        a @ b
    end.record()
    torch.cuda.synchronize()
    return 2 * 8192**3 * 20 / (start.elapsed_time(end) / 1e3) / 1e12


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in (
        "torch",
        "transformers",
        "trl",
        "datasets",
        "accelerate",
        "liger-kernel",
        "triton",
        "pyarrow",
    ):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "absent"
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name()
        out["cuda"] = torch.version.cuda
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/train_bench")))
    parser.add_argument("--lengths", type=Path, default=HERE / "train_lengths.json")
    parser.add_argument(
        "--tiny", action="store_true", help="tiny model on CPU: checks the script, measures nothing"
    )
    parser.add_argument("--variants", default="all", help="comma-separated RSFT variant names, or 'all'")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument(
        "--long-steps", type=int, default=200, help="steps of the long R-SFT run (best variant)"
    )
    parser.add_argument("--dpo-steps", type=int, default=100)
    parser.add_argument("--dpo-batch", type=int, default=8)
    parser.add_argument("--cutoff", type=int, default=2048)
    parser.add_argument("--skip", default="", help="comma-separated: hsdpo")
    parser.add_argument("--deadline", type=float, default=500.0, help="seconds; no variant starts after this")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    cuda = torch.cuda.is_available()
    cfg = TINY if args.tiny or not cuda else LLAMA_1B
    head = cfg["vocab_size"] * cfg["hidden_size"]
    model = build_model(cfg, "meta")
    body = sum(p.numel() for p in model.parameters()) - head  # tied: the embedding is the LM head
    del model
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "versions": versions(),
        "model": {"config": cfg, "parameters": body + head, "non_embedding": body, "lm_head": head},
        "peak_tflops_assumed": PEAK_TFLOPS,
        "method": __doc__,
        "results": [],
        "errors": {},
    }
    out_json = args.out / "train_throughput.json"

    def save() -> None:
        report["elapsed_s"] = round(time.perf_counter() - began, 1)
        out_json.write_text(json.dumps(report, indent=1))

    log(f"versions {report['versions']}")
    if cuda:
        report["matmul_bf16_tflops"] = round(matmul_ceiling(), 1)
        log(f"bf16 matmul ceiling {report['matmul_bf16_tflops']} TFLOP/s")
        try:
            report["varlen_check"] = check_varlen("cuda")
        except Exception as exc:  # recorded, and the varlen variants then fail on their own
            report["varlen_check"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        log(f"varlen check {report['varlen_check']}")
    save()

    from datasets import Dataset

    lengths = load_lengths(args.lengths, args.cutoff)
    steps = 2 if args.tiny else args.steps
    warm = 2 if args.tiny else args.warmup
    args.warmup = warm
    long_steps = 3 if args.tiny else args.long_steps
    per_step = 32
    sft_data = Dataset.from_list(
        sft_rows(lengths, per_step * (warm + max(steps, long_steps)), cfg["vocab_size"], 0)
    )
    wanted = None if args.variants == "all" else set(args.variants.split(","))
    needs_cuda = {"guardreasoner_varlen", "flex_attention"}

    def measure(key: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
        """One run: its figures logged and returned, or its error recorded under ``key``; memory freed after."""
        result = None
        try:
            result = run()
            log(
                f"  -> {result['tokens_per_s']} tok/s, MFU {result['mfu']}, peak {result['peak_memory_gib']} GiB"
            )
        except Exception as exc:
            report["errors"][key] = f"{type(exc).__name__}: {exc}"
            log(f"  -> FAILED {report['errors'][key]}")
            traceback.print_exc()
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
        return result

    def run_variants(names: list[str]) -> None:
        for name, prediction, options in RSFT_VARIANTS:
            if name not in names:
                continue
            if time.perf_counter() - began > args.deadline:
                report["errors"][name] = "skipped: past the deadline"
                continue
            if not cuda and (
                options.get("attn_implementation") in needs_cuda
                or options.get("liger_kernels")
                or options.get("compile_layers")
            ):
                report["errors"][name] = "skipped: needs CUDA"
                continue
            log(f"RSFT {name}: {prediction}")
            result = measure(name, partial(run_rsft, name, options, sft_data, args, cfg, body, head, steps))
            if result:
                report["results"].append(result | {"prediction": prediction})
            save()

    selected = [n for n, _, _ in RSFT_VARIANTS if wanted is None or n in wanted]
    run_variants([n for n in selected if n not in EXTRA_VARIANTS])

    # The long R-SFT run: the fastest variant that worked, for a few hundred steps.
    ranked = sorted(report["results"], key=lambda r: r["tokens_per_s"], reverse=True)
    if ranked and time.perf_counter() - began < args.deadline and "long" not in args.skip:
        best = ranked[0]["variant"]
        options = {k: v for k, v in next(o for n, _, o in RSFT_VARIANTS if n == best).items()}
        log(f"RSFT long run: {best} for {long_steps} steps")
        run = partial(run_rsft, f"long_{best}", options, sft_data, args, cfg, body, head, long_steps)
        result = measure("long_rsft", run)
        if result:
            report["long_rsft"] = result
        save()

    if time.perf_counter() - began < args.deadline + 60 and "hsdpo" not in args.skip:
        dpo_steps = 2 if args.tiny else args.dpo_steps
        dpo_data = Dataset.from_list(
            dpo_rows(lengths, args.dpo_batch * (warm + dpo_steps), cfg["vocab_size"], 1, args.cutoff)
        )
        liger = any(r["variant"].endswith("liger") for r in report["results"]) and cuda
        log(f"HS-DPO: padded pairs, batch {args.dpo_batch}, sdpa, liger={liger}, {dpo_steps} steps")
        result = measure(
            "hsdpo", partial(run_dpo, "hsdpo", dpo_data, args, cfg, body, head, dpo_steps, liger)
        )
        if result:
            report["hsdpo"] = result
        save()

    run_variants([n for n in selected if n in EXTRA_VARIANTS])

    print("\nvariant                          tok/s   answer/s   pad%   TFLOP/s   MFU    peak GiB")
    rows = [*report["results"], *(r for r in (report.get("long_rsft"), report.get("hsdpo")) if r)]
    for r in rows:
        pad = f"{100 * r['padding_fraction']:.0f}" if r["padding_fraction"] is not None else "-"
        print(
            f"{r['variant']:<32}{r['tokens_per_s']:>7.0f}{r['answer_tokens_per_s']:>10.0f}{pad:>7}"
            f"{r['model_tflops_per_s']:>10.1f}{r['mfu']:>7.3f}{r['peak_memory_gib'] or 0:>10.1f}"
        )
    for name, error in report["errors"].items():
        print(f"{name}: {error[:300]}")
    print(f"elapsed {time.perf_counter() - began:.0f}s -> {out_json}")


if __name__ == "__main__":
    main()
