"""Compute the length distribution the training benchmarks draw their sequences from.

Reads the 6,585 released GuardReasoner outputs (``predictions/*/*/generated_predictions.jsonl`` of the shared
reference data: the prompt each model was fed and the output it generated) and writes, for each, the prompt and
output length in tokens, estimated as ceil(characters / 4). No Llama 3 tokenizer is available offline; on English
text it averages about 4 to 4.5 characters a token, so this slightly over-counts tokens (longer sequences, a
conservative choice for throughput). Only numbers are written; no text leaves the data folder.

    python benchmarks/gpu/train_lengths.py ../shared/data/guardreasoner benchmarks/gpu/train_lengths.json
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path


def main(data_dir: str, out: str) -> None:
    pairs = []
    files = sorted(Path(data_dir).glob("predictions/*/*/generated_predictions.jsonl"))
    for path in files:
        for line in path.read_text(encoding="utf-8").split("\n"):
            if line.strip():
                row = json.loads(line)
                pairs.append([math.ceil(len(row["prompt"]) / 4), math.ceil(len(row["predict"]) / 4)])
    payload = {
        "description": "Prompt and output lengths of the released GuardReasoner-1B/3B/8B outputs on six benchmarks",
        "token_estimate": "ceil(characters / 4)",
        "files": [str(p.relative_to(data_dir)) for p in files],
        "count": len(pairs),
        "pairs": pairs,
    }
    Path(out).write_text(json.dumps(payload, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"{len(pairs)} pairs from {len(files)} files -> {out}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
