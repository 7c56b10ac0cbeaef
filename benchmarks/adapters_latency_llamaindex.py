"""Latency of the LlamaIndex adapter's checks beside the model and of its buffered streaming (issue 11).

The LlamaIndex leg of ``benchmarks/adapters_latency.py``, with the same synthetic delays on a CPU, so the
figures are about scheduling, not hardware:

- the guard is a real :class:`~guardreasoner.GuardReasoner` whose engine (the test suite's ``TimedEngine``)
  sleeps a fixed time per generated token, set so that a check of a request takes ``--check-s`` (0.66 s:
  the 1B's measured time per verdict on an H200); a check with a response writes more and takes longer;
- the LLM answers after ``--model-s`` seconds, or streams one token per ``--stream-token-ms``.

Part 1, parallel against serial input checks: wall time per benign turn of ``GuardedQueryEngine`` (sync
and async), ``GuardedChatEngine`` (sync and async) and ``GuardedAgent`` around a ``FunctionAgent`` (its
``run`` is async), output checks off so the turn is one input check and one model call; against
max(check, model), check + model, and the unguarded turn (the model as the app sees it).

Part 2, buffered streaming of a 500-token answer through a streaming ``GuardedQueryEngine`` (its
``response_gen``) and a streaming ``GuardedAgent`` (``stream_events()``): time to the first released token,
total time and overhead against the unguarded stream, per ``stream_chunk_tokens``; and for a harmful answer
(the harmful word at token 300), the tokens leaked (released from the harmful chunk or after it: must be 0)
and how many tokens the model produced before its stream was closed.

    python benchmarks/adapters_latency_llamaindex.py            # about 3-4 minutes
    python benchmarks/adapters_latency_llamaindex.py --smoke    # delays / 10, under a minute

Results: ``benchmarks/results/adapters_latency_llamaindex_<date>.json`` (date, versions, settings, figures).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from guardreasoner.guard import GuardReasoner  # noqa: E402
from llama_index.core import VectorStoreIndex  # noqa: E402
from llama_index.core.agent.workflow import AgentStream, FunctionAgent  # noqa: E402
from llama_index.core.chat_engine import SimpleChatEngine  # noqa: E402
from llama_index.core.embeddings import MockEmbedding  # noqa: E402
from llama_index.core.memory import ChatMemoryBuffer  # noqa: E402
from llama_index.core.schema import TextNode  # noqa: E402
from llama_index.postprocessor.guardreasoner import (  # noqa: E402
    GuardedAgent,
    GuardedChatEngine,
    GuardedQueryEngine,
)

# the LangChain leg's paced guard and answers (same settings, same figures), the test suite's LLM doubles
from benchmarks.adapters_latency import (  # noqa: E402
    QUESTION,
    answer,
    buffered_row,
    check_seconds,
    paced_guard,
    parallel_summary,
    run,
    streaming_summary,
    unguarded_figures,
)
from tests.llamaindex.conftest import DelayedLLM, LightQueryEngine, ScriptedLLM, ToolCallingLLM  # noqa: E402


def timed(call: Callable[[], Any]) -> float:
    begin = time.perf_counter()
    call()
    return time.perf_counter() - begin


# -- part 1 ---------------------------------------------------------------------------------------------


def surface_turn(
    surface: str, guard: GuardReasoner | None, parallel: bool, model_s: float
) -> Callable[[], Any]:
    """A callable that runs one turn of ``surface`` (unguarded when ``guard`` is None)."""
    llm = DelayedLLM(delay=model_s)
    if surface.startswith("query_engine"):
        engine: Any = LightQueryEngine(llm=llm)
        if guard is not None:
            engine = GuardedQueryEngine(
                engine, guard=guard, check_output=False, parallel_input_check=parallel
            )
        if surface.endswith("async"):
            return lambda: asyncio.run(engine.aquery(QUESTION))
        return lambda: engine.query(QUESTION)
    if surface.startswith("chat_engine"):
        chat: Any = SimpleChatEngine.from_defaults(llm=llm, memory=ChatMemoryBuffer.from_defaults())
        if guard is not None:
            chat = GuardedChatEngine(chat, guard=guard, check_output=False, parallel_input_check=parallel)

        def turn() -> Any:
            chat.reset()  # each turn is a first turn: the same request every time
            return asyncio.run(chat.achat(QUESTION)) if surface.endswith("async") else chat.chat(QUESTION)

        return turn
    chat_llm = ToolCallingLLM(delay=model_s)
    agent: Any = FunctionAgent(tools=[], llm=chat_llm, streaming=False)
    if guard is not None:
        agent = GuardedAgent(agent, guard=guard, check_output=False, parallel_input_check=parallel)

    async def run() -> Any:
        chat_llm.script.append("Lima was founded in 1535.")
        return await agent.run(user_msg=QUESTION)

    return lambda: asyncio.run(run())


def turn_times(turn: Callable[[], Any], turns: int) -> list[float]:
    turn()  # warm-up (first-call costs: tokenizers, workflow setup), not timed
    return [timed(turn) for _ in range(turns)]


def parallel_section(args: argparse.Namespace, scale: float) -> dict[str, Any]:
    guard = paced_guard(args.check_s * scale)
    check = statistics.median(check_seconds(guard) for _ in range(3))
    model_s = args.model_s * scale
    rows = {}
    surfaces = (
        "query_engine_sync",
        "query_engine_async",
        "chat_engine_sync",
        "chat_engine_async",
        "agent_async",
    )
    for surface in surfaces:
        unguarded = statistics.median(turn_times(surface_turn(surface, None, False, model_s), args.turns))
        serial = statistics.median(turn_times(surface_turn(surface, guard, False, model_s), args.turns))
        parallel = statistics.median(turn_times(surface_turn(surface, guard, True, model_s), args.turns))
        rows[surface] = {
            "unguarded_s": round(unguarded, 4),
            "serial_s": round(serial, 4),
            "parallel_s": round(parallel, 4),
            "parallel_over_max": round(parallel / max(check, model_s), 4),
            "parallel_over_max_with_unguarded": round(parallel / max(check, unguarded), 4),
            "saved_s": round(serial - parallel, 4),
        }
        print(
            f"{surface:19s} unguarded {unguarded:.3f}s serial {serial:.3f}s parallel {parallel:.3f}s  "
            f"parallel/max {parallel / max(check, model_s):.3f}"
        )
    return parallel_summary(args, check, model_s, rows)


# -- part 2 ---------------------------------------------------------------------------------------------


def query_stream(text: str, token_s: float, guard: GuardReasoner | None, chunk: int) -> tuple[Any, Any]:
    """A ``(start, llm)`` pair: ``start()`` returns the streamed pieces' iterator."""
    llm = ScriptedLLM(replies=[text], token_delay=token_s)
    index = VectorStoreIndex([TextNode(text="Lima.")], embed_model=MockEmbedding(embed_dim=8))
    engine: Any = index.as_query_engine(llm=llm, streaming=True)
    if guard is not None:
        engine = GuardedQueryEngine(engine, guard=guard, exit_behavior="end", stream_chunk_tokens=chunk)
    return (lambda: engine.query(QUESTION).response_gen), llm


def agent_stream(text: str, token_s: float, guard: GuardReasoner | None, chunk: int) -> tuple[Any, Any]:
    llm = ToolCallingLLM(script=[text], token_delay=token_s)
    agent: Any = FunctionAgent(tools=[], llm=llm)
    if guard is not None:
        agent = GuardedAgent(agent, guard=guard, exit_behavior="end", stream_chunk_tokens=chunk)

    def start() -> Any:
        async def deltas() -> list[tuple[float, str]]:
            handler = agent.run(user_msg=QUESTION)
            seen = [
                (time.perf_counter(), event.delta)
                async for event in handler.stream_events()
                if isinstance(event, AgentStream) and event.delta
            ]
            await handler
            return seen

        return asyncio.run(deltas())

    return start, llm


def stream_run(kind: str, text: str, token_s: float, guard: GuardReasoner | None, chunk: int = 0):
    """Time to the first released text, total time, the released pieces, the model's produced tokens."""
    build = query_stream if kind == "query_engine" else agent_stream
    start, llm = build(text, token_s, guard, chunk)
    begin = time.perf_counter()
    if kind == "query_engine":
        first, pieces = None, []
        for piece in start():
            first = first if first is not None or not piece.strip() else time.perf_counter() - begin
            pieces.append(piece)
    else:
        seen = start()
        first = seen[0][0] - begin if seen else None
        pieces = [delta for _, delta in seen]
    return first, time.perf_counter() - begin, pieces, len(llm.produced)


def streaming_section(args: argparse.Namespace, scale: float) -> dict[str, Any]:
    guard = paced_guard(args.check_s * scale)
    token_s = args.stream_token_ms * scale / 1000
    safe, harmful = answer(args.tokens), answer(args.tokens, harmful_at=args.harmful_at)
    legs = {}
    for kind in ("query_engine", "agent"):
        stream_run(kind, safe, token_s, None)  # warm-up, not timed
        unguarded = unguarded_figures([stream_run(kind, safe, token_s, None)[:2] for _ in range(3)])
        print(
            f"{kind:12s} unguarded     first {unguarded['first_token_s']:.3f}s total {unguarded['total_s']:.3f}s"
        )
        rows = []
        for chunk in args.chunks:
            first, total, pieces, _ = stream_run(kind, safe, token_s, guard, chunk)
            assert "".join(pieces).split() == safe.split(), "the safe stream must come through whole"
            _, harmful_total, harmful_pieces, produced = stream_run(kind, harmful, token_s, guard, chunk)
            released = "".join(harmful_pieces[:-1]).split()
            assert released == harmful.split()[: len(released)], "released text is the answer's prefix"
            refused = harmful_pieces[-1] == "I'm sorry, but I can't help with that."
            row = buffered_row(
                args, chunk, first, total, unguarded, released, produced, harmful_total, refused
            )
            rows.append(row)
            print(
                f"{kind:12s} chunk {chunk:4d} first {first:.3f}s total {total:.3f}s "
                f"(+{row['overhead_s']:.3f}s)  harmful: released {len(released)} "
                f"leaked {row['harmful_tokens_leaked']} produced {produced}"
            )
        legs[kind] = {"unguarded": unguarded, "buffered": rows}
    return streaming_summary(args, token_s, guard, safe, legs)


if __name__ == "__main__":
    run(
        "LlamaIndex",
        "adapters_latency_llamaindex",
        ["llama-index-core", "llama-index-workflows", "pydantic"],
        parallel_section,
        streaming_section,
    )
