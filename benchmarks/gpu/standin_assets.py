"""Inputs for the stand-in guard (``standin_guard.py``) and ``vllm_perf.py``, built on a CPU machine that has the
paper's data (the GPU machine has no network and no shared data: these travel as part of the bundle ``stage.sh`` builds, unpacked there at ``$GPU_ASSETS``).

    python benchmarks/gpu/standin_assets.py --out .gpu/stage/assets/standin   # stage.sh build runs it

Writes to ``--out`` (about 15 MiB):

- ``train.jsonl``: GuardReasonerTrain records (``instruction``, ``input``, ``output``) from the released
  GuardReasoner-1B/3B/8B outputs (``predict``) on the training benchmarks (HarmBenchPrompt, AegisSafetyTest,
  HarmBenchResponse, XSTestResponseRefusal): what ``guardreasoner-train rsft`` reads.
- ``heldout.jsonl``: the conversations of the held-out benchmarks (SimpleSafetyTests, XSTestReponseHarmful) with
  the three released outputs for each, to compare the stand-in's outputs with.
- ``workload.jsonl``: 1,024 conversations from the benchmark sets the stand-in never saw (the held-out two and
  OpenAIModeration, ToxicChat, SafeRLHF, BeaverTails), shuffled with a fixed seed: ``vllm_perf.py``'s traffic.
- ``tokenizer.json``: a byte-level BPE of ``--vocab`` ids trained on the training outputs and all benchmark
  prompts, plus Llama 3's 256 special tokens after it (``<|begin_of_text|>`` = vocab, ``<|end_of_text|>`` =
  vocab + 1, ``<|eot_id|>`` = vocab + 9). Llama 3's own 128,256-id tokenizer cannot be downloaded; a small
  vocabulary also lets a model trained from scratch in minutes learn it (the stand-in is the Llama-3.2-1B
  architecture with this smaller embedding).
- ``meta.json``: the split, the counts, and the released outputs' length distribution.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vllm_assets import llama3_layout_tokenizer  # noqa: E402

TRAIN = ("HarmBenchPrompt", "AegisSafetyTest", "HarmBenchResponse", "XSTestResponseRefusal")
HELDOUT = ("SimpleSafetyTests", "XSTestReponseHarmful")
# The benchmark files (benchmark/*.json) the training benchmarks come from; every other one is unseen traffic.
TRAIN_FILES = (
    "0_1_AegisSafetyTest",
    "0_3_harmbench_prompt",
    "0_5_harmbench_response",
    "0_7_xstest_response_refusal",
)
MODELS = ("1B", "3B", "8B")


def predictions_dir() -> Path:
    shared = os.environ.get("GUARDREASONER_SHARED_DATA")
    if not shared:
        raise SystemExit("Set GUARDREASONER_SHARED_DATA to the paper's data (source /work/wt/env.sh).")
    return Path(shared) / "guardreasoner" / "predictions"


def read_predictions(model: str, dataset: str) -> list[dict]:
    path = predictions_dir() / model / dataset / "generated_predictions.jsonl"
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()
    ]  # not splitlines: U+2028 is text


def split_prompt(prompt: str) -> tuple[str, str]:
    """A released prompt as GuardReasonerTrain's (instruction, input): ``instruction + "\\n" + input``."""
    from guardreasoner.prompt import INSTRUCTION

    head = INSTRUCTION + "\n"
    if not prompt.startswith(head):
        raise ValueError(
            f"A released prompt does not start with the GuardReasoner instruction: {prompt[:80]!r}"
        )
    return INSTRUCTION, prompt[len(head) :]


def conversation(input_text: str) -> tuple[str, str | None]:
    """The user's prompt and the response (None when the prompt says ``None``) back from the input field."""
    from guardreasoner.prompt import NO_RESPONSE

    body = input_text.removeprefix("Human user:\n")
    prompt, _, response = body.partition("\n\nAI assistant:\n")
    response = response.removesuffix("\n\n")
    return prompt, None if response == NO_RESPONSE else response


def percentiles(values: list[int]) -> dict:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"n": len(ordered), "mean": round(sum(ordered) / len(ordered), 1)} | {
        f"p{int(q * 100)}": pick(q) for q in (0.1, 0.5, 0.9, 0.99)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--workload", type=int, default=1024, help="unseen conversations for vllm_perf.py")
    parser.add_argument("--vocab", type=int, default=32_000, help="BPE ids before the 256 special tokens")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    train = []
    for dataset in TRAIN:
        for model in MODELS:
            for row in read_predictions(model, dataset):
                instruction, input_text = split_prompt(row["prompt"])
                train.append(
                    {
                        "instruction": instruction,
                        "input": input_text,
                        "output": row["predict"],
                        "source": dataset,
                    }
                )
    heldout = []
    for dataset in HELDOUT:
        by_model = {model: read_predictions(model, dataset) for model in MODELS}
        for index, row in enumerate(by_model["1B"]):
            _, input_text = split_prompt(row["prompt"])
            released = {}
            for model in MODELS:
                other = by_model[model][index]
                if other["prompt"] != row["prompt"]:
                    raise ValueError(f"{dataset}: the released files list prompts in different orders")
                released[model] = other["predict"]
            prompt, response = conversation(input_text)
            heldout.append({"prompt": prompt, "response": response, "source": dataset, "released": released})
    unseen = []
    for path in sorted((predictions_dir().parent / "benchmark").glob("*.json")):
        if path.stem in TRAIN_FILES:
            continue
        for item in json.loads(path.read_text(encoding="utf-8")):
            prompt, response = conversation(item["input"])
            unseen.append({"prompt": prompt, "response": response, "source": path.stem})
    random.Random(0).shuffle(unseen)
    workload = unseen[: args.workload]
    for name, rows in (("train.jsonl", train), ("heldout.jsonl", heldout), ("workload.jsonl", workload)):
        with (args.out / name).open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")

    texts = [r["input"] + r["output"] for r in train] + [r["prompt"] + (r["response"] or "") for r in heldout]
    text, trained = llama3_layout_tokenizer(texts, args.vocab)
    (args.out / "tokenizer.json").write_text(text, encoding="utf-8")

    import tokenizers

    tok = tokenizers.Tokenizer.from_str(text)
    released_lengths = {
        model: percentiles(
            [len(tok.encode(r["released"][model], add_special_tokens=False).ids) for r in heldout]
        )
        for model in MODELS
    }
    meta = {
        "train_benchmarks": TRAIN,
        "heldout_benchmarks": HELDOUT,
        "train_records": len(train),
        "heldout_conversations": len(heldout),
        "workload_conversations": len(workload),
        "workload_sources": dict(Counter(r["source"] for r in workload)),
        "vocab": {"bpe_trained": trained, "bpe_ids": args.vocab, "special": 256, "total": args.vocab + 256},
        "released_output_tokens_heldout": released_lengths,
        "train_output_tokens": percentiles(
            [len(tok.encode(r["output"], add_special_tokens=False).ids) for r in train]
        ),
        "build_s": round(time.perf_counter() - started, 1),
    }
    (args.out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
