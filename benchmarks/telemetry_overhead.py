"""What OpenTelemetry tracing costs a check (issue 24): the tiny guard on the hf engine, a batch of 512
conversations, with no provider set (the API's proxies: what a user without an SDK gets) and with an SDK
tracer and meter provider exporting to memory, in the same process.

- Tiny guard: ``train_tiny_guard`` (a 2-layer Llama trained to answer ``TINY_GUARD_CASES``; about a minute on
  two cores, or ``--model DIR`` to reuse one), ``engine="hf"``, ``batch_size=64``, one torch thread (on a
  shared two-core machine a second thread mostly waits for the core another process holds, which makes the
  timings swing more, not less; ``--threads`` to change). Each round times the batch
  without a provider, with the SDK, and without again (each round starting one leg later): the two
  no-provider legs measure the noise, the medians give the overhead.
- Scripted engine (no inference, so the telemetry's own cost is most of what is timed): the same 512
  conversations, both legs interleaved, the absolute cost per batch of spans and metrics.

    python benchmarks/telemetry_overhead.py             # about 4 minutes on the 2-core CPU
    python benchmarks/telemetry_overhead.py --smoke     # 64 conversations, 1 round

Results: ``benchmarks/results/telemetry_overhead_<date>.json`` (machine, versions, settings, every timing).
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
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from guardreasoner import GuardReasoner, telemetry  # noqa: E402
from guardreasoner.testing import TINY_GUARD_CASES, ScriptedEngine, train_tiny_guard  # noqa: E402

from tests.conftest import judge  # noqa: E402  (the test suite's scripted guard)
from tests.telemetry import CapturedTelemetry  # noqa: E402


class SdkLeg(CapturedTelemetry):
    """An SDK tracer and meter provider exporting to memory (the tests' own); ``on()`` sends the guard's
    telemetry there, ``off()`` back to the global providers, of which none is set."""

    def on(self) -> None:
        telemetry.set_providers(self.tracer_provider, self.meter_provider)

    def off(self) -> None:
        telemetry.set_providers()


def conversations(count: int) -> list[tuple[str, str | None]]:
    cases = [(case.prompt, case.response) for case in TINY_GUARD_CASES]
    return [cases[i % len(cases)] for i in range(count)]


def timed(guard: GuardReasoner, items: list) -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds (all threads) for one batch. CPU time moves less than wall
    time when other processes take the cores, though it still moves (caches, clock)."""
    wall, cpu = time.perf_counter(), time.process_time()
    verdicts = guard.classify_batch(items)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert len(verdicts) == len(items)
    return wall, cpu


def summary(times: list[tuple[float, float]]) -> dict[str, Any]:
    walls, cpus = [t[0] for t in times], [t[1] for t in times]
    return {
        "median_s": round(statistics.median(walls), 4),
        "min_s": round(min(walls), 4),
        "max_s": round(max(walls), 4),
        "runs_s": [round(t, 4) for t in walls],
        "median_cpu_s": round(statistics.median(cpus), 4),
        "runs_cpu_s": [round(t, 4) for t in cpus],
    }


def ratio(legs: dict[str, list[tuple[float, float]]], over: list[str], under: list[str], which: int) -> float:
    """median(``over`` legs) / median(``under`` legs) - 1, in percent, of wall (0) or CPU (1) time."""
    top = statistics.median(t[which] for leg in over for t in legs[leg])
    bottom = statistics.median(t[which] for leg in under for t in legs[leg])
    return round(100 * (top / bottom - 1), 2)


def tiny_guard_section(args: argparse.Namespace, sdk: SdkLeg, items: list, model: Path) -> dict[str, Any]:
    import torch

    torch.set_num_threads(args.threads)
    guard = GuardReasoner(str(model), engine="hf", batch_size=64)
    timed(guard, items[:64])  # warm-up: first-call costs, not timed
    order = ["no_provider", "sdk", "no_provider_again"]
    legs: dict[str, list[tuple[float, float]]] = {name: [] for name in order}
    for round_ in range(args.rounds):
        # Each round starts one leg later: a leg's place in the round (which moved timings by 10-20 % in a
        # first run) is spread evenly over the legs when the rounds are a multiple of three.
        for name in order[round_ % 3 :] + order[: round_ % 3]:
            (sdk.on if name == "sdk" else sdk.off)()
            legs[name].append(timed(guard, items))
        print(
            f"round {round_ + 1}: "
            + "  ".join(f"{k} {v[-1][0]:.2f}s ({v[-1][1]:.2f} cpu)" for k, v in legs.items()),
            flush=True,
        )
    sdk.off()
    baseline = ["no_provider", "no_provider_again"]
    return {
        "model": f"train_tiny_guard (hidden 128, 2 layers), engine hf, batch_size 64, float32 CPU, {args.threads} thread(s)",
        "legs": {name: summary(times) for name, times in legs.items()},
        "overhead_pct": ratio(legs, ["sdk"], baseline, 0),
        "overhead_cpu_pct": ratio(legs, ["sdk"], baseline, 1),
        "same_leg_twice_pct": ratio(legs, ["no_provider_again"], ["no_provider"], 0),
        "same_leg_twice_cpu_pct": ratio(legs, ["no_provider_again"], ["no_provider"], 1),
    }


def scripted_section(args: argparse.Namespace, sdk: SdkLeg, items: list) -> dict[str, Any]:
    guard = GuardReasoner(engine=ScriptedEngine(judge))
    timed(guard, items)  # warm-up
    legs: dict[str, list[tuple[float, float]]] = {"no_provider": [], "sdk": []}
    for _ in range(args.scripted_repeats):
        sdk.off()
        legs["no_provider"].append(timed(guard, items))
        sdk.on()
        legs["sdk"].append(timed(guard, items))
    sdk.off()
    added = statistics.median(t[0] for t in legs["sdk"]) - statistics.median(
        t[0] for t in legs["no_provider"]
    )
    return {
        "legs": {name: summary(times) for name, times in legs.items()},
        "sdk_added_ms_per_batch": round(1000 * added, 2),
        "sdk_added_us_per_conversation": round(1e6 * added / len(items), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=512)
    parser.add_argument(
        "--rounds", type=int, default=9, help="tiny-guard rounds (no provider, SDK, no provider)"
    )
    parser.add_argument("--scripted-repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the tiny guard")
    parser.add_argument("--model", type=Path, default=None, help="a trained tiny guard's folder to reuse")
    parser.add_argument("--smoke", action="store_true", help="64 conversations, 1 round, 3 scripted repeats")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    if args.smoke:
        args.conversations, args.rounds, args.scripted_repeats = 64, 1, 3
    items = conversations(args.conversations)
    sdk = SdkLeg()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tiny-guard-") as scratch:
        tiny = tiny_guard_section(args, sdk, items, args.model or train_tiny_guard(Path(scratch)))
    scripted = scripted_section(args, sdk, items)
    sdk_batches = args.rounds + args.scripted_repeats
    recorded = sum(point.value for point in sdk.points("guardreasoner.verdicts"))
    assert recorded == sdk_batches * len(items), f"the SDK leg recorded {recorded} verdicts"
    spans = len(sdk.spans())
    assert spans == 2 * sdk_batches, f"the SDK leg exported {spans} spans"  # classify and engine, per batch
    today = dt.date.today().isoformat()
    packages = ["guardreasoner", "torch", "transformers", "opentelemetry-api", "opentelemetry-sdk"]
    result = {
        "benchmark": "telemetry_overhead",
        "date": today,
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "load_average_at_start": [round(x, 2) for x in load],
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "versions": {
            **{name: importlib.metadata.version(name) for name in packages},
            "python": platform.python_version(),
        },
        "settings": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "output"
        },
        "sdk_setup": "TracerProvider + SimpleSpanProcessor(InMemorySpanExporter), MeterProvider(InMemoryMetricReader)",
        "sdk_recorded": {"spans": spans, "verdicts": recorded},
        "tiny_guard": tiny,
        "scripted_engine": scripted,
    }
    suffix = "_smoke" if args.smoke else ""
    output = args.output or REPO_ROOT / "benchmarks" / "results" / f"telemetry_overhead_{today}{suffix}.json"
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        json.dumps(
            {"tiny_guard": {k: v for k, v in tiny.items() if k != "legs"}, "scripted": scripted}, indent=2
        )
    )
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
