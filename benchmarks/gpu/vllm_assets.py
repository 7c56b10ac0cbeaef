"""Inputs for ``vllm_suite.py``, built on a CPU machine that has ``../shared/data`` (the GPU machine has no
network and no shared data, so the suite takes these as a carried folder).

    .venv/bin/python benchmarks/gpu/vllm_assets.py --out .gpu/stage/assets   # stage.sh build runs it

Writes to ``--out``:

- ``workload.jsonl``: 2,048 conversations (``prompt``, ``response`` or null, ``source``) drawn with a fixed seed
  from the paper's ten benchmark sets, so prompt lengths are the real ones.
- ``tokenizer.json``: a byte-level BPE with Llama 3's layout: 128,000 regular ids (the BPE trained on the
  benchmark texts and the released models' outputs, as many merges as that corpus gives, the rest filler
  entries that no text encodes to) and 256 special tokens at 128000-128255 (``<|begin_of_text|>`` = 128000,
  ``<|end_of_text|>`` = 128001, ``<|eot_id|>`` = 128009, ...). Llama 3's own tokenizer cannot be downloaded
  here; this one has its size and special ids, and encodes English at a similar rate.
- ``tiny_guard/``: :func:`guardreasoner.testing.train_tiny_guard`'s model (a tiny Llama trained to answer five
  conversations in GuardReasoner's format), for the verdict-parity check.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data" / "guardreasoner"
VOCAB = 128_000
SPECIAL = {
    0: "<|begin_of_text|>",
    1: "<|end_of_text|>",
    2: "<|reserved_special_token_0|>",
    3: "<|reserved_special_token_1|>",
    4: "<|finetune_right_pad_id|>",
    5: "<|reserved_special_token_2|>",
    6: "<|start_header_id|>",
    7: "<|end_header_id|>",
    8: "<|eom_id|>",
    9: "<|eot_id|>",
    10: "<|python_tag|>",
}


def split_input(text: str) -> tuple[str, str | None]:
    """The benchmark files hold the prompt's conversation part; take the user's prompt and the response back."""
    body = text.removeprefix("Human user:\n")
    prompt, _, response = body.partition("\n\nAI assistant:\n")
    response = response.removesuffix("\n\n")
    return prompt, None if response == "None" else response


def workload(count: int, seed: int) -> list[dict]:
    rows = []
    for path in sorted((SHARED / "benchmark").glob("*.json")):
        for item in json.loads(path.read_text(encoding="utf-8")):
            prompt, response = split_input(item["input"])
            rows.append({"prompt": prompt, "response": response, "source": path.stem})
    random.Random(seed).shuffle(rows)
    return rows[:count]


def corpus() -> list[str]:
    texts = []
    for path in sorted((SHARED / "benchmark").glob("*.json")):
        texts += [item["input"] for item in json.loads(path.read_text(encoding="utf-8"))]
    for path in sorted((SHARED / "predictions").rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").split("\n"):
            if not line.strip():
                continue
            texts.append(json.loads(line).get("predict", ""))
    return texts


def llama3_layout_tokenizer(texts: list[str] | None = None, size: int = VOCAB) -> tuple[str, int]:
    """A byte-level BPE of ``size`` ids trained on ``texts`` (default: the benchmarks and released outputs),
    then Llama 3's 256 special tokens at ``size``...``size + 255``; returns the JSON and the trained size."""
    import tokenizers
    from guardreasoner.prompt import INSTRUCTION

    bpe = tokenizers.Tokenizer(tokenizers.models.BPE())
    bpe.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=size,
        min_frequency=2,
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator([INSTRUCTION] * 10 + (corpus() if texts is None else texts), trainer=trainer)
    trained = bpe.get_vocab_size()
    spec = json.loads(bpe.to_str())
    vocab = spec["model"]["vocab"]
    for index in range(len(vocab), size):  # ids no text encodes to: the model's rows exist, as in Llama 3
        vocab[f"<|filler_{index}|>"] = index
    specials = [SPECIAL.get(i, f"<|reserved_special_token_{i - 8}|>") for i in range(256)]
    spec["added_tokens"] = [
        {
            "id": size + i,
            "content": token,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for i, token in enumerate(specials)
    ]
    spec["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [
            {"SpecialToken": {"id": SPECIAL[0], "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}},
        ],
        "pair": [
            {"SpecialToken": {"id": SPECIAL[0], "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}},
            {"SpecialToken": {"id": SPECIAL[0], "type_id": 1}},
            {"Sequence": {"id": "B", "type_id": 1}},
        ],
        "special_tokens": {SPECIAL[0]: {"id": SPECIAL[0], "ids": [size], "tokens": [SPECIAL[0]]}},
    }
    text = json.dumps(spec, ensure_ascii=False)
    check = tokenizers.Tokenizer.from_str(text)
    assert check.get_vocab_size() == size + 256, check.get_vocab_size()
    assert check.token_to_id(SPECIAL[9]) == size + 9
    assert check.encode("hi").ids[0] == size
    return text, trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--count", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-guard", action="store_true", help="do not train the tiny guard")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    rows = workload(args.count, args.seed)
    with (args.out / "workload.jsonl").open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"workload: {len(rows)} conversations")

    started = time.perf_counter()
    text, trained = llama3_layout_tokenizer()
    (args.out / "tokenizer.json").write_text(text, encoding="utf-8")
    meta = {"trained_bpe_tokens": trained, "filler_tokens": VOCAB - trained, "special_tokens": 256}
    (args.out / "tokenizer_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"tokenizer: {meta} in {time.perf_counter() - started:.0f} s")

    if not args.skip_guard:
        from guardreasoner.testing import train_tiny_guard

        target = args.out / "tiny_guard"
        shutil.rmtree(target, ignore_errors=True)
        train_tiny_guard(target)
        print(f"tiny guard: {target}")


if __name__ == "__main__":
    main()
