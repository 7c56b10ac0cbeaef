"""Shadow mode: GuardReasonerEventHandler on LlamaIndex's instrumentation, judging every model call off the
request path (one verdict per call, little added wall time, nothing dropped silently)."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
from guardreasoner.integrations import GuardReasonerViolation, ShadowRecorder
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.postprocessor.guardreasoner import GuardReasonerEventHandler


@pytest.fixture
def attached():
    """``attached(handler)`` registers the handler on the root dispatcher until the test ends."""
    handlers = []

    def attach(handler: GuardReasonerEventHandler) -> GuardReasonerEventHandler:
        handlers.append(handler.attach())
        return handler

    yield attach
    for handler in handlers:
        handler.detach()
        handler.recorder.close()


async def run_concurrently(engine, queries: list[str]) -> float:
    started = time.perf_counter()
    await asyncio.gather(*(engine.aquery(query) for query in queries))
    return time.perf_counter() - started


async def test_one_verdict_per_model_call_under_100_concurrent_requests(
    timed_query_engine, timed_guard, attached
):
    engine, llm = timed_query_engine(0.05)
    records = []
    handler = attached(GuardReasonerEventHandler(guard=timed_guard(0.01), sink=records.append))
    queries = [f"Question {i}: what is the capital of Peru?" for i in range(99)] + ["How to build a bomb?"]
    await run_concurrently(engine, queries)
    assert handler.recorder.flush(timeout=60)
    assert llm.calls == 100 and len(records) == 100 and handler.recorder.stats()["dropped"] == 0
    # each record is the user's query (not the prompt template) and the answer of that very call
    assert sorted(r["prompt"] for r in records) == sorted(queries)
    assert all(r["response"] == "Answer: " + r["prompt"] for r in records)
    assert [r["prompt"] for r in records if r["harmful"]] == ["How to build a bomb?"]
    assert all(
        r["verdict"]["parse_status"] == "ok" and r["metadata"]["kind"] == "completion" for r in records
    )
    assert handler.errors == 0


async def test_a_slow_guard_adds_under_5_percent_to_the_apps_wall_time(
    timed_query_engine, timed_guard, attached
):
    # the app's time is its model's (2 s), not CPU the shared machine would make noisy
    engine, _ = timed_query_engine(2.0, light=True)
    queries = [f"Question {i}?" for i in range(100)]
    await run_concurrently(engine, queries[:5])  # warm up
    # the guard takes 0.3 s or more per batch of 16: 2 s or more for 100 checks, as long as the app's turn
    handler = GuardReasonerEventHandler(guard=timed_guard(0.3), sink=lambda record: None)
    plain, shadowed = [], []
    for _ in range(3):  # interleaved, best of three: the machine is shared
        plain.append(await run_concurrently(engine, queries))
        handler.attach()
        shadowed.append(await run_concurrently(engine, queries))
        handler.detach()
    assert handler.recorder.flush(timeout=60) and handler.recorder.recorded == 300
    handler.recorder.close()
    assert min(shadowed) < 1.05 * min(plain), (plain, shadowed)


async def test_overload_drops_are_counted_and_logged_once(timed_query_engine, timed_guard, attached, caplog):
    engine, llm = timed_query_engine(0.0)
    records = []
    recorder = ShadowRecorder(timed_guard(0.2), sink=records.append, max_queue=5, workers=1, batch_size=1)
    attached(GuardReasonerEventHandler(recorder))
    with caplog.at_level(logging.WARNING, logger="guardreasoner.shadow"):
        await run_concurrently(engine, [f"Question {i}?" for i in range(40)])
        recorder.close()
    stats = recorder.stats()
    assert stats["dropped"] > 0 and stats["recorded"] + stats["dropped"] == llm.calls == 40
    assert len(records) == stats["recorded"]
    drop_warnings = [r for r in caplog.records if "dropped a check" in r.getMessage()]
    assert len(drop_warnings) == 1  # once, with the count so far; the counters say the rest
    assert any("closed" in r.getMessage() and "'dropped'" in r.getMessage() for r in caplog.records)


async def test_agent_steps_and_chats_are_judged_with_their_history(guard, tool_llm, attached, tmp_path):
    sink = tmp_path / "verdicts.jsonl"
    handler = attached(GuardReasonerEventHandler(guard=guard, sink=str(sink)))

    def lookup(topic: str) -> str:
        """Look a topic up."""
        return "Pack the bomb casing."

    agent = FunctionAgent(tools=[lookup], llm=tool_llm(("lookup", {"topic": "x"}), "Done."), streaming=False)
    await agent.run(user_msg="Tell me about mining.")
    assert handler.recorder.flush(timeout=30)
    records = [json.loads(line) for line in sink.read_text().splitlines()]
    assert len(records) == 2  # one per model call of the agent: the tool call, then the answer
    assert [r["prompt"] for r in records] == ["Tell me about mining."] * 2
    assert [r["response"] for r in records] == [None, "Done."]
    assert all(r["metadata"]["kind"] == "chat" for r in records)


def test_shadow_handler_never_blocks_and_refuses_an_enforcing_recorder(guard):
    with pytest.raises(ValueError, match="swallows every exception"):
        GuardReasonerEventHandler(ShadowRecorder(guard, enforce=True))
    with pytest.raises(ValueError, match="either recorder= or guard="):
        GuardReasonerEventHandler()


def test_enforcing_recorder_raises_in_the_caller(guard):
    records = []
    recorder = ShadowRecorder(guard, sink=records.append, enforce=True)
    assert recorder.check("Capital of Peru?", "Lima.", stage="output").is_safe
    with pytest.raises(GuardReasonerViolation) as caught:
        recorder.check("How to build a bomb?", stage="input")
    assert caught.value.stage == "input" and [r["harmful"] for r in records] == [False, True]
    recorder.close()
