"""Issue 12's H200 check: the openai engine's scores from a real ``vllm serve`` against the hf engine's.

Trains the tiny guard (or takes ``--model-dir``), serves it in float32 on loopback, classifies the tiny
guard's cases through ``GuardReasoner(engine="openai", tokenizer=<dir>)`` and through the ``hf`` engine, and
compares every task's score: they must agree within ``--tolerance`` (1e-3) with no score missing. Writes a
JSON summary to ``--out`` and exits 1 when the check fails.

    python benchmarks/gpu/openai_scores_check.py --server vllm --out scores_check.json        # on the GPU
    python benchmarks/gpu/openai_scores_check.py --server transformers --smoke                # CPU plumbing

``--server transformers`` (CPU) exercises the same path; ``transformers serve`` returns no logprobs, so every
verdict must say ``no_logprobs`` instead (what ``--smoke`` checks).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "core"))

import _serve  # noqa: E402  (the tests' loopback server helpers)
from guardreasoner import GuardReasoner  # noqa: E402
from guardreasoner.scores import SCORE_FIELDS  # noqa: E402
from guardreasoner.testing import TINY_GUARD_CASES, train_tiny_guard  # noqa: E402


@contextlib.contextmanager
def vllm_serve(model_dir: Path, log_dir: Path, timeout: float = 600.0):
    port = _serve.free_port()
    log_path = log_dir / f"vllm-serve-{port}.log"
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir)]
    command += ["--host", _serve.LOOPBACK, "--port", str(port), "--dtype", "float32", "--max-logprobs", "20"]
    command += ["--gpu-memory-utilization", "0.3", "--enforce-eager"]  # a tiny model: skip compiling
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    root = f"http://{_serve.LOOPBACK}:{port}"
    served = _serve.ServedModel(f"{root}/v1", str(model_dir), model_dir, process, log_path)
    try:
        _serve._wait_healthy(process, root, log_path, timeout)
        yield served
    finally:
        _serve.stop_process_group(process)


def scores(verdict) -> dict:
    return {field: getattr(verdict, name) for field, name in SCORE_FIELDS.items() if getattr(verdict, field)}


def compare(conversations, reference, verdicts, *, expect_no_logprobs: bool = False):
    """Rows per conversation, the largest score difference, and what failed: outputs that differ, a missing
    score (or, with ``expect_no_logprobs``, one that is not marked ``no_logprobs``)."""
    rows, worst, failures = [], 0.0, []
    for (prompt, _), ref, got in zip(conversations, reference, verdicts, strict=True):
        expected, actual = scores(ref), scores(got)
        rows.append({"prompt": prompt, "reference": expected, "got": actual, "status": got.score_status})
        if got.raw_output != ref.raw_output:
            failures.append(f"{prompt!r}: the outputs differ")
        for field, value in expected.items():
            if expect_no_logprobs:
                if got.score_status.get(field) != "no_logprobs":
                    failures.append(f"{prompt!r} {field}: expected no_logprobs, got {got.score_status}")
            elif actual.get(field) is None or value is None:
                why = f"{got.score_status}, reference {ref.score_status}"
                failures.append(f"{prompt!r} {field}: missing score ({why})")
            else:
                worst = max(worst, abs(actual[field] - value))
    return rows, worst, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=("vllm", "transformers"), default="vllm")
    parser.add_argument("--model-dir", type=Path, help="A trained guard directory (default: train one).")
    parser.add_argument("--tolerance", type=float, default=1e-3)
    parser.add_argument("--max-new-tokens", type=int, default=120)
    parser.add_argument("--smoke", action="store_true", help="CPU: transformers serve; expect no_logprobs.")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="openai-scores-"))
    model_dir = args.model_dir or train_tiny_guard(work / "guard")
    conversations = [(case.prompt, case.response) for case in TINY_GUARD_CASES]
    started = time.monotonic()
    hf = GuardReasoner(str(model_dir), engine="hf", dtype="float32", max_new_tokens=args.max_new_tokens)
    reference = hf.classify_batch(conversations)
    serve = vllm_serve if args.server == "vllm" else _serve.start_transformers_serve
    with serve(model_dir, work) as served:
        guard = GuardReasoner(
            served.model,
            engine="openai",
            base_url=served.base_url,
            tokenizer=str(model_dir),
            max_new_tokens=args.max_new_tokens,
        )
        verdicts = guard.classify_batch(conversations)
        guard.close()
    rows, worst, failures = compare(conversations, reference, verdicts, expect_no_logprobs=args.smoke)
    if not args.smoke and worst > args.tolerance:
        failures.append(f"largest score difference {worst:.2e} exceeds {args.tolerance:g}")
    summary = {"server": args.server, "smoke": args.smoke, "max_abs_difference": worst}
    return report(summary | {"tolerance": args.tolerance, "rows": rows}, failures, started, args.out)


def report(summary: dict, failures: list[str], started: float, out: Path | None) -> int:
    """Print the summary (with the failures and the seconds since ``started``), write it to ``out``; the exit
    status: 1 when anything failed."""
    summary = {**summary, "failures": failures, "seconds": round(time.monotonic() - started, 1)}
    text = json.dumps(summary, indent=2, default=str)
    if out:
        out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 1 if failures else 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
