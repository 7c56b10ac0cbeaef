"""Load: many concurrent callers through one guard and the ``openai`` engine, with faults injected.

Every answer echoes a nonce from its own request, so a verdict given to the wrong caller is caught. CI runs
1,000 requests from 200 concurrent callers; the full run (10,000 from 1,000) is::

    GUARDREASONER_RELIABILITY_FULL=1 python -m pytest tests/reliability/test_load.py -s
    # or: python -m pytest tests/reliability/test_load.py -s --reliability-full
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import time

import pytest
from _fake_openai import NONCE, FakeOpenAIServer, expected_label
from guardreasoner import GuardReasoner

pytest.importorskip("openai", reason='the openai engine needs: pip install "guardreasoner[openai]"')
pytestmark = pytest.mark.network_loopback

TRANSIENT = {0: "[[500*1]]", 1: "[[429*1]]", 2: "[[reset*1]]", 3: "[[badjson*1]]", 4: "[[html*2]]"}
"""Request ``i`` with ``i % 20`` among these keys misbehaves this way first, then answers."""
PERMANENT_EVERY = 97
"""Every 97th request fails for good (HTTP 500 every time): its verdict must be the policy's."""


def plan(index: int) -> str:
    text = f"request {index} nonce-{index:08x}"
    if index % 3 == 0:
        text += " bad-request"
    if index % PERMANENT_EVERY == 50:
        return "[[500]] " + text
    return TRANSIENT.get(index % 20, "") + " " + text


def full_run(config) -> bool:
    return bool(
        config.getoption("--reliability-full", default=False)
        or os.environ.get("GUARDREASONER_RELIABILITY_FULL")
    )


async def test_concurrent_callers_get_their_own_verdicts_and_none_is_lost(request):
    requests, concurrency = (10_000, 1_000) if full_run(request.config) else (1_000, 200)
    with FakeOpenAIServer(retry_after=0.05) as server:
        guard = GuardReasoner(
            "fake-model",
            engine="openai",
            base_url=server.base_url,
            max_concurrency=concurrency,
            timeout=None,  # loss and attribution are tested here; deadlines in test_faults.py
            request_timeout=600.0,
            max_retries=3,
            backoff_base=0.02,
            backoff_max=0.2,
            max_new_tokens=64,
        )
        pending = list(range(requests))
        results: dict[int, object] = {}

        async def caller() -> None:
            while pending:
                index = pending.pop()
                results[index] = await guard.aclassify(plan(index))

        started = time.monotonic()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        wall = time.monotonic() - started
        await guard.engine.aclose()

    lost = requests - len(results)
    misattributed = policy_decided = 0
    undecided: collections.Counter = collections.Counter()
    for index, verdict in results.items():
        text = plan(index)
        if verdict.decided_by == "policy":
            if "[[500]]" in text and verdict.parse_status.value == "engine_error":
                policy_decided += 1
            else:
                undecided[verdict.parse_status.value] += 1
            continue
        own = NONCE.search(text).group(0)
        if (
            own not in verdict.raw_output
            or verdict.prompt_harmfulness != expected_label(text)
            or "[[500]]" in text
        ):
            misattributed += 1  # another request's answer, or an answer where none could exist
    permanent = sum("[[500]]" in plan(i) for i in range(requests))
    figures = {
        "requests": requests,
        "concurrency": concurrency,
        "server_requests": server.requests,
        "faults_injected": sum(server.faults.values()),
        "faults_by_mode": dict(sorted(server.faults.items())),
        "permanent_failures": permanent,
        "lost": lost,
        "misattributed": misattributed,
        "undecided_unexpectedly": dict(undecided),
        "wall_seconds": round(wall, 1),
    }
    print("\nreliability load:", json.dumps(figures))
    report = os.environ.get("GUARDREASONER_RELIABILITY_REPORT")
    if report:
        with open(report, "w", encoding="utf-8") as file:
            json.dump(figures, file, indent=2)
    assert lost == 0
    assert misattributed == 0
    assert not undecided
    assert policy_decided == permanent
    assert figures["faults_injected"] >= requests // 4
