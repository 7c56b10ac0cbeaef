"""What showing each check in the frameworks' traces costs: a LangChain ``GuardReasoner`` run, a LlamaIndex
``GuardReasoner.<stage>`` span (issue 24).

A batch of ``--checks`` checks goes through :func:`guardreasoner.integrations.classify_checks` on the tests'
scripted guard (whose own cost is parsing its outputs), with no tracer, then with each adapter's tracer, with
no handler listening and with one recording everything (LangChain's ``RunCollectorCallbackHandler`` under a
parent run; LlamaIndex's ``SimpleSpanHandler`` and an event handler on the root dispatcher). The tracer's
cost per check is the difference from the untraced batch, per check (median of ``--repeats``).

It is set against what a check costs on the tiny guard: a random-weight tiny Llama
(:func:`guardreasoner.testing.build_tiny_llama`, on the ``hf`` engine, CPU) judging ``--tiny-batch``
requests in one batch, ``--tiny-tokens`` generated tokens each; the real models cost far more per check.

    python benchmarks/adapters_tracing_overhead.py           # about a minute on two busy cores
    python benchmarks/adapters_tracing_overhead.py --smoke   # a few seconds, no tiny guard

Results: ``benchmarks/results/adapters_tracing_overhead_<date>[_smoke].json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from guardreasoner.guard import GuardReasoner  # noqa: E402
from guardreasoner.integrations import NO_TRACE, Check, CheckTracer, classify_checks  # noqa: E402
from guardreasoner.testing import ScriptedEngine  # noqa: E402
from langchain_core.callbacks import CallbackManager  # noqa: E402
from langchain_core.runnables.config import patch_config  # noqa: E402
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler  # noqa: E402
from langchain_guardreasoner._tracing import RunTracer  # noqa: E402
from llama_index.core.instrumentation import get_dispatcher  # noqa: E402
from llama_index.core.instrumentation.event_handlers import BaseEventHandler  # noqa: E402
from llama_index.core.instrumentation.span_handlers import SimpleSpanHandler  # noqa: E402
from llama_index.postprocessor.guardreasoner._tracing import SpanTracer  # noqa: E402

from tests.conftest import judge  # noqa: E402  (the test suite's scripted guard)


class _Events(BaseEventHandler):
    count: int = 0

    def handle(self, event: Any, **kwargs: Any) -> None:
        self.count += 1


def _seconds(run: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _interleaved(runs: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Each run's median time, the runs taken in turn ``repeats`` times after one warm-up round, so that a
    busy machine's drift falls on all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(repeats + 1):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            if round_:
                times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def tracer_costs(args: argparse.Namespace) -> dict[str, Any]:
    guard = GuardReasoner(engine=ScriptedEngine(judge))
    checks = [Check("input", f"What is the capital of country number {i}?") for i in range(args.checks)]

    def batch(tracer: CheckTracer) -> Callable[[], Any]:
        return lambda: classify_checks(tracer, guard, checks)

    collector = RunCollectorCallbackHandler()
    parent = CallbackManager.configure([collector]).on_chain_start(None, {}, name="parent")
    spans, events = SimpleSpanHandler(), _Events()
    root = get_dispatcher()

    def listened(run: Callable[[], Any]) -> Callable[[], Any]:
        def with_handlers() -> Any:
            root.add_span_handler(spans)
            root.add_event_handler(events)
            try:
                return run()
            finally:
                root.span_handlers.remove(spans)
                root.event_handlers.remove(events)

        return with_handlers

    timings = _interleaved(
        {
            "untraced": batch(NO_TRACE),
            "langchain, no handler": batch(RunTracer([{}])),
            "langchain, RunCollectorCallbackHandler": batch(
                RunTracer([patch_config({}, callbacks=parent.get_child())])
            ),
            "llamaindex, no handler": batch(SpanTracer()),
            "llamaindex, SimpleSpanHandler + event handler": listened(batch(SpanTracer())),
        },
        args.repeats,
    )
    parent.on_chain_end({})
    batches = args.repeats + 1
    recorded = {
        "langchain runs per batch": len(collector.traced_runs[0].child_runs) / batches,
        "llamaindex spans per batch": len(spans.completed_spans) / batches,
        "llamaindex events per batch": events.count / batches,
    }
    base = timings["untraced"]
    return {
        "checks": args.checks,
        "repeats": args.repeats,
        "batch_seconds": {name: round(value, 6) for name, value in timings.items()},
        "tracing_us_per_check": {
            name: round((value - base) / args.checks * 1e6, 1)
            for name, value in timings.items()
            if name != "untraced"
        },
        "recorded": recorded,
    }


def tiny_guard_cost(args: argparse.Namespace) -> dict[str, Any]:
    from guardreasoner.testing import build_tiny_llama

    with tempfile.TemporaryDirectory() as folder:
        model = build_tiny_llama(folder)
        guard = GuardReasoner(str(model), engine="hf", max_new_tokens=args.tiny_tokens, device="cpu")
        requests = [f"What is the capital of country number {i}?" for i in range(args.tiny_batch)]
        guard.classify_batch(requests[:2])  # warm up
        seconds = _seconds(lambda: guard.classify_batch(requests), 1)
    return {
        "batch": args.tiny_batch,
        "max_new_tokens": args.tiny_tokens,
        "batch_seconds": round(seconds, 3),
        "us_per_check": round(seconds / args.tiny_batch * 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checks", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tiny-batch", type=int, default=64)
    parser.add_argument("--tiny-tokens", type=int, default=64)
    parser.add_argument("--smoke", action="store_true", help="64 checks, 2 repeats, no tiny guard")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    if args.smoke:
        args.checks, args.repeats = 64, 2
    tracing = tracer_costs(args)
    result: dict[str, Any] = {
        "benchmark": "adapters_tracing_overhead",
        "date": dt.date.today().isoformat(),
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "versions": {
            **{name: importlib.metadata.version(name) for name in ("langchain-core", "llama-index-core")},
            "python": platform.python_version(),
        },
        "tracing": tracing,
    }
    if not args.smoke:
        tiny = tiny_guard_cost(args)
        result["tiny_guard"] = tiny
        result["tracing_share_of_a_tiny_guard_check"] = {
            name: f"{cost / tiny['us_per_check']:.4%}"
            for name, cost in tracing["tracing_us_per_check"].items()
        }
    suffix = "_smoke" if args.smoke else ""
    output = (
        args.output
        or REPO_ROOT / "benchmarks" / "results" / f"adapters_tracing_overhead_{result['date']}{suffix}.json"
    )
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
