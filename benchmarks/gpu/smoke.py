"""The first thing a staged GPU machine runs (``run.sh smoke``): does the carried software work there?

torch 2.14 on the image's CUDA libraries (a bf16 matrix product against float64), Triton 3.8 (a kernel
compiled and run), vLLM 0.34 (a tiny random Llama through ``vllm.LLM``: greedy tokens, and the same prompt
through the GPU suffix speculator, whose tokens must be the plain ones). Writes ``smoke.json`` to ``--out``;
exits 1 on the first failure, so the legs after it are not run on a broken stack.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def check_torch() -> dict:
    import torch

    a = torch.randn(2048, 2048, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(2048, 2048, device="cuda", dtype=torch.bfloat16)
    out = (a @ b).double()
    ref = a.double() @ b.double()
    error = ((out - ref).norm() / ref.norm()).item()
    assert error < 1e-2, f"bf16 matmul relative error {error}"
    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0),
        "nccl": ".".join(map(str, torch.cuda.nccl.version())),
        "bf16_matmul_rel_error": error,
    }


def check_triton() -> dict:
    import torch
    import triton
    import triton.language as tl

    @triton.jit
    def add(x, y, out, n, BLOCK: tl.constexpr):
        offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offsets < n
        tl.store(out + offsets, tl.load(x + offsets, mask=mask) + tl.load(y + offsets, mask=mask), mask=mask)

    x, y = torch.randn(10_000, device="cuda"), torch.randn(10_000, device="cuda")
    out = torch.full_like(x, float("nan"))
    add[(triton.cdiv(x.numel(), 1024),)](x, y, out, x.numel(), BLOCK=1024)
    assert torch.equal(out, x + y), "triton add differs from torch"
    return {"triton": triton.__version__}


def check_vllm() -> dict:
    import tempfile

    import vllm
    from guardreasoner.testing import build_tiny_llama

    model = build_tiny_llama(  # head_dim 64, which every attention backend takes
        tempfile.mkdtemp(prefix="tiny-llama-"),
        hidden_size=256,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=512,
    )
    prompt = {"prompt_token_ids": [1, 5, 9, 12, 7, 5, 9, 12, 7, 5, 9]}
    params = vllm.SamplingParams(temperature=0.0, max_tokens=48, ignore_eos=True)
    result: dict = {"vllm": vllm.__version__}
    tokens = {}
    for name, spec in (("plain", None), ("suffix", {"method": "suffix", "num_speculative_tokens": 4})):
        started = time.perf_counter()
        llm = vllm.LLM(  # eager: a check of the stack, not of its speed (no compile, no graph capture)
            model=str(model),
            dtype="float32",
            gpu_memory_utilization=0.15,
            speculative_config=spec,
            seed=0,
            enforce_eager=True,
        )
        tokens[name] = list(llm.generate([prompt], params, use_tqdm=False)[0].outputs[0].token_ids)
        result[f"{name}_build_and_generate_s"] = round(time.perf_counter() - started, 1)
        llm.llm_engine.engine_core.shutdown()
        del llm
    assert tokens["plain"] == tokens["suffix"], f"suffix tokens differ: {tokens}"
    result["tokens_equal"] = True
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    status = 0
    for name, check in (
        ("torch", check_torch),
        ("triton", check_triton),
        ("vllm", check_vllm),
    ):
        try:
            results[name] = check()
        except Exception as exc:  # noqa: BLE001 - the report is the point: which layer of the stack broke
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            status = 1
            break
        finally:
            (args.out / "smoke.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    sys.exit(status)


if __name__ == "__main__":
    main()
