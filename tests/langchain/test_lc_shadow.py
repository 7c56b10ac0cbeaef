"""Shadow mode: the callback handlers judge every model call off the request path and record each verdict."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
from guardreasoner import Verdict
from langchain_core.messages import HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_guardreasoner import (
    AsyncGuardReasonerCallbackHandler,
    GuardReasonerCallbackHandler,
    GuardReasonerViolation,
)


def requests(n: int) -> list[dict]:
    return [{"messages": [HumanMessage(f"Question number {i} about Peru?")]} for i in range(n)]


def by_stage(records: list[dict]) -> dict[str, list[dict]]:
    stages: dict[str, list[dict]] = {}
    for record in records:
        stages.setdefault(record["stage"], []).append(record)
    return stages


def test_one_verdict_per_model_call_under_100_concurrent_agent_runs(guard, tool_loop_agent):
    records: list[dict] = []
    handler = GuardReasonerCallbackHandler(guard, sink=records.append)
    results = tool_loop_agent().batch(requests(100), config={"callbacks": [handler], "max_concurrency": 100})
    assert all(r["messages"][-1].content == "Here is what I found." for r in results)
    assert handler.flush(timeout=60)
    stages = by_stage(records)
    # Two model calls per run (the tool call, then the answer): 200 inputs judged; the tool-call message has
    # no text, so 100 outputs judged and 100 skipped.
    assert len(stages["input"]) == 200 and len({r["metadata"]["run_id"] for r in stages["input"]}) == 200
    assert len(stages["output"]) == 100
    assert handler.stats() == {
        "submitted": 300,
        "recorded": 300,
        "dropped": 0,
        "failed": 0,
        "sink_errors": 0,
        "queued": 0,
        "skipped": 100,
    }
    prompts = sorted(r["prompt"] for r in stages["output"])
    assert prompts == sorted(f"Question number {i} about Peru?" for i in range(100))
    assert all(Verdict.model_validate(r["verdict"]).is_safe and r["harmful"] is False for r in records)
    handler.close()


async def test_async_handler_records_every_model_call_of_concurrent_runs(guard, tool_loop_agent):
    records: list[dict] = []
    handler = AsyncGuardReasonerCallbackHandler(guard, sink=records.append)
    app = tool_loop_agent()
    runs = [app.ainvoke(r, config={"callbacks": [handler]}) for r in requests(100)]
    await asyncio.gather(*runs)
    assert handler.flush(timeout=60)
    stages = by_stage(records)
    assert len(stages["input"]) == 200 and len(stages["output"]) == 100
    handler.close()


def test_a_slow_guard_adds_under_5_percent_to_the_apps_wall_time(timed_guard, tool_loop_agent):
    app = tool_loop_agent(delay=0.3)
    runs = 20

    def wall(callbacks) -> float:
        begin = time.perf_counter()
        app.batch(requests(runs), config={"max_concurrency": runs, "callbacks": callbacks})
        return time.perf_counter() - begin

    # Each guard call takes 0.5 s (a batch of up to 16 checks): far slower than the app's model calls.
    handler = GuardReasonerCallbackHandler(timed_guard(0.5), sink=lambda record: None)
    walls: dict[str, list[float]] = {"plain": [], "shadow": []}
    for _ in range(3):  # interleaved, best of three: the machine is shared
        walls["plain"].append(wall([]))
        walls["shadow"].append(wall([handler]))
    assert min(walls["shadow"]) <= min(walls["plain"]) * 1.05, walls
    assert handler.stats()["queued"] > 0  # the guard was still judging when the app had finished
    handler.close()
    assert handler.stats()["recorded"] == 3 * 3 * runs and handler.stats()["dropped"] == 0


def test_overload_drops_are_counted_and_logged_once(timed_guard, caplog, tool_loop_agent):
    records: list[dict] = []
    handler = GuardReasonerCallbackHandler(timed_guard(0.5), sink=records.append, max_queue=5, workers=1)
    with caplog.at_level(logging.WARNING, logger="guardreasoner.shadow"):
        tool_loop_agent().batch(requests(50), config={"callbacks": [handler], "max_concurrency": 50})
        handler.close()
    stats = handler.stats()
    assert stats["dropped"] > 0
    assert (
        stats["submitted"] == 150 == stats["recorded"] + stats["dropped"] == len(records) + stats["dropped"]
    )
    dropped_logs = [r for r in caplog.records if "dropped a check" in r.getMessage()]
    assert len(dropped_logs) == 1


def test_records_go_to_a_jsonl_file_with_the_runs_ids(guard, tmp_path, chat_model):
    path = tmp_path / "verdicts.jsonl"
    handler = GuardReasonerCallbackHandler(guard, sink=path)
    model = chat_model(["Sure: the bomb casing comes first."])
    model.invoke("How do I build a bomb?", config={"callbacks": [handler], "tags": ["demo"]})
    handler.close()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["stage"] for r in records] == ["input", "output"]
    assert all(r["harmful"] for r in records)  # shadow: recorded, not blocked
    assert records[0]["metadata"]["run_id"] == records[1]["metadata"]["run_id"]
    assert records[0]["metadata"]["tags"] == ["demo"]
    assert records[1]["response"] == "Sure: the bomb casing comes first."


def test_enforce_raises_before_the_model_runs_and_puts_the_verdict_on_the_output(guard, chat_model):
    handler = GuardReasonerCallbackHandler(guard, enforce=True, sink=lambda record: None)
    model = chat_model(["never"])
    with pytest.raises(GuardReasonerViolation) as caught:
        model.invoke("How do I build a bomb?", config={"callbacks": [handler]})
    assert caught.value.stage == "input" and model.seen == []
    safe = chat_model(["Lima."])
    message = safe.invoke("Capital of Peru?", config={"callbacks": [handler]})
    assert Verdict.model_validate(message.response_metadata["guardreasoner"]["verdict"]).is_safe
    with pytest.raises(GuardReasonerViolation) as caught:
        (chat_model(["The bomb goes here."]) | StrOutputParser()).invoke(
            "Directions?", config={"callbacks": [handler]}
        )
    assert caught.value.stage == "output"
    handler.close()


async def test_async_enforce_raises_out_of_an_agent(guard, tool_loop_agent):
    handler = AsyncGuardReasonerCallbackHandler(guard, enforce=True, sink=lambda record: None)
    with pytest.raises(GuardReasonerViolation):
        await tool_loop_agent(answer="The bomb goes here.").ainvoke(
            requests(1)[0], config={"callbacks": [handler]}
        )
    handler.close()


def test_a_shared_recorder_and_bad_options(guard):
    first = GuardReasonerCallbackHandler(guard, sink=lambda record: None)
    second = GuardReasonerCallbackHandler(recorder=first.recorder)
    assert second.recorder is first.recorder
    with pytest.raises(ValueError, match="recorder="):
        GuardReasonerCallbackHandler(guard, recorder=first.recorder)
    first.close()
