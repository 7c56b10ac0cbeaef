"""A stand-in guard for honest wall-clock figures: the Llama-3.2-1B architecture trained from random weights, on
one H200 in a fixed time budget, with our own R-SFT (``guardreasoner_training``) on the released GuardReasoner
outputs of four benchmarks. Random weights never stop and accept no drafts; this model writes outputs in
GuardReasoner's format, stops on its own and parses, so speculative decoding and batch sizes can be measured on
realistic outputs (``vllm_perf.py``). Its labels are not meant to be right.

    python benchmarks/gpu/standin_guard.py --assets $GPU_ASSETS/standin --out $OUT/standin --budget-s 240

Inputs come from ``standin_assets.py`` (built on a CPU machine with the paper's data). Writes ``--out/model``
(a directory the core and vLLM load: weights, tokenizer, ``guardreasoner.json``) and ``--out/train.json``
(settings, steps, losses, seconds). The equivalent command line of the training package::

    guardreasoner-train rsft train.jsonl -o model --model init --epochs 5 --learning-rate 5e-4 \\
        --per-device-batch 16 --grad-accum 1 --no-gradient-checkpointing --padding-free \\
        --attn guardreasoner_varlen --liger --arg warmup_steps=0.05 --arg save_strategy=no

run in-process here so that a callback can stop at the time budget (the cosine schedule is sized to end
within it; the callback only guards a slower machine).

``report`` (used by ``vllm_perf.py`` on the stand-in's greedy outputs for the held-out benchmarks) gives the
parse rate and the length distribution next to the released models' on the same prompts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from guardreasoner.testing import TINY_LLAMA  # noqa: E402
from llama_configs import LLAMA_1B, LLAMA_8B  # noqa: E402

# A 2-layer model of the same family, for checking the training path on a CPU.
TINY = dict(LLAMA_1B, **TINY_LLAMA, head_dim=16)
ARCHITECTURES = {"llama-3.2-1b": LLAMA_1B, "llama-3.1-8b": LLAMA_8B, "tiny": TINY}


def tokenizer(assets: Path):
    """The stand-in's tokenizer (Llama 3's special tokens after a small BPE vocabulary)."""
    import transformers

    vocab = json.loads((assets / "meta.json").read_text())["vocab"]["bpe_ids"]
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(assets / "tokenizer.json"),
        bos_token="<|begin_of_text|>",
        eos_token="<|end_of_text|>",
        pad_token="<|finetune_right_pad_id|>",
    )
    assert tok.bos_token_id == vocab and tok.eos_token_id == vocab + 1, (tok.bos_token_id, vocab)
    return tok


def build_model_dir(
    assets: Path,
    directory: Path,
    architecture: dict,
    *,
    weights: bool,
    vocab_size: int | None = None,
    seed: int = 0,
) -> dict:
    """A Llama directory with the stand-in's tokenizer: random weights (``weights``) or the config only (for
    vLLM's ``load_format="dummy"``, which fills random weights itself)."""
    import torch
    import transformers

    tok = tokenizer(assets)
    tok.save_pretrained(directory)
    own = {
        "vocab_size": vocab_size or len(tok),
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
    }
    config = transformers.LlamaConfig(**{**architecture, **own})
    if not weights:
        config.dtype = torch.bfloat16
        config.save_pretrained(directory)
        return {"vocab_size": config.vocab_size, "weights": "none (vLLM load_format=dummy)"}
    torch.manual_seed(seed)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = transformers.LlamaForCausalLM(config)
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(directory)
    del model
    return {"vocab_size": len(tok), "parameters": params}


def train(args: argparse.Namespace) -> dict:
    import torch
    from guardreasoner_training.records import read_rows, to_train_records
    from guardreasoner_training.rsft import RSFTConfig, train_rsft
    from transformers import TrainerCallback

    started = time.perf_counter()
    init = args.out / "init"
    model_info = build_model_dir(args.assets, init, ARCHITECTURES[args.architecture], weights=True)
    records = to_train_records(read_rows(args.assets / "train.jsonl"), where=str(args.assets / "train.jsonl"))
    records = records[: args.max_records]
    log: list[dict] = []
    budget = args.budget_s

    class TimeBudget(TrainerCallback):
        """Stops training at the budget (a safety net: the schedule is sized to end before it)."""

        def __init__(self) -> None:
            self.began = 0.0
            self.stopped_early = False

        def on_train_begin(self, *_, **__):
            self.began = time.perf_counter()

        def on_step_end(self, _args, state, control, **__):
            if time.perf_counter() - self.began > budget:
                control.should_training_stop = True
                self.stopped_early = True

        def on_log(self, _args, state, control, logs=None, **__):
            log.append(
                {"step": state.global_step, "s": round(time.perf_counter() - self.began, 1), **(logs or {})}
            )
            print(json.dumps(log[-1]), flush=True)

    stopper = TimeBudget()
    steps = int(args.epochs * -(-len(records) // args.batch))  # optimizer steps (no accumulation)
    config = RSFTConfig(
        output_dir=str(args.out / "model"),
        num_train_epochs=args.epochs,
        learning_rate=args.lr,
        warmup_steps=max(1, int(0.05 * steps)),
        lr_scheduler_type="cosine",
        per_device_train_batch_size=args.batch,
        gradient_accumulation_steps=1,
        gradient_checkpointing=False,
        padding_free=True,
        attn_implementation=args.attn,
        liger_kernels=args.liger,
        bf16=torch.cuda.is_available(),  # False only for a CPU check
        save_strategy="no",
        report_to="none",
        logging_steps=10,
        seed=0,
    )
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    saved = train_rsft(records, str(init), config, callbacks=[stopper])
    trained_s = time.perf_counter() - stopper.began
    return {
        "model_dir": str(saved),
        "init": model_info,
        "records": len(records),
        "settings": {
            "epochs": args.epochs,
            "learning_rate": args.lr,
            "warmup": "5% of steps",
            "schedule": "cosine",
            "per_device_batch": args.batch,
            "padding_free": True,
            "attention": args.attn,
            "liger": args.liger,
            "precision": "fp32 master weights, bf16 compute",
        },
        "training_s": round(trained_s, 1),
        "stopped_by_budget": stopper.stopped_early,
        "total_s": round(time.perf_counter() - started, 1),
        "architecture": args.architecture,
        "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1)
        if torch.cuda.is_available()
        else None,
        "log": log,
    }


def percentiles(values: list[int]) -> dict:
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"n": len(ordered), "mean": round(sum(ordered) / len(ordered), 1)} | {
        f"p{int(q * 100)}": pick(q) for q in (0.1, 0.5, 0.9, 0.99)
    }


def report(
    rows: list[dict], texts: list[str], token_counts: list[int], finish_reasons: list[str], tok
) -> dict:
    """Parse rate and lengths of the stand-in's outputs on held-out ``rows``, next to the released models'."""
    from guardreasoner.parsing import parse_output

    statuses = Counter(
        parse_output(text, has_response=row["response"] is not None, finish_reason=reason).parse_status.value
        for row, text, reason in zip(rows, texts, finish_reasons)
    )
    released = {
        model: percentiles([len(tok(r["released"][model], add_special_tokens=False).input_ids) for r in rows])
        for model in ("1B", "3B", "8B")
    }
    return {
        "conversations": len(rows),
        "parse_status": dict(statuses),
        "parse_rate_ok": round(statuses.get("ok", 0) / max(1, len(rows)), 3),
        "finish_reasons": dict(Counter(finish_reasons)),
        "output_tokens": percentiles(token_counts),
        "released_output_tokens": released,
        "example": texts[0][:1500] if texts else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=Path, required=True, help="standin_assets.py's output")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget-s", type=float, default=240.0, help="training time budget (seconds)")
    parser.add_argument("--epochs", type=float, default=5.0)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--liger", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--attn", default="guardreasoner_varlen", help="sdpa for a CPU check")
    parser.add_argument("--max-records", type=int, default=None, help="train on the first N (a CPU check)")
    parser.add_argument("--architecture", choices=sorted(ARCHITECTURES), default="llama-3.2-1b")
    parser.add_argument("--smoke", action="store_true", help="check the inputs and the tokenizer only (CPU)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.smoke:
        tok = tokenizer(args.assets)
        rows = [json.loads(line) for line in (args.assets / "heldout.jsonl").open(encoding="utf-8")][:8]
        texts = [r["released"]["1B"] for r in rows]
        counts = [len(tok(t, add_special_tokens=False).input_ids) for t in texts]
        result = {"smoke": report(rows, texts, counts, ["stop"] * len(rows), tok)}
        result["smoke"].pop("example")
    else:
        result = train(args)
    (args.out / "train.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "log"}, indent=2))


if __name__ == "__main__":
    main()
