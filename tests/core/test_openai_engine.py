"""The openai engine, against a live ``transformers serve`` on loopback and a scripted stub for failures.

The live server serves the tiny trained guard (``trained_guard_dir``), so the same process checks raw
generation, token accounting, greedy parity with local ``transformers`` generation, the chat route, and the
guard end to end. Nothing here leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest
from guardreasoner.engines.base import GenerationConfig
from guardreasoner.errors import ContextLengthError, EngineError, EngineTimeoutError, MissingExtraError
from guardreasoner.prompt import PromptFormat, build_prompt

try:  # tests/core may become a package
    from . import _serve
except ImportError:
    import _serve

pytest.importorskip("openai", reason='the openai engine needs: pip install "guardreasoner[openai]"')

from guardreasoner.engines.openai import OpenAIEngine  # noqa: E402

OFF_DISTRIBUTION = build_prompt("Tell me about the history of the printing press.")


# ----------------------------------------------------------------------------------------------------------
# The live server
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def guard_model_dir(request, tmp_path_factory) -> Path:
    """The trained tiny guard: the shared fixture when tests/conftest.py has it, else trained here."""
    try:
        return Path(request.getfixturevalue("trained_guard_dir"))
    except pytest.FixtureLookupError:
        from guardreasoner.testing import train_tiny_guard

        return train_tiny_guard(tmp_path_factory.mktemp("openai-guard"))


@pytest.fixture(scope="session")
def served(guard_model_dir, tmp_path_factory):
    reason = _serve.serving_unavailable_reason()
    if reason:
        pytest.skip(reason)
    with _serve.start_transformers_serve(guard_model_dir, tmp_path_factory.mktemp("serve-logs")) as server:
        yield server


@pytest.fixture(scope="session")
def local_model(guard_model_dir):
    """The same weights loaded in this process, for parity checks."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(guard_model_dir)
    model = AutoModelForCausalLM.from_pretrained(guard_model_dir, dtype=torch.float32).eval()
    return tokenizer, model


def local_greedy(local_model, prompt: str, max_new_tokens: int) -> tuple[str, int]:
    """``generate(do_sample=False)`` on the raw prompt with the tokenizer's BOS: (text, tokens generated)."""
    import torch

    tokenizer, model = local_model
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.inference_mode():
        out = model.generate(
            ids, do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id
        )
    new = out[0, ids.shape[-1] :]
    return tokenizer.decode(new, skip_special_tokens=True), int(new.shape[-1])


@pytest.fixture
def engine(served):
    engine = OpenAIEngine(model=served.model, base_url=served.base_url, timeout=60, max_retries=0)
    yield engine
    engine.close()


def tiny_cases():
    from guardreasoner.testing import TINY_GUARD_CASES

    return TINY_GUARD_CASES


@pytest.mark.slow
@pytest.mark.network_loopback
def test_raw_completion_counts_tokens_and_stops_at_max_new_tokens(engine, local_model):
    tokenizer, _ = local_model
    [generation] = engine.generate([OFF_DISTRIBUTION], GenerationConfig(max_new_tokens=5))
    assert generation.finish_reason == "length"
    assert generation.num_generated_tokens == 5
    assert generation.text
    # transformers serve tokenizes the raw prompt with add_special_tokens=True: BOS is added, as vLLM does.
    with_bos = tokenizer(OFF_DISTRIBUTION).input_ids
    assert with_bos[0] == tokenizer.bos_token_id
    assert generation.num_prompt_tokens == len(with_bos)


@pytest.mark.slow
@pytest.mark.network_loopback
def test_trained_conversation_stops_with_the_trained_answer(engine, local_model):
    tokenizer, _ = local_model
    case = tiny_cases()[1]
    [generation] = engine.generate(
        [build_prompt(case.prompt, case.response)], GenerationConfig(max_new_tokens=200)
    )
    assert generation.finish_reason == "stop"
    assert generation.text == case.output
    # The server counts the end-of-sequence token among the generated ones.
    assert (
        generation.num_generated_tokens == len(tokenizer(case.output, add_special_tokens=False).input_ids) + 1
    )


@pytest.mark.slow
@pytest.mark.network_loopback
def test_greedy_is_deterministic_and_matches_local_generation(engine, local_model):
    case = tiny_cases()[2]
    prompts = [build_prompt(case.prompt, case.response), OFF_DISTRIBUTION]
    config = GenerationConfig(max_new_tokens=24)
    first = engine.generate(prompts, config)
    second = engine.generate(prompts, config)
    assert [g.text for g in first] == [g.text for g in second]
    for prompt, generation in zip(prompts, first):
        text, count = local_greedy(local_model, prompt, config.max_new_tokens)
        assert generation.text == text
        assert generation.num_generated_tokens == count


@pytest.mark.slow
@pytest.mark.network_loopback
def test_matches_the_hf_engine(engine, guard_model_dir):
    hf = pytest.importorskip("guardreasoner.engines.hf")
    local = hf.HFEngine(str(guard_model_dir), device="cpu")
    prompts = [build_prompt(c.prompt, c.response) for c in tiny_cases()[:2]] + [OFF_DISTRIBUTION]
    config = GenerationConfig(max_new_tokens=40)
    remote = engine.generate(prompts, config)
    expected = local.generate(prompts, config)
    assert [(g.text, g.finish_reason, g.num_generated_tokens, g.num_prompt_tokens) for g in remote] == [
        (g.text, g.finish_reason, g.num_generated_tokens, g.num_prompt_tokens) for g in expected
    ]


@pytest.mark.slow
@pytest.mark.network_loopback
async def test_async_generation_keeps_order_and_matches_sync(engine):
    prompts = [build_prompt(c.prompt, c.response) for c in tiny_cases()]
    config = GenerationConfig(max_new_tokens=60)
    results = await engine.agenerate(prompts, config)
    assert [g.text for g in results] == [c.output for c in tiny_cases()]
    # Sync generate works from inside a running loop (a notebook cell) and agrees.
    assert [g.text for g in engine.generate(prompts, config)] == [g.text for g in results]
    await engine.aclose()


@pytest.mark.slow
@pytest.mark.network_loopback
def test_chat_format_goes_through_the_servers_chat_template(served, guard_model_dir, local_model):
    tokenizer, _ = local_model
    engine = OpenAIEngine(
        model=served.model,
        base_url=served.base_url,
        prompt_format="chat",
        tokenizer=str(guard_model_dir),
        max_retries=0,
    )
    prompt = build_prompt("What is the capital of France?")
    assert engine.render(prompt) == prompt
    [generation] = engine.generate([prompt], GenerationConfig(max_new_tokens=3))
    assert generation.finish_reason == "length"
    assert generation.num_generated_tokens == 3
    templated = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True, return_dict=True
    )["input_ids"]
    assert generation.num_prompt_tokens == len(templated) == engine.count_tokens(prompt)
    # Raw counting (BOS included) for the raw format.
    raw = OpenAIEngine(model=served.model, base_url=served.base_url, tokenizer=tokenizer)
    assert raw.count_tokens(prompt) == len(tokenizer(prompt).input_ids)
    engine.close()


@pytest.mark.slow
@pytest.mark.network_loopback
def test_unknown_model_name_lists_the_served_models(served):
    engine = OpenAIEngine(model="not-the-served-model", base_url=served.base_url, max_retries=2)
    with pytest.raises(EngineError) as caught:
        engine.generate(["hello"], GenerationConfig(max_new_tokens=2))
    message = str(caught.value)
    assert f"{served.base_url}/completions" in message
    assert "HTTP 400" in message
    assert repr(served.model) in message and "not-the-served-model" in message
    assert caught.value.status_code == 400
    assert caught.value.attempts == 1  # a client error is not retried
    assert caught.value.served_models == [served.model]


@pytest.mark.slow
@pytest.mark.network_loopback
def test_guard_end_to_end_over_the_server(served):
    guard_module = pytest.importorskip("guardreasoner.guard")
    guard = guard_module.GuardReasoner(
        served.model, engine="openai", base_url=served.base_url, max_new_tokens=120, request_timeout=60
    )
    cases = tiny_cases()
    for case, verdict in zip(cases, guard.classify_batch([(c.prompt, c.response) for c in cases])):
        assert (verdict.prompt_harmfulness, verdict.response_refusal, verdict.response_harmfulness) == (
            case.prompt_harmfulness,
            case.response_refusal,
            case.response_harmfulness,
        ), verdict
        assert not verdict.is_parsing_error
        assert verdict.finish_reason == "stop"
    single = guard.classify(cases[0].prompt)
    assert single.prompt_harmfulness == "harmful" and single.is_harmful is True
    guard.close()


@pytest.mark.slow
@pytest.mark.network_loopback
async def test_guard_async_end_to_end_over_the_server(served):
    guard_module = pytest.importorskip("guardreasoner.guard")
    guard = guard_module.GuardReasoner(
        served.model, engine="openai", base_url=served.base_url, max_new_tokens=120
    )
    cases = tiny_cases()
    verdicts = await asyncio.gather(*(guard.aclassify(c.prompt, c.response) for c in cases))
    assert [v.prompt_harmfulness for v in verdicts] == [c.prompt_harmfulness for c in cases]
    assert [v.response_harmfulness for v in verdicts] == [c.response_harmfulness for c in cases]
    guard.close()


# ----------------------------------------------------------------------------------------------------------
# Failures, against a scripted stub
# ----------------------------------------------------------------------------------------------------------


def stub_engine(stub: _serve.StubServer, **options) -> OpenAIEngine:
    defaults = {"model": "stub-model", "base_url": stub.base_url, "backoff_base": 0.02, "backoff_max": 0.2}
    return OpenAIEngine(**{**defaults, **options})


def fail_then_succeed(failures: int, status: int, headers: dict | None = None):
    def script(number, body):
        if number < failures:
            return status, {"error": {"message": f"busy ({number})"}}, headers or {}
        return 200, _serve.completion_body("fine", "stop", 7, 2)

    return script


@pytest.mark.network_loopback
def test_retries_503_with_backoff_then_succeeds():
    with _serve.StubServer(fail_then_succeed(2, 503)) as stub:
        engine = stub_engine(stub, max_retries=3, backoff_base=0.1, backoff_max=1.0)
        started = time.monotonic()
        [generation] = engine.generate(["p"], GenerationConfig(max_new_tokens=5))
        elapsed = time.monotonic() - started
    assert len(stub.requests) == 3
    assert generation.text == "fine" and generation.finish_reason == "stop"
    assert (generation.num_prompt_tokens, generation.num_generated_tokens) == (7, 2)
    assert elapsed >= 0.05 + 0.1  # at least half of each backoff ceiling: 0.1, then 0.2


@pytest.mark.network_loopback
async def test_async_retries_429_honouring_retry_after():
    # backoff_base alone would wait 10 s; the server's Retry-After says 0.05 s.
    with _serve.StubServer(fail_then_succeed(1, 429, {"Retry-After": "0.05"})) as stub:
        engine = stub_engine(stub, max_retries=1, backoff_base=10.0, backoff_max=10.0)
        started = time.monotonic()
        [generation] = await engine.agenerate(["p"], GenerationConfig(max_new_tokens=5))
        assert time.monotonic() - started < 3
        await engine.aclose()
    assert len(stub.requests) == 2 and generation.text == "fine"


@pytest.mark.network_loopback
def test_server_errors_exhaust_the_retries():
    with _serve.StubServer(lambda number, body: (500, {"detail": "model crashed"})) as stub:
        engine = stub_engine(stub, max_retries=2)
        with pytest.raises(EngineError) as caught:
            engine.generate(["p"], GenerationConfig(max_new_tokens=5))
    assert len(stub.requests) == 3
    error = caught.value
    assert not isinstance(error, EngineTimeoutError)
    assert (error.status_code, error.attempts) == (500, 3)
    assert f"{stub.base_url}/completions" in str(error) and "HTTP 500" in str(error)
    assert "model crashed" in str(error)


@pytest.mark.network_loopback
async def test_async_server_errors_exhaust_the_retries():
    with _serve.StubServer(lambda number, body: (502, {"detail": "bad gateway"})) as stub:
        engine = stub_engine(stub, max_retries=1)
        with pytest.raises(EngineError, match="HTTP 502"):
            await engine.agenerate(["p"], GenerationConfig(max_new_tokens=5))
    assert len(stub.requests) == 2


@pytest.mark.network_loopback
def test_client_errors_are_not_retried_and_name_the_served_models():
    reply = (404, {"object": "error", "message": "The model `wrong` does not exist.", "code": 404})
    with _serve.StubServer(lambda number, body: reply, models=["yueliu1999/GuardReasoner-8B"]) as stub:
        engine = stub_engine(stub, model="wrong", max_retries=3)
        with pytest.raises(EngineError) as caught:
            engine.generate(["p"], GenerationConfig(max_new_tokens=5))
    assert len(stub.requests) == 1
    message = str(caught.value)
    assert "HTTP 404" in message and "does not exist" in message
    assert "'yueliu1999/GuardReasoner-8B'" in message and "model='wrong' is not among them" in message


@pytest.mark.network_loopback
def test_context_length_rejection_is_a_context_length_error():
    detail = "This model's maximum context length is 128 tokens. However, you requested 2100 tokens."
    with _serve.StubServer(lambda number, body: (400, {"object": "error", "message": detail})) as stub:
        engine = stub_engine(stub, max_retries=3)
        with pytest.raises(ContextLengthError, match="maximum context length is 128"):
            engine.generate(["p"], GenerationConfig(max_new_tokens=2048))
    assert len(stub.requests) == 1


@pytest.mark.network_loopback
def test_timeout_raises_engine_timeout_error_after_retries():
    with _serve.StubServer(
        lambda number, body: (200, _serve.completion_body()), delay=lambda number, body: 2.0
    ) as stub:
        engine = stub_engine(stub, timeout=0.3, max_retries=1)
        started = time.monotonic()
        with pytest.raises(EngineTimeoutError) as caught:
            engine.generate(["p"], GenerationConfig(max_new_tokens=5))
        elapsed = time.monotonic() - started
    assert isinstance(caught.value, EngineError)
    assert len(stub.requests) == 2 and caught.value.attempts == 2
    assert elapsed < 1.9
    assert stub.base_url in str(caught.value) and "0.3s" in str(caught.value)


@pytest.mark.network_loopback
async def test_async_timeout_raises_engine_timeout_error():
    with _serve.StubServer(
        lambda number, body: (200, _serve.completion_body()), delay=lambda number, body: 2.0
    ) as stub:
        engine = stub_engine(stub, request_timeout=0.2, max_retries=0)
        with pytest.raises(EngineTimeoutError):
            await engine.agenerate(["p"], GenerationConfig(max_new_tokens=5))
    assert len(stub.requests) == 1


@pytest.mark.network_loopback
def test_guard_marks_an_engine_timeout_as_a_timeout_verdict():
    guard_module = pytest.importorskip("guardreasoner.guard")
    with _serve.StubServer(
        lambda number, body: (200, _serve.completion_body()), delay=lambda number, body: 2.0
    ) as stub:
        guard = guard_module.GuardReasoner(
            "stub-model", engine="openai", base_url=stub.base_url, request_timeout=0.2, max_retries=0
        )
        verdict = guard.classify("hello")
    assert verdict.parse_status.value == "timeout"
    assert verdict.is_harmful is True  # fail_closed, the default policy


@pytest.mark.network_loopback
def test_connection_refused_names_the_url_and_what_to_check():
    base_url = f"http://127.0.0.1:{_serve.free_port()}/v1"
    engine = OpenAIEngine(model="m", base_url=base_url, max_retries=1, backoff_base=0.01)
    with pytest.raises(EngineError) as caught:
        engine.generate(["p"], GenerationConfig(max_new_tokens=5))
    message = str(caught.value)
    assert f"{base_url}/completions" in message and "Is the server running" in message
    assert caught.value.attempts == 2


@pytest.mark.network_loopback
def test_sync_concurrency_is_limited_and_order_kept():
    def script(number, body):
        return 200, _serve.completion_body(f"echo:{body['prompt']}")

    with _serve.StubServer(script, delay=lambda number, body: 0.15) as stub:
        engine = stub_engine(stub, max_concurrency=3)
        prompts = [f"p{i}" for i in range(10)]
        results = engine.generate(prompts, GenerationConfig(max_new_tokens=5))
    assert [g.text for g in results] == [f"echo:{p}" for p in prompts]
    assert stub.max_in_flight == 3


@pytest.mark.network_loopback
async def test_async_concurrency_is_limited_across_calls():
    def script(number, body):
        return 200, _serve.completion_body(f"echo:{body['prompt']}")

    with _serve.StubServer(script, delay=lambda number, body: 0.15) as stub:
        engine = stub_engine(stub, max_concurrency=4)
        config = GenerationConfig(max_new_tokens=5)
        batches = await asyncio.gather(
            engine.agenerate([f"a{i}" for i in range(6)], config),
            engine.agenerate([f"b{i}" for i in range(6)], config),
        )
        await engine.aclose()
    assert [g.text for g in batches[0]] == [f"echo:a{i}" for i in range(6)]
    assert [g.text for g in batches[1]] == [f"echo:b{i}" for i in range(6)]
    assert stub.max_in_flight == 4


@pytest.mark.network_loopback
def test_requests_are_greedy_raw_and_carry_extra_body():
    with _serve.StubServer(lambda number, body: (200, _serve.completion_body("x", "length"))) as stub:
        engine = stub_engine(stub, extra_body={"skip_special_tokens": False})
        prompt = build_prompt("hi")
        [generation] = engine.generate([prompt], GenerationConfig(max_new_tokens=17, seed=5))
    assert generation.finish_reason == "length"
    assert stub.paths == ["/v1/completions"]
    body = stub.requests[0]
    assert body["prompt"] == prompt
    assert (body["model"], body["max_tokens"], body["temperature"], body["top_p"], body["seed"]) == (
        "stub-model",
        17,
        0.0,
        1.0,
        5,
    )
    assert body["skip_special_tokens"] is False
    assert "n" not in body and "messages" not in body


@pytest.mark.network_loopback
def test_chat_format_posts_one_user_message():
    def script(number, body):
        message = {"role": "assistant", "content": "chat answer"}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        usage = {"prompt_tokens": 30, "completion_tokens": 3, "total_tokens": 33}
        return 200, {
            "id": "c",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [choice],
            "usage": usage,
        }

    with _serve.StubServer(script) as stub:
        engine = stub_engine(stub, prompt_format=PromptFormat.CHAT)
        prompt = build_prompt("hi")
        [generation] = engine.generate([prompt], GenerationConfig(max_new_tokens=8))
    assert stub.paths == ["/v1/chat/completions"]
    assert stub.requests[0]["messages"] == [{"role": "user", "content": prompt}]
    assert (generation.text, generation.finish_reason, generation.num_generated_tokens) == (
        "chat answer",
        "stop",
        3,
    )


@pytest.mark.network_loopback
def test_several_samples_top_up_when_the_server_returns_one_choice():
    # transformers serve ignores n; the engine asks again for the missing samples, moving the seed along.
    def script(number, body):
        return 200, _serve.completion_body(f"sample {number} seed {body.get('seed')} n {body.get('n')}")

    with _serve.StubServer(script) as stub:
        engine = stub_engine(stub)
        [generation] = engine.generate(
            ["p"], GenerationConfig(max_new_tokens=5, temperature=0.7, n=3, seed=10)
        )
    assert generation.samples == ("sample 0 seed 10 n 3", "sample 1 seed 11 n 2", "sample 2 seed 12 n None")
    assert generation.text == generation.samples[0]
    assert generation.num_generated_tokens is None  # per-sample counts are unknown once n > 1


def test_missing_openai_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(MissingExtraError, match=r"guardreasoner\[openai\]") as caught:
        OpenAIEngine(model="m")
    assert caught.value.extra == "openai"


def test_options_and_environment_defaults(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    engine = OpenAIEngine(model="m")
    assert engine.base_url == "http://127.0.0.1:9/v1"
    assert engine.endpoint == "http://127.0.0.1:9/v1/completions"
    assert engine._api_key == "EMPTY"
    assert engine.max_context_tokens is None and engine.count_tokens("x") is None
    assert OpenAIEngine(model="m", max_context_tokens=4096).max_context_tokens == 4096
    monkeypatch.delenv("OPENAI_BASE_URL")
    assert OpenAIEngine(model="m").base_url == "http://localhost:8000/v1"
    with pytest.raises(ValueError):
        OpenAIEngine(model="m", max_concurrency=0)
    with pytest.raises(ValueError):
        OpenAIEngine(model="")


@pytest.mark.network_loopback
def test_injected_client_is_used_without_its_own_retries():
    import openai

    with _serve.StubServer(lambda number, body: (503, {"detail": "busy"})) as stub:
        client = openai.OpenAI(base_url=stub.base_url, api_key="sk-test", max_retries=5)
        engine = OpenAIEngine(model="stub-model", client=client, max_retries=0)
        assert engine.base_url == stub.base_url
        with pytest.raises(EngineError, match="HTTP 503"):
            engine.generate(["p"], GenerationConfig(max_new_tokens=5))
        assert len(stub.requests) == 1  # neither the engine nor the client retried
        # base_url given beside a client wins over the client's own.
        elsewhere = openai.OpenAI(base_url=f"http://127.0.0.1:{_serve.free_port()}/v1", api_key="k")
        engine = OpenAIEngine(model="stub-model", client=elsewhere, base_url=stub.base_url, max_retries=1)
        with pytest.raises(EngineError, match="HTTP 503"):
            engine.generate(["p"], GenerationConfig(max_new_tokens=5))
        assert len(stub.requests) == 3
        engine.close()
        client.close()
        elsewhere.close()


@pytest.mark.slow
@pytest.mark.network_loopback
def test_scores_say_the_server_returned_no_logprobs(served, guard_model_dir):
    """``transformers serve`` ignores the Completions API's ``logprobs``: the verdict says so, no score."""
    guard_module = pytest.importorskip("guardreasoner.guard")
    guard = guard_module.GuardReasoner(
        served.model,
        engine="openai",
        base_url=served.base_url,
        tokenizer=str(guard_model_dir),
        max_new_tokens=120,
        thresholds={"prompt_harmfulness": 0.99},
    )
    case = tiny_cases()[0]
    verdict = guard.classify(case.prompt)
    assert verdict.prompt_harmfulness == case.prompt_harmfulness and verdict.is_harmful is True
    assert verdict.score_status == {"prompt_harmfulness": "no_logprobs"}
    assert verdict.prompt_harmfulness_score is None
    assert verdict.threshold_fallbacks == ["prompt_harmfulness"]
    guard.close()
