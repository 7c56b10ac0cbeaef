"""Every way a request can fail ends in its own policy verdict, within the call's deadline.

Against the fake OpenAI-compatible server on loopback (``_fake_openai.py``): each fault is injected into one
conversation, and the verdicts are checked one by one (the answers echo a nonce from their own request).
"""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from _fake_openai import NONCE, FakeOpenAIServer, expected_label
from guardreasoner import GuardReasoner
from guardreasoner.engines.base import GenerationConfig
from guardreasoner.engines.openai import OpenAIEngine
from guardreasoner.errors import (
    ContextLengthError,
    EngineLoadError,
    GuardUndecidedError,
    InvalidInputError,
)

pytest.importorskip("openai", reason='the openai engine needs: pip install "guardreasoner[openai]"')
pytestmark = pytest.mark.network_loopback

DEADLINE = 4.0
SLACK = 1.5
"""Allowed beyond the deadline on a loaded two-core runner (thread hops, the event loop's own latency)."""


def make_guard(server: FakeOpenAIServer, **options) -> GuardReasoner:
    settings = {
        "engine": "openai",
        "base_url": server.base_url,
        "timeout": DEADLINE,
        "request_timeout": 1.0,
        "max_retries": 2,
        "backoff_base": 0.02,
        "backoff_max": 0.1,
        "max_new_tokens": 64,
    }
    return GuardReasoner("fake-model", **{**settings, **options})


def assert_own_answer(verdict, text: str) -> None:
    """The verdict is the model's, for this very request (its nonce), with the label this request gets."""
    assert verdict.decided_by == "model", verdict
    assert NONCE.search(text).group(0) in verdict.raw_output
    assert verdict.prompt_harmfulness == expected_label(text)


TERMINAL = {
    "hang": "timeout",
    "slow": "timeout",
    "500": "engine_error",
    "429": "engine_error",
    "reset": "engine_error",
    "html": "engine_error",
    "badjson": "engine_error",
    "shape": "engine_error",
    "nochoices": "engine_error",
}


@pytest.mark.parametrize("mode", sorted(TERMINAL))
def test_a_persistent_fault_ends_in_a_policy_verdict_within_the_deadline(server, nonce, mode):
    guard = make_guard(server)
    text = f"[[{mode}]] please answer {nonce()}"
    started = time.monotonic()
    verdict = guard.classify(text)
    elapsed = time.monotonic() - started
    assert elapsed < DEADLINE + SLACK, elapsed
    assert verdict.parse_status.value == TERMINAL[mode], verdict
    assert (verdict.decided_by, verdict.policy, verdict.is_harmful) == ("policy", "fail_closed", True)
    assert verdict.error and "fake" not in verdict.raw_output
    if mode not in ("hang", "slow"):
        assert server.faults[mode] == 3  # the first attempt and both retries
    guard.close()


@pytest.mark.parametrize("mode", sorted(TERMINAL))
async def test_async_a_persistent_fault_ends_in_a_policy_verdict_within_the_deadline(server, nonce, mode):
    guard = make_guard(server, policy="fail_open")
    text = f"[[{mode}]] please answer {nonce()}"
    started = time.monotonic()
    verdict = await guard.aclassify(text)
    assert time.monotonic() - started < DEADLINE + SLACK
    assert verdict.parse_status.value == TERMINAL[mode], verdict
    assert (verdict.decided_by, verdict.is_harmful) == ("policy", False)
    await guard.engine.aclose()


def test_a_slow_body_is_cut_at_the_deadline_and_its_late_answer_never_used(server, nonce):
    # One attempt could take all day (request_timeout=60): only the call's deadline stops it. The body
    # trickles a piece every 0.2 s for about 5 s in all.
    guard = make_guard(server, request_timeout=60, max_retries=0, timeout=1.5)
    started = time.monotonic()
    verdict = guard.classify(f"[[slow]] {nonce()}")
    elapsed = time.monotonic() - started
    assert 1.4 < elapsed < 1.5 + SLACK
    assert verdict.parse_status.value == "timeout" and verdict.is_harmful is True
    assert "deadline" in verdict.error
    # The server keeps sending after the verdict; whatever arrives is dropped, and the guard works on.
    follow_up = f"bad-request {nonce()}"
    assert_own_answer(guard.classify(follow_up), follow_up)
    assert server.late_bodies_finished == 0
    guard.close()


@pytest.mark.parametrize(
    "mode", ["500*1", "429*2", "reset*1", "html*1", "badjson*1", "shape*1", "nochoices*1"]
)
def test_transient_faults_are_retried_to_the_right_answer(server, nonce, mode):
    guard = make_guard(server)
    tag = nonce()
    text = f"[[{mode}]] bad-request {tag}"
    verdict = guard.classify(text)
    assert_own_answer(verdict, text)
    assert server.served[tag.removeprefix("nonce-")] == int(mode.split("*")[1]) + 1
    guard.close()


def test_retry_after_past_the_deadline_gives_up_at_once(server, nonce):
    server.retry_after = 30.0  # honoured (up to 60 s) but not past the call's deadline
    guard = make_guard(server, backoff_base=10.0, backoff_max=10.0)
    started = time.monotonic()
    verdict = guard.classify(f"[[429]] {nonce()}")
    assert time.monotonic() - started < 1.0 + SLACK
    assert verdict.parse_status.value == "timeout"
    assert "past the call's deadline" in verdict.error and "HTTP 429" in verdict.error
    assert server.faults["429"] == 1
    guard.close()


@pytest.mark.parametrize("use_async", [False, True])
async def test_each_verdict_depends_on_its_own_request_alone(server, nonce, use_async):
    guard = make_guard(server)
    texts = [f"bad-request {nonce()}", f"fine {nonce()}", f"[[500]] {nonce()}", f"[[badjson]] {nonce()}"]
    texts += [f"[[hang]] {nonce()}", f"[[reset*1]] bad-request {nonce()}", f"fine {nonce()}"]
    verdicts = await guard.aclassify_batch(texts) if use_async else guard.classify_batch(texts)
    assert len(verdicts) == len(texts)
    for text, verdict in zip(texts, verdicts):
        if "[[500]]" in text or "[[badjson]]" in text:
            assert verdict.parse_status.value == "engine_error" and verdict.decided_by == "policy"
        elif "[[hang]]" in text:
            assert verdict.parse_status.value == "timeout" and verdict.decided_by == "policy"
        else:
            assert_own_answer(verdict, text)
    guard.close()


def test_raise_policy_decides_the_whole_batch_then_raises_once(server, nonce):
    guard = make_guard(server, policy="raise")
    texts = [f"bad-request {nonce()}", f"[[500]] {nonce()}", f"fine {nonce()}", f"[[shape]] {nonce()}"]
    with pytest.raises(GuardUndecidedError) as caught:
        guard.classify_batch(texts)
    error = caught.value
    assert len(error.verdicts) == 4
    assert error.verdict is error.verdicts[1] and error.verdict.parse_status.value == "engine_error"
    assert_own_answer(error.verdicts[0], texts[0])
    assert_own_answer(error.verdicts[2], texts[2])
    assert error.verdicts[3].decided_by is None and error.verdicts[3].is_harmful is None
    assert "2 of 4" in str(error)
    # A single call keeps the old shape: one verdict, the undecided one.
    with pytest.raises(GuardUndecidedError) as single:
        guard.classify(f"[[500]] {nonce()}")
    assert single.value.verdicts == [single.value.verdict]
    guard.close()


@pytest.mark.parametrize("items", [None, 42, 4.5, object()])
def test_a_batch_that_is_not_a_list_is_invalid_input(server, items):
    guard = make_guard(server)
    with pytest.raises(InvalidInputError, match="list of conversations"):
        guard.classify_batch(items)
    assert server.requests == 0


async def test_lone_surrogates_are_refused_up_front_naming_the_item(server):
    guard = make_guard(server)
    with pytest.raises(InvalidInputError, match=r"lone surrogate.*character 2"):
        guard.classify("a \ud800 b")
    with pytest.raises(InvalidInputError, match=r"response \(item 1\) holds a lone surrogate"):
        await guard.aclassify_batch(["fine", ("fine", "x \udfff")])
    # The engine used directly refuses it too, instead of an encoding error from deep in the client.
    with pytest.raises(InvalidInputError, match="Prompt 1 .* lone surrogate"):
        guard.engine.generate(["ok", "a \ud800 b"], GenerationConfig(max_new_tokens=4))
    assert server.requests == 0


def test_an_uncountable_megabyte_prompt_is_refused_before_sending(server):
    engine = OpenAIEngine(model="fake-model", base_url=server.base_url)
    with pytest.raises(ContextLengthError, match=r"Prompt 0 is 1048576 bytes, over max_prompt_bytes=262144"):
        engine.generate(["x" * 1024 * 1024], GenerationConfig(max_new_tokens=4))
    assert server.requests == 0
    roomy = OpenAIEngine(model="fake-model", base_url=server.base_url, max_prompt_bytes=None)
    [generation] = roomy.generate(["x" * 1024 * 1024], GenerationConfig(max_new_tokens=4))
    assert generation.finish_reason == "stop" and server.requests == 1


def test_the_servers_tokenize_endpoint_bounds_the_context(nonce):
    with FakeOpenAIServer(tokenize_context=1000) as server:
        guard = make_guard(server, truncation="error", max_new_tokens=64, timeout=None)
        assert guard.engine.max_context_tokens == 1000
        assert guard.engine.count_tokens("one two three") == 4
        with pytest.raises(ContextLengthError, match="prompt tokens but only 936 fit"):
            guard.classify("word " * 5000)
        cutting = make_guard(server, truncation="head_tail", max_new_tokens=64, timeout=None)
        text = f"bad-request {nonce()} " + "word " * 5000
        verdict = cutting.classify(text)
        assert verdict.input_truncated and verdict.prompt_harmfulness == "harmful"


def test_a_killed_server_gives_policy_verdicts_then_the_guard_recovers(server, nonce):
    guard = make_guard(server)
    first = f"fine {nonce()}"
    assert_own_answer(guard.classify(first), first)
    server.stop()
    started = time.monotonic()
    down = guard.classify_batch([f"fine {nonce()}" for _ in range(4)])
    assert time.monotonic() - started < DEADLINE + SLACK
    assert {v.parse_status.value for v in down} == {"engine_error"}
    assert all("Could not reach" in v.error for v in down)
    server.start()  # the same port
    again = f"bad-request {nonce()}"
    assert_own_answer(guard.classify(again), again)
    guard.close()


def test_a_model_that_cannot_load_raises_once_instead_of_verdicts(tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
    with pytest.raises(EngineLoadError, match=r"The hf engine could not be built for .*broken-model"):
        GuardReasoner(str(broken), engine="hf")
    with pytest.raises(EngineLoadError, match="max_concurrency must be at least 1"):
        GuardReasoner("fake-model", engine="openai", max_concurrency=0)


async def test_parsing_a_long_output_runs_off_the_event_loop(server, nonce, monkeypatch):
    import guardreasoner.guard as guard_module

    real_parse = guard_module.parse_output

    def slow_parse(*args, **kwargs):  # a parser stuck on a pathological output, holding its thread
        time.sleep(1.0)
        return real_parse(*args, **kwargs)

    monkeypatch.setattr(guard_module, "parse_output", slow_parse)
    guard = make_guard(server, timeout=None)
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    running = asyncio.ensure_future(ticker())
    text = f"[[long]] bad-request {nonce()}"
    verdict = await guard.aclassify(text)
    running.cancel()
    assert_own_answer(verdict, text)
    assert len(verdict.raw_output) > 16_384
    assert ticks >= 10  # the loop kept turning through the one-second parse
    await guard.engine.aclose()


def test_the_engine_returns_each_prompts_own_result_and_generate_stays_all_or_nothing(server, nonce):
    from guardreasoner.errors import EngineError, EngineTimeoutError

    engine = OpenAIEngine(model="fake-model", base_url=server.base_url, max_retries=0, timeout=5)
    prompts = [f"fine {nonce()}", f"[[500]] {nonce()}", f"[[hang]] {nonce()}", f"bad-request {nonce()}"]
    generations = engine.generate_each(prompts, GenerationConfig(max_new_tokens=8), timeout=1.0)
    assert [g.error is None for g in generations] == [True, False, False, True]
    assert generations[1].error.status_code == 500 and generations[1].error.prompt_index == 1
    assert isinstance(generations[2].error, EngineTimeoutError)
    assert NONCE.search(prompts[3]).group(0) in generations[3].text
    with pytest.raises(EngineError, match="HTTP 500"):
        engine.generate(prompts[:2], GenerationConfig(max_new_tokens=8))
    engine.close()


def sleepy_engine(seconds: float):
    """An engine whose one batched call outlasts the deadline (as a local model on a slow device would)."""
    from guardreasoner.engines.base import Engine, Generation

    class Sleepy(Engine):
        name = "sleepy"

        def generate(self, prompts, config):
            time.sleep(seconds)
            return [Generation(text="late", finish_reason="stop") for _ in prompts]

    return Sleepy()


@pytest.mark.parametrize("use_async", [False, True])
async def test_the_deadline_holds_for_engines_that_batch_the_whole_call(use_async):
    guard = GuardReasoner(engine=sleepy_engine(3.0), timeout=0.5)
    started = time.monotonic()
    verdicts = await guard.aclassify_batch(["a", "b"]) if use_async else guard.classify_batch(["a", "b"])
    assert time.monotonic() - started < 0.5 + SLACK
    assert [v.parse_status.value for v in verdicts] == ["timeout", "timeout"]
    assert all(re.search(r"no answer within 0\.\d+ s", v.error) and v.raw_output == "" for v in verdicts)
