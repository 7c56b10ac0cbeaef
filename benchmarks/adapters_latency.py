"""Latency of the LangChain adapter's checks beside the model and of its buffered streaming (issue 11).

Synthetic delays on a CPU, so the figures are about scheduling, not hardware:

- the guard is a real :class:`~guardreasoner.GuardReasoner` whose engine (the scripted one of the tests)
  sleeps a fixed time per generated token, set so that a check of a request takes ``--check-s`` (0.66 s:
  the 1B's measured time per verdict on an H200); a check with a response writes more and takes longer;
- the chat model answers after ``--model-s`` seconds, or streams one token per ``--stream-token-ms``.

Part 1, parallel against serial input checks: wall time per benign turn of ``create_agent`` with
``GuardReasonerMiddleware`` (sync and async) and of ``guard_chain`` (sync and async), output checks off so
the turn is one input check and one model call; against max(check, model) and check + model.

Part 2, buffered streaming of a 500-token answer through ``guard_chain(...).stream``: time to first
released token, total time and overhead against the unguarded stream, per ``stream_chunk_tokens``; and for a
harmful answer (the harmful word at token 300), the tokens leaked (released from the harmful chunk or after
it: must be 0) and how many tokens the model produced before its stream was closed.

Part 3, judged token streaming of a ``create_agent`` agent (issue 23): ``agent.stream(...,
stream_mode="messages")`` on a 500-token answer, per ``GuardReasonerMiddleware`` ``stream_mode``
(``buffered`` at each ``--agent-chunks`` size, ``whole``, ``passthrough``; parallel input check on, the
default) and per check time (``--agent-check-s``: 0.4 s and 1.3 s, the 1B's and 8B's time per verdict
measured on an H200; every check, of a request or of a response, takes that long): time to the first and to
the last released token, tokens released, and for the harmful answer the tokens released and leaked (from
the harmful chunk on; passthrough shows them all) and the tokens the model wrote before it was stopped.

    python benchmarks/adapters_latency.py                # about 6-8 minutes
    python benchmarks/adapters_latency.py --smoke        # delays / 10, under a minute

Results: ``benchmarks/results/adapters_latency_<date>.json`` (date, versions, settings, figures).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from guardreasoner.guard import GuardReasoner  # noqa: E402
from guardreasoner.testing import guard_output  # noqa: E402
from langchain.agents import create_agent  # noqa: E402
from langchain_core.language_models.chat_models import BaseChatModel  # noqa: E402
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage  # noqa: E402
from langchain_core.output_parsers import StrOutputParser  # noqa: E402
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult  # noqa: E402
from langchain_core.prompts import ChatPromptTemplate  # noqa: E402
from langchain_guardreasoner import GuardReasonerMiddleware, guard_chain  # noqa: E402

from tests.conftest import TimedEngine  # noqa: E402  (the test suite's paced scripted guard)

PROMPT = ChatPromptTemplate.from_messages([("human", "{question}")])
QUESTION = "Tell me about the history of Lima."


class TimedChatModel(BaseChatModel):
    """Answers ``answer`` after ``delay`` seconds, or streams its words one per ``token_delay`` seconds."""

    answer: str
    delay: float = 0.0
    token_delay: float = 0.0
    produced: int = 0

    @property
    def _llm_type(self) -> str:
        return "timed-fake"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        time.sleep(self.delay)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(self.answer))])

    async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs):
        await asyncio.sleep(self.delay)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(self.answer))])

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        for word in self.answer.split(" "):
            time.sleep(self.token_delay)
            self.produced += 1
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=word + " "))
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    def bind_tools(self, tools, **kwargs):
        return self


def paced_guard(check_s: float) -> GuardReasoner:
    """A guard whose check of a request alone takes about ``check_s`` (a fixed delay per generated token)."""
    tokens = len(guard_output("unharmful").split())
    return GuardReasoner(engine=TimedEngine(seconds_per_token=check_s / tokens))


def check_seconds(guard: GuardReasoner, response: str | None = None) -> float:
    begin = time.perf_counter()
    guard.classify(QUESTION, response)
    return time.perf_counter() - begin


# -- part 1 ---------------------------------------------------------------------------------------------


def turn_times(surface: str, parallel: bool, guard: GuardReasoner, model_s: float, turns: int) -> list[float]:
    model = TimedChatModel(answer="Lima was founded in 1535.", delay=model_s)
    if surface.startswith("agent"):
        middleware = GuardReasonerMiddleware(guard, check_output=False, parallel_input_check=parallel)
        runnable = create_agent(model, tools=[], middleware=[middleware])
        value: Any = {"messages": [HumanMessage(QUESTION)]}
    else:
        runnable = guard_chain(
            PROMPT | model | StrOutputParser(), guard, check_output=False, parallel_input_check=parallel
        )
        value = {"question": QUESTION}
    runnable.invoke(value)  # warm-up (graph compilation, first-call costs), not timed
    times = []
    for _ in range(turns):
        begin = time.perf_counter()
        if surface.endswith("async"):
            asyncio.run(runnable.ainvoke(value))
        else:
            runnable.invoke(value)
        times.append(time.perf_counter() - begin)
    return times


def parallel_section(args: argparse.Namespace, scale: float) -> dict[str, Any]:
    guard = paced_guard(args.check_s * scale)
    check = statistics.median(check_seconds(guard) for _ in range(3))
    model_s = args.model_s * scale
    rows = {}
    for surface in ("agent_sync", "agent_async", "chain_sync", "chain_async"):
        serial = statistics.median(turn_times(surface, False, guard, model_s, args.turns))
        parallel = statistics.median(turn_times(surface, True, guard, model_s, args.turns))
        rows[surface] = {
            "serial_s": round(serial, 4),
            "parallel_s": round(parallel, 4),
            "parallel_over_max": round(parallel / max(check, model_s), 4),
            "saved_s": round(serial - parallel, 4),
        }
        print(
            f"{surface:12s} serial {serial:.3f}s  parallel {parallel:.3f}s  parallel/max {parallel / max(check, model_s):.3f}"
        )
    return parallel_summary(args, check, model_s, rows)


def parallel_summary(
    args: argparse.Namespace, check: float, model_s: float, rows: dict[str, Any]
) -> dict[str, Any]:
    """Part 1's figures: the check and model times, their max and sum, and each surface's median turn."""
    return {
        "check_s": round(check, 4),
        "model_s": model_s,
        "max_s": round(max(check, model_s), 4),
        "sum_s": round(check + model_s, 4),
        "turns_per_cell": args.turns,
        "median_wall_per_turn": rows,
    }


# -- part 2 ---------------------------------------------------------------------------------------------


def answer(tokens: int, harmful_at: int | None = None) -> str:
    words = [f"w{i}" for i in range(tokens)]
    if harmful_at is not None:
        words[harmful_at] = "bomb"
    return " ".join(words)


def stream_run(chain: Any) -> tuple[float | None, float, list[str]]:
    """Time to the first released text, total time, the released chunks."""
    begin = time.perf_counter()
    first = None
    chunks = []
    for chunk in chain.stream({"question": QUESTION}):
        if first is None:
            first = time.perf_counter() - begin
        chunks.append(chunk)
    return first, time.perf_counter() - begin, chunks


def streaming_section(args: argparse.Namespace, scale: float) -> dict[str, Any]:
    guard = paced_guard(args.check_s * scale)
    token_s = args.stream_token_ms * scale / 1000
    safe, harmful = answer(args.tokens), answer(args.tokens, harmful_at=args.harmful_at)
    plain = PROMPT | TimedChatModel(answer=safe, token_delay=token_s) | StrOutputParser()
    stream_run(plain)  # warm-up, not timed
    unguarded = unguarded_figures([stream_run(plain)[:2] for _ in range(3)])
    print(f"unguarded     first {unguarded['first_token_s']:.3f}s total {unguarded['total_s']:.3f}s")
    rows = []
    for chunk in args.chunks:
        model = TimedChatModel(answer=safe, token_delay=token_s)
        chain = guard_chain(
            PROMPT | model | StrOutputParser(), guard, stream_chunk_tokens=chunk, exit_behavior="replace"
        )
        first, total, chunks = stream_run(chain)
        assert "".join(chunks) == safe + " ", "the safe stream must come through whole"
        harmful_model = TimedChatModel(answer=harmful, token_delay=token_s)
        harmful_chain = guard_chain(
            PROMPT | harmful_model | StrOutputParser(),
            guard,
            stream_chunk_tokens=chunk,
            exit_behavior="replace",
        )
        _, harmful_total, harmful_chunks = stream_run(harmful_chain)
        released_words = "".join(harmful_chunks[:-1]).split()
        assert released_words == harmful.split()[: len(released_words)], (
            "released text is the answer's prefix"
        )
        refused = harmful_chunks[-1] == harmful_chain.violation_message
        row = buffered_row(
            args,
            chunk,
            first,
            total,
            unguarded,
            released_words,
            harmful_model.produced,
            harmful_total,
            refused,
        )
        rows.append(row)
        print(
            f"chunk {chunk:4d}    first {first:.3f}s total {total:.3f}s (+{row['overhead_s']:.3f}s)  "
            f"harmful: released {len(released_words)} leaked {row['harmful_tokens_leaked']} "
            f"produced {harmful_model.produced}"
        )
    return streaming_summary(args, token_s, guard, safe, {"unguarded": unguarded, "buffered": rows})


def unguarded_figures(runs: list[tuple[float | None, float]]) -> dict[str, Any]:
    """The unguarded stream's medians over ``runs`` of (time to first token, total time)."""
    first, total = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
    return {"first_token_s": round(first, 4), "total_s": round(total, 4), "runs": len(runs)}


def buffered_row(
    args: argparse.Namespace,
    chunk: int,
    first: float,
    total: float,
    unguarded: dict[str, Any],
    released: list[str],
    produced: int,
    harmful_total: float,
    refused: bool,
) -> dict[str, Any]:
    """Part 2's figures for one ``stream_chunk_tokens``: the safe stream's times against the unguarded one,
    and what of the harmful answer got out (``released`` words, the model's ``produced`` tokens)."""
    # Leaked: released from the chunk holding the harmful token, or after it.
    leaked = max(0, len(released) - (args.harmful_at // chunk) * chunk)
    return {
        "stream_chunk_tokens": chunk,
        "first_released_s": round(first, 4),
        "total_s": round(total, 4),
        "overhead_s": round(total - unguarded["total_s"], 4),
        "overhead_pct": round(100 * (total / unguarded["total_s"] - 1), 1),
        "harmful_tokens_released": len(released),
        "harmful_tokens_leaked": leaked,
        "harmful_model_tokens_produced": produced,
        "harmful_total_s": round(harmful_total, 4),
        "ended_with_refusal": refused,
    }


def streaming_summary(
    args: argparse.Namespace, token_s: float, guard: GuardReasoner, safe: str, legs: dict[str, Any]
) -> dict[str, Any]:
    """Part 2's figures: the settings, the guard's time on the whole safe answer, and each leg's rows."""
    return {
        "tokens": args.tokens,
        "harmful_at": args.harmful_at,
        "stream_token_s": token_s,
        "check_s_full_answer": round(check_seconds(guard, safe), 4),
        **legs,
    }


# -- part 3 ---------------------------------------------------------------------------------------------


def agent_stream_run(agent: Any) -> dict[str, Any]:
    """Stream ``agent`` in messages mode: the times of the first and the last released answer text, the
    released words (the refusal apart) and whether a refusal came."""
    begin = time.perf_counter()
    first = last = None
    texts, refused = [], False
    for message, _ in agent.stream({"messages": [HumanMessage(QUESTION)]}, stream_mode="messages"):
        if not isinstance(message, AIMessage) or not message.text:
            continue
        if "guardreasoner" in message.response_metadata:
            refused = True
            continue
        last = time.perf_counter() - begin
        first = last if first is None else first
        texts.append(message.text)
    return {"first": first, "last": last, "words": "".join(texts).split(), "refused": refused}


def streamed_agent(mode: str | None, chunk: int, guard: GuardReasoner, answer_text: str, token_s: float):
    """A ``create_agent`` agent on a model streaming ``answer_text``; unguarded when ``mode`` is None."""
    model = TimedChatModel(answer=answer_text, token_delay=token_s)
    middleware = (
        [] if mode is None else [GuardReasonerMiddleware(guard, stream_mode=mode, stream_chunk_tokens=chunk)]
    )
    return model, create_agent(model, tools=[], middleware=middleware)


def agent_stream_row(
    args: argparse.Namespace, mode: str | None, chunk: int, guard: GuardReasoner | None, token_s: float
) -> dict[str, Any]:
    """One mode's figures: the benign answer's release times and tokens, the harmful answer's release."""
    safe, harmful = answer(args.tokens), answer(args.tokens, harmful_at=args.harmful_at)
    _, agent = streamed_agent(mode, chunk, guard, safe, token_s)
    benign = agent_stream_run(agent)
    assert benign["words"] == safe.split(), "the benign answer must come through whole"
    model, agent = streamed_agent(mode, chunk, guard, harmful, token_s)
    blocked = agent_stream_run(agent)
    released = blocked["words"]
    assert released == harmful.split()[: len(released)], "released text is the answer's prefix"
    step = chunk if mode in ("buffered", None) else 1  # what a whole or passthrough release counts in
    step = args.tokens if mode == "whole" else step
    leaked = max(0, len(released) - (args.harmful_at // step) * step)
    return {
        "stream_mode": mode or "unguarded",
        "stream_chunk_tokens": chunk if mode == "buffered" else None,
        "first_released_s": round(benign["first"], 3),
        "last_released_s": round(benign["last"], 3),
        "tokens_released": len(benign["words"]),
        "harmful_tokens_released": len(released),
        "harmful_tokens_leaked": leaked if mode is not None else None,
        "harmful_model_tokens_produced": model.produced,
        "harmful_ended_with_refusal": blocked["refused"],
    }


def agent_streaming_section(args: argparse.Namespace, scale: float) -> dict[str, Any]:
    token_s = args.stream_token_ms * scale / 1000
    warm = streamed_agent("buffered", 64, paced_guard(0.0), answer(20), 0.0)[1]
    agent_stream_run(warm)  # warm-up (graph compilation, first-call costs), not timed
    unguarded = agent_stream_row(args, None, 1, None, token_s)
    print(
        f"unguarded              first {unguarded['first_released_s']:.3f}s last {unguarded['last_released_s']:.3f}s"
    )
    checks = []
    for check_s in args.agent_check_s:
        guard = paced_guard(check_s * scale)
        rows = []
        modes = [("buffered", chunk) for chunk in args.agent_chunks] + [("whole", 0), ("passthrough", 0)]
        for mode, chunk in modes:
            row = agent_stream_row(args, mode, chunk or 1, guard, token_s)
            rows.append(row)
            print(
                f"check {check_s:.1f}s {mode:11s} {chunk or '':>4} first {row['first_released_s']:.3f}s "
                f"last {row['last_released_s']:.3f}s  harmful: released {row['harmful_tokens_released']} "
                f"leaked {row['harmful_tokens_leaked']} produced {row['harmful_model_tokens_produced']}"
            )
        checks.append(
            {
                "check_s": check_s * scale,
                "measured_check_s": round(check_seconds(guard, "x"), 4),
                "rows": rows,
            }
        )
    return {
        "tokens": args.tokens,
        "harmful_at": args.harmful_at,
        "stream_token_s": token_s,
        "parallel_input_check": True,
        "unguarded": unguarded,
        "checks": checks,
    }


def add_agent_streaming_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agent-check-s", type=float, nargs="+", default=[0.4, 1.3])
    parser.add_argument("--agent-chunks", type=int, nargs="+", default=[16, 64, 256])


@dataclass(frozen=True)
class Part:
    """A leg's own part of the benchmark: its options and its measurement."""

    name: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    measure: Callable[[argparse.Namespace, float], dict[str, Any]]


def run(
    leg: str,
    results_stem: str,
    packages: list[str],
    parallel_section: Callable[[argparse.Namespace, float], dict[str, Any]],
    streaming_section: Callable[[argparse.Namespace, float], dict[str, Any]],
    *more: Part,
) -> None:
    """Both legs' command line: the options, the two parts (and the leg's ``more``), and the JSON result
    (with ``packages``' versions) at ``--output`` or ``benchmarks/results/<results_stem>_<date>[_smoke].json``."""
    parser = argparse.ArgumentParser(description=sys.modules["__main__"].__doc__.split("\n\n")[0])
    for part in more:
        part.add_arguments(parser)
    parser.add_argument("--smoke", action="store_true", help="every delay / 10: a quick run-through")
    parser.add_argument("--check-s", type=float, default=0.66, help="a request check's time (seconds)")
    parser.add_argument("--model-s", type=float, default=1.0)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--stream-token-ms", type=float, default=5.0)
    parser.add_argument("--tokens", type=int, default=500)
    parser.add_argument("--harmful-at", type=int, default=300)
    parser.add_argument("--chunks", type=int, nargs="+", default=[32, 64, 128, 256, 500])
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    scale = 0.1 if args.smoke else 1.0
    today = dt.date.today().isoformat()
    versions = {name: importlib.metadata.version(name) for name in packages}
    result = {
        "benchmark": f"adapters_latency ({leg} leg)",
        "date": today,
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "versions": {**versions, "python": platform.python_version()},
        "settings": {**{k: v for k, v in vars(args).items() if k != "output"}, "delay_scale": scale},
        "parallel_input_check": parallel_section(args, scale),
        "buffered_streaming": streaming_section(args, scale),
        **{part.name: part.measure(args, scale) for part in more},
    }
    suffix = "_smoke" if args.smoke else ""
    output = args.output or REPO_ROOT / "benchmarks" / "results" / f"{results_stem}_{today}{suffix}.json"
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {output}")


if __name__ == "__main__":
    run(
        "LangChain",
        "adapters_latency",
        ["langchain", "langchain-core", "langgraph", "pydantic"],
        parallel_section,
        streaming_section,
        Part("agent_streaming", add_agent_streaming_arguments, agent_streaming_section),
    )
