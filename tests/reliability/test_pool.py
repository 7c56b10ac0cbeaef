"""Endpoint pools in the ``openai`` engine: spread load, eject a failing endpoint, retry elsewhere, bring it
back. The breaker's rules on a fake clock; then real servers on loopback, one killed mid-run."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
from _fake_openai import NONCE, FakeOpenAIServer
from guardreasoner.engines.base import GenerationConfig
from guardreasoner.engines.openai import OpenAIEngine
from guardreasoner.engines.openai.endpoints import EndpointPool

sys.path.insert(0, str(Path(__file__).parent.parent / "core"))
import _serve  # noqa: E402

pytest.importorskip("openai", reason='the openai engine needs: pip install "guardreasoner[openai]"')

CONFIG = GenerationConfig(max_new_tokens=8)


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_breaker_ejects_after_repeated_faults_and_brings_the_endpoint_back():
    clock = Clock()
    pool = EndpointPool(
        ["http://a/v1", "http://b/v1", "http://c/v1"], eject_after=2, cooldown=5.0, clock=clock
    )
    a, b, c = pool.endpoints
    # Load is spread: with nothing in flight, each endpoint takes a turn.
    taken = [pool.acquire() for _ in range(3)]
    assert sorted(e.base_url for e in taken) == ["http://a/v1", "http://b/v1", "http://c/v1"]
    for endpoint in taken:
        pool.release(endpoint, ok=True)
    # The fewest in flight wins.
    busy = [pool.acquire(), pool.acquire()]
    assert pool.acquire() not in busy
    for endpoint in pool.endpoints:
        endpoint.in_flight = 0
    # Two faults in a row on `a` eject it; a 4xx (no fault) or a success in between does not count.
    for fault in (RuntimeError("down"), None, RuntimeError("down")):
        pool.acquire()
        pool.release(a, ok=False, fault=fault)
    assert a.ejected_until == 105.0 and a.ejections == 1
    assert all(pool.acquire() is not a for _ in range(20))
    for endpoint in pool.endpoints:
        endpoint.in_flight = 0
    # A retry avoids the endpoint that just failed.
    assert all(pool.acquire(avoid=b) is c for _ in range(5))
    # After the cool-down `a` takes requests again; one more fault ejects it at once, a success restores it.
    clock.now = 105.5
    assert any(pool.acquire() is a for _ in range(3))
    pool.release(a, ok=False, fault=RuntimeError("still down"))
    assert a.ejected_until == 110.5 and a.ejections == 2
    clock.now = 111.0
    pool.release(a, ok=True)
    assert a.consecutive_failures == 0
    # With every endpoint ejected, the one due back soonest is still tried.
    for endpoint, until in zip(pool.endpoints, (130.0, 120.0, 125.0)):
        endpoint.ejected_until = until
    assert pool.acquire() is b


def test_pool_options_are_checked():
    with pytest.raises(ValueError, match="repeat"):
        EndpointPool(["http://a/v1", "http://a/v1"])
    with pytest.raises(ValueError, match="at least one"):
        EndpointPool([])
    with pytest.raises(ValueError, match="async_client serves one base URL"):
        import openai

        OpenAIEngine(
            model="m", base_url=["http://a/v1", "http://b/v1"], async_client=openai.AsyncOpenAI(api_key="k")
        )


@pytest.mark.network_loopback
async def test_a_pool_of_fake_servers_loses_nothing_when_one_dies_mid_run():
    with FakeOpenAIServer() as first, FakeOpenAIServer() as second, FakeOpenAIServer() as third:
        engine = OpenAIEngine(
            model="fake-model",
            base_url=[first.base_url, second.base_url, third.base_url],
            max_concurrency=60,
            max_retries=3,
            backoff_base=0.01,
            backoff_max=0.05,
            eject_after=2,
            cooldown=30.0,
        )
        prompts = [
            f"[[slow*1]] request nonce-{i:08x}" if i % 10 == 0 else f"nonce-{i:08x}" for i in range(300)
        ]
        first.slow_piece_seconds = 0.05
        run = asyncio.ensure_future(engine.agenerate_each(prompts, CONFIG, timeout=60))
        await asyncio.sleep(0.3)
        first.stop()  # dies with requests in flight
        generations = await run
        await engine.aclose()
    assert [g.error for g in generations] == [None] * len(prompts)
    assert [NONCE.search(g.text).group(0) for g in generations] == [NONCE.search(p).group(0) for p in prompts]
    dead, *alive = engine.pool.endpoints
    assert dead.ejections == 1 and dead.ejected_until > 0
    assert all(e.ejections == 0 for e in alive)
    assert second.requests > 50 and third.requests > 50


@pytest.mark.slow
@pytest.mark.network_loopback
def test_a_pool_of_transformers_serve_processes_survives_a_kill_and_takes_the_endpoint_back(
    trained_guard_dir, tmp_path
):
    guard_model_dir = trained_guard_dir
    reason = _serve.serving_unavailable_reason()
    if reason:
        pytest.skip(reason)
    from guardreasoner.prompt import build_prompt
    from guardreasoner.testing import TINY_GUARD_CASES

    prompts = [build_prompt(c.prompt, c.response) for c in TINY_GUARD_CASES] * 2
    expected = [c.output for c in TINY_GUARD_CASES] * 2
    config = GenerationConfig(max_new_tokens=120)
    with ExitStack() as stack:
        servers: list = [None] * 3

        def start(slot: int) -> None:
            servers[slot] = stack.enter_context(_serve.start_transformers_serve(guard_model_dir, tmp_path))

        threads = [threading.Thread(target=start, args=(slot,)) for slot in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(servers), "a transformers serve process did not start"
        engine = OpenAIEngine(
            model=servers[0].model,
            base_url=[s.base_url for s in servers],
            timeout=120,
            max_retries=3,
            backoff_base=0.05,
            backoff_max=0.2,
            eject_after=1,
            cooldown=5.0,
        )
        # Spread: every server answers some of the requests, and the answers are the trained ones.
        assert [g.text for g in engine.generate(prompts, config)] == expected
        assert all(e.requests > 0 for e in engine.pool.endpoints)
        # Kill one (SIGKILL) while it has requests in flight: the run completes through the others, and
        # the dead one is ejected.
        victim, dead = servers[0], engine.pool.endpoints[0]
        outcome: dict = {}
        run = threading.Thread(target=lambda: outcome.update(texts=engine.generate(prompts * 2, config)))
        run.start()
        waited = time.monotonic() + 120
        while dead.in_flight == 0 and time.monotonic() < waited:
            time.sleep(0.002)
        assert dead.in_flight > 0, "no request reached the server to be killed"
        os.killpg(victim.process.pid, signal.SIGKILL)
        run.join()
        assert [g.text for g in outcome["texts"]] == expected * 2
        assert dead.ejections >= 1
        # Bring it back on the same port: after the cool-down it takes requests and answers again.
        port = int(victim.base_url.rsplit(":", 1)[1].split("/")[0])
        stack.enter_context(_serve.start_transformers_serve(guard_model_dir, tmp_path, port=port))
        before = dead.requests
        time.sleep(max(0.0, dead.ejected_until - time.monotonic()))
        assert [g.text for g in engine.generate(prompts, config)] == expected
        assert dead.requests > before and dead.consecutive_failures == 0
        engine.close()
