"""Why 3 of the 40 float32 parity prompts gave identical token ids but different text (CPU, no vLLM needed).

    .venv/bin/python benchmarks/gpu/vllm_detok_check.py --assets $GPU_ASSETS

Rebuilds ``vllm_suite.py``'s parity model and prompts, generates the greedy ids with transformers on the CPU
(the GPU run showed vLLM's ids identical to these), and decodes each sequence two ways: all at once, as the
hf engine does (``tokenizer.decode``), and incrementally from the prompt, as vLLM's detokenizer does
(``tokenizers.decoders.DecodeStream`` primed with the prompt ids). Prints every sequence whose texts differ.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import vllm_suite  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/guardreasoner-vllm-detok"))
    args = parser.parse_args()

    import tokenizers
    from guardreasoner.engines.hf import HFEngine
    from guardreasoner.prompt import build_prompt
    from guardreasoner.testing import build_tiny_llama

    directory = args.work / "parity-llama"
    if not (directory / "config.json").exists():
        build_tiny_llama(directory, seed=0, max_position_embeddings=4096, **vllm_suite.PARITY_MODEL)
    hf = HFEngine(str(directory), device="cpu", dtype="float32", batch_size=1, attn_implementation="eager")
    prompts = []
    for row in vllm_suite.load_rows(args.assets):  # the suite's selection
        prompt = build_prompt(row["prompt"], row["response"])
        if hf.count_tokens(prompt) <= 1500:
            prompts.append(prompt)
        if len(prompts) == 40:
            break
    sequences = vllm_suite.hf_greedy(hf, prompts, 64)
    backend = hf.tokenizer._tokenizer
    differing = 0
    for index, (prompt, ids) in enumerate(zip(prompts, sequences)):
        whole = hf._finish(ids)[0]
        stream = tokenizers.decoders.DecodeStream(ids=hf.encode(prompt), skip_special_tokens=True)
        incremental = "".join(stream.step(backend, token) or "" for token in ids)
        if whole != incremental:
            differing += 1
            print(
                f"prompt {index}: decode() gives {len(whole)} chars ({whole.count(chr(0xFFFD))} U+FFFD), "
                f"DecodeStream gives {len(incremental)} chars; decode() ends {whole[-12:]!r}, "
                f"DecodeStream ends {incremental[-12:]!r}; bytes tokens: {[backend.id_to_token(t) for t in ids[:6]]}"
            )
    print(f"{differing} of {len(prompts)} sequences decode differently")


if __name__ == "__main__":
    main()
