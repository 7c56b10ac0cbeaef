"""The vllm engine's label scores on the H200 (issues 12 and 14): right, and what they cost.

The engine generates without log-probabilities and then asks one 1-token request per label for the label
candidates' log-probabilities there (``guardreasoner/engines/vllm/label_scores.py``). On the trained tiny guard
in float32 this checks that, sync and async, its outputs equal the ``hf`` engine's and every score agrees
with hf's within ``--tolerance`` (1e-3), none missing; then it times ``classify_batch`` of ``--count`` (512)
conversations with the label requests and without them (the same engine; ``--repeats`` alternations), in
bfloat16. The tiny guard's steps are cheap, so the label requests' share of its time bounds their share on a
1B from above. Writes a JSON summary to ``--out``; exits 1 when the check fails.

    python benchmarks/gpu/vllm_scores_check.py --model-dir $GPU_ASSETS/tiny_guard --out scores.json
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from guardreasoner import GuardReasoner  # noqa: E402
from guardreasoner.testing import TINY_GUARD_CASES  # noqa: E402
from openai_scores_check import compare, report  # noqa: E402
from vllm_suite import timed_batch  # noqa: E402


def timed_batches(guard: GuardReasoner, batch: list, repeats: int) -> dict:
    """``classify_batch`` with the label requests and without, alternated; the medians and their ratio."""
    engine = guard.engine
    labels = engine.label_tokens
    times: dict[str, list[float]] = {"scores": [], "no_scores": []}
    scored = 0
    for _ in range(repeats):
        for mode in times:
            engine.label_tokens = labels if mode == "scores" else None
            verdicts, wall, _ = timed_batch(guard, batch)
            times[mode].append(wall)
            if mode == "scores":
                scored = sum(v.prompt_harmfulness_score is not None for v in verdicts)
    engine.label_tokens = labels
    median = {mode: statistics.median(values) for mode, values in times.items()}
    return {
        "count": len(batch),
        "seconds": {mode: [round(t, 3) for t in values] for mode, values in times.items()},
        "median_s": {mode: round(t, 3) for mode, t in median.items()},
        "scores_over_no_scores": round(median["scores"] / median["no_scores"], 3),
        "verdicts_with_a_request_score": scored,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True, help="a trained guard (the tiny one)")
    parser.add_argument("--tolerance", type=float, default=1e-3)
    parser.add_argument("--max-new-tokens", type=int, default=120)
    parser.add_argument("--count", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    conversations = [(case.prompt, case.response) for case in TINY_GUARD_CASES]
    options = {"max_new_tokens": args.max_new_tokens}
    started = time.monotonic()
    with GuardReasoner(str(args.model_dir), engine="hf", dtype="float32", **options) as hf:
        reference = hf.classify_batch(conversations)
    summary: dict = {"tolerance": args.tolerance, "checks": {}}
    failures = []
    vllm_options = {**options, "engine": "vllm", "gpu_memory_utilization": 0.3, "enforce_eager": True}
    with GuardReasoner(str(args.model_dir), dtype="float32", **vllm_options) as guard:
        for name, verdicts in (
            ("sync", guard.classify_batch(conversations)),
            ("async", asyncio.run(guard.aclassify_batch(conversations))),
        ):
            rows, worst, failed = compare(conversations, reference, verdicts)
            if worst > args.tolerance:
                failed.append(f"{name}: largest score difference {worst:.2e} exceeds {args.tolerance:g}")
            summary["checks"][name] = {"max_abs_difference": worst, "rows": rows}
            failures += [f"{name}: {f}" for f in failed]
    batch = (conversations * (args.count // len(conversations) + 1))[: args.count]
    with GuardReasoner(str(args.model_dir), dtype="bfloat16", **vllm_options) as guard:
        guard.classify_batch(batch[:16])  # builds the engine
        summary["cost_bf16"] = timed_batches(guard, batch, args.repeats)
    return report(summary, failures, started, args.out)


if __name__ == "__main__":
    sys.exit(main())
