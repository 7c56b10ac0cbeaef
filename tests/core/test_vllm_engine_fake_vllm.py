"""The vllm engine against a fake vLLM: the error users see without vLLM, and the engine's own logic over a
stand-in with vLLM's interface.

CI never installs vLLM (no GPU). The real engine is checked on a GPU by ``tests/gpu/test_vllm_engine.py`` and
``benchmarks/gpu/vllm_suite.py``. Here a small stand-in with vLLM 0.34's interface (``LLM``, its
``llm_engine``'s ``add_request``/``step``/``abort_request``, ``AsyncLLM.generate`` bound to the loop it was
built on, ``logprob_token_ids`` answered as one ``{token id: Logprob}`` dict per position, the GPU worker's
``model_runner.speculator``) lets CI check what this package adds: token-id prompts without a double BOS, the
options passed through, one backend per engine, continuous batching of concurrent async calls on either
backend, cancellation, finish reasons and error wrapping, and which options (speculative decoding, batch
invariance, vLLM's defaults left alone) reach ``vllm.LLM`` / ``AsyncEngineArgs``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import math
import sys
import threading
import time
import types
from types import SimpleNamespace

import pytest
from guardreasoner import ContextLengthError, EngineError, MissingExtraError, ParseStatus, PromptFormat
from guardreasoner.engines import GenerationConfig
from guardreasoner.engines.vllm.suffix_cache import WORKER_EXTENSION
from guardreasoner.errors import EngineLoadError, EngineTimeoutError

VLLM_VERSION = "0.34.0"

# -- no vLLM ------------------------------------------------------------------------------------------


def test_constructing_without_vllm_names_the_extra(monkeypatch, tiny_model_dir):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` fail even where it is installed
    from guardreasoner.engines.vllm import VLLMEngine
    from guardreasoner.guard import GuardReasoner

    with pytest.raises(MissingExtraError) as direct:
        VLLMEngine(str(tiny_model_dir))
    assert 'pip install "guardreasoner[vllm]"' in str(direct.value)
    assert direct.value.extra == "vllm" and isinstance(direct.value, ImportError)
    with pytest.raises(MissingExtraError, match=r"guardreasoner\[vllm\]"):
        GuardReasoner(str(tiny_model_dir), engine="vllm")


# -- a stand-in for vLLM -------------------------------------------------------------------------------


class RequestOutputKind(enum.Enum):
    CUMULATIVE = 0
    DELTA = 1
    FINAL_ONLY = 2


@dataclasses.dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int | None = 16
    seed: int | None = None
    ignore_eos: bool = False
    stop_token_ids: list[int] | None = None
    skip_special_tokens: bool = True
    logprobs: int | None = None
    logprob_token_ids: list[int] | None = None
    detokenize: bool = True
    output_kind: RequestOutputKind = RequestOutputKind.CUMULATIVE

    def clone(self):
        return dataclasses.replace(self)


@dataclasses.dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


def requested_logprobs(token_ids, requested, texts):
    """vLLM's ``CompletionOutput.logprobs`` for ``logprob_token_ids=requested``: per position, the generated id
    (at -0.5) and every requested id (at -3, -4, ...), each a ``Logprob`` with its text."""
    steps = []
    for chosen in token_ids:
        step = {chosen: Logprob(-0.5, 1, texts(chosen))}
        for r, t in enumerate(i for i in requested if i != chosen):
            step[t] = Logprob(-3.0 - r, r + 2, texts(t))
        steps.append(step)
    return steps


class Core:
    """Generates one token per running request per step. Request ``p`` stops (EOS) after
    ``len(p) % 4 + 2`` tokens unless EOS is ignored; token ``k`` is ``(sum(p) + 7k) % 50 + 10``."""

    def __init__(self, max_model_len: int):
        self.max_model_len = max_model_len
        self.running: dict[str, tuple[list[int], SamplingParams, list[int]]] = {}
        self.batch_sizes: list[int] = []
        self.aborted: list[str] = []
        self.fail_next_step = False

    def add(self, request_id, prompt, params):
        ids = prompt["prompt_token_ids"]
        if len(ids) >= self.max_model_len:
            raise ValueError("prompt too long")
        self.running[request_id] = (list(ids), params, [])

    def abort(self, request_ids):
        for request_id in request_ids:
            if self.running.pop(request_id, None) is not None:
                self.aborted.append(request_id)

    def step(self):
        if self.fail_next_step:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        self.batch_sizes.append(len(self.running))
        finished = []
        for request_id, (prompt, params, out) in list(self.running.items()):
            out.append((sum(prompt) + 7 * len(out)) % 50 + 10)
            reason = None
            if not params.ignore_eos and len(out) >= len(prompt) % 4 + 2:
                reason = "stop"
            elif len(out) >= params.max_tokens:
                reason = "length"
            if reason:
                del self.running[request_id]
                text = " ".join(f"t{t}" for t in out)
                logprobs = None
                if params.logprob_token_ids:
                    spelled = dict(zip(out, text.split(" ")[:1] + [" " + w for w in text.split(" ")[1:]]))
                    logprobs = requested_logprobs(
                        out, params.logprob_token_ids, lambda t, s=spelled: s.get(t, f" t{t}")
                    )
                completion = SimpleNamespace(
                    text=text, token_ids=list(out), finish_reason=reason, stop_reason=None, logprobs=logprobs
                )
                completions = [completion] * params.n
                finished.append(
                    SimpleNamespace(
                        request_id=request_id, finished=True, prompt_token_ids=prompt, outputs=completions
                    )
                )
        return finished


class LLMEngine:
    def __init__(self, core):
        self.core = core
        self.model_config = SimpleNamespace(max_model_len=core.max_model_len)
        self.engine_core = SimpleNamespace(shutdown=self.shutdown)
        self.shut_down = False
        self.stepping = threading.Lock()

    def shutdown(self):
        self.shut_down = True

    def add_request(self, request_id, prompt, params):
        assert params.output_kind is RequestOutputKind.FINAL_ONLY
        self.core.add(request_id, prompt, params)

    def abort_request(self, request_ids):
        self.core.abort(request_ids)

    def step(self):
        assert self.stepping.acquire(blocking=False), "two threads stepped the engine at once"
        try:
            time.sleep(0.002)
            return self.core.step()
        finally:
            self.stepping.release()


class LLM:
    instances: list[LLM] = []

    def __init__(self, model, **options):
        self.model = model
        self.options = options
        self.llm_engine = LLMEngine(Core(options.get("max_model_len") or 4096))
        self.workers = workers(options)
        self.generate_calls = 0
        LLM.instances.append(self)

    def collective_rpc(self, method, timeout=None, args=(), kwargs=None):
        return [getattr(worker, method)(*args, **(kwargs or {})) for worker in self.workers]

    def get_metrics(self):
        steps = sum(self.llm_engine.core.batch_sizes)
        return [SimpleNamespace(name="vllm:generation_tokens", value=steps)]

    def get_tokenizer(self):
        raise AssertionError("the engine loads the tokenizer from the model directory")

    def generate(self, prompts, params, use_tqdm=True):
        self.generate_calls += 1
        params = params.clone()
        params.output_kind = RequestOutputKind.FINAL_ONLY
        for index, prompt in enumerate(prompts):
            self.llm_engine.add_request(str(index), prompt, params)
        outputs = []
        while self.llm_engine.core.running:
            outputs += self.llm_engine.step()
        return sorted(outputs, key=lambda o: int(o.request_id))


class UsageContext(enum.Enum):
    ENGINE_CONTEXT = "ENGINE_CONTEXT"
    OPENAI_API_SERVER = "OPENAI_API_SERVER"


class SuffixSpeculator:
    """vLLM 0.34's ``SuffixSpeculator`` as its ``on_requests_finished`` reads the request state: each finished
    request's last 3 prompt tokens and its response become one corpus document (kept here as a list, where
    vLLM writes GPU tensors in place, so a shallow copy shares it too)."""

    def __init__(self, spec):
        corpus = spec.get("suffix_decoding_corpus_tokens", 1 << 20)
        if spec.get("suffix_decoding_max_cached_requests", 10000) == 0:
            corpus = 0
        self.has_corpus = corpus > 0 and spec.get("suffix_decoding_max_tree_depth", 24) >= 2
        self.device = "cpu"
        self.req_states = SimpleNamespace(req_id_to_index={})
        self.num_docs = 0
        self.corpus: list[list[int]] = []
        self.ingested: list[int] = []  # documents per ingestion

    def on_requests_finished(self, finished_req_ids):
        if not self.has_corpus:
            return
        states = self.req_states
        documents = []
        for req_id in sorted(finished_req_ids):
            slot = states.req_id_to_index.get(req_id)
            if slot is None:
                continue
            start = max(int(states.prompt_len.np[slot]) - 3, 0)
            end = int(states.total_len.gpu[slot])
            documents.append(states.all_token_ids.gpu[slot, start:end].tolist())
        self.num_docs += len(documents)
        self.corpus.extend(documents)
        self.ingested.append(len(documents))


def workers(options):
    """vLLM's GPU workers (one per tensor-parallel rank), built with ``worker_extension_cls`` mixed in."""
    import importlib

    base = object
    if options.get("worker_extension_cls"):
        module, _, name = options["worker_extension_cls"].rpartition(".")
        base = getattr(importlib.import_module(module), name)
    spec = options.get("speculative_config") or {}
    built = []
    for _ in range(options.get("tensor_parallel_size", 1)):
        worker = type("Worker", (base,), {})()
        speculator = SuffixSpeculator(spec) if spec.get("method") == "suffix" else None
        worker.model_runner = SimpleNamespace(speculator=speculator)
        built.append(worker)
    return built


class AsyncEngineArgs:
    def __init__(self, model, **options):
        self.model = model
        self.options = options


class AsyncLLM:
    instances: list[AsyncLLM] = []

    def __init__(self, args):
        self.loop = asyncio.get_running_loop()  # vLLM binds to the loop it starts on
        self.args = args
        self.core = Core(args.options.get("max_model_len") or 4096)
        self.model_config = SimpleNamespace(max_model_len=self.core.max_model_len)
        self.workers = workers(args.options)
        self.waiters: dict[str, asyncio.Future] = {}
        self.stepper: asyncio.Task | None = None
        self.shut_down = False
        AsyncLLM.instances.append(self)

    @classmethod
    def from_engine_args(cls, args, usage_context=UsageContext.ENGINE_CONTEXT):
        engine = cls(args)
        engine.usage_context = usage_context
        return engine

    async def collective_rpc(self, method, timeout=None, args=(), kwargs=None):
        assert asyncio.get_running_loop() is self.loop
        return [getattr(worker, method)(*args, **(kwargs or {})) for worker in self.workers]

    async def _run(self):
        while self.core.running:
            await asyncio.sleep(0.002)
            for output in self.core.step():
                self.waiters.pop(output.request_id).set_result(output)
        self.stepper = None

    async def generate(self, prompt, params, request_id):
        assert asyncio.get_running_loop() is self.loop, "AsyncLLM used from another event loop"
        assert params.output_kind is RequestOutputKind.FINAL_ONLY
        self.core.add(request_id, prompt, params)
        waiter = self.waiters[request_id] = self.loop.create_future()
        if self.stepper is None:
            self.stepper = asyncio.ensure_future(self._run())
        try:
            output = await waiter
        except asyncio.CancelledError:
            self.core.abort([request_id])
            self.waiters.pop(request_id, None)
            raise
        yield output

    def shutdown(self):
        self.shut_down = True


@pytest.fixture
def fake_vllm(monkeypatch):
    """Install the stand-in as ``vllm`` (and the submodules the engine imports)."""
    LLM.instances.clear()
    AsyncLLM.instances.clear()
    modules = {
        "vllm": types.ModuleType("vllm"),
        "vllm.sampling_params": types.ModuleType("vllm.sampling_params"),
        "vllm.engine": types.ModuleType("vllm.engine"),
        "vllm.engine.arg_utils": types.ModuleType("vllm.engine.arg_utils"),
        "vllm.v1": types.ModuleType("vllm.v1"),
        "vllm.v1.engine": types.ModuleType("vllm.v1.engine"),
        "vllm.v1.engine.async_llm": types.ModuleType("vllm.v1.engine.async_llm"),
        "vllm.usage": types.ModuleType("vllm.usage"),
        "vllm.usage.usage_lib": types.ModuleType("vllm.usage.usage_lib"),
    }
    speculator = "vllm.v1.worker.gpu.spec_decode.suffix.speculator"  # imported in the worker only
    parts = speculator.split(".")
    for name in (".".join(parts[:end]) for end in range(3, len(parts) + 1)):
        modules[name] = types.ModuleType(name)
    modules["vllm"].__version__ = VLLM_VERSION
    modules[speculator].SuffixSpeculator = SuffixSpeculator
    modules["vllm"].LLM = LLM
    modules["vllm"].SamplingParams = SamplingParams
    modules["vllm.sampling_params"].RequestOutputKind = RequestOutputKind
    modules["vllm.engine.arg_utils"].AsyncEngineArgs = AsyncEngineArgs
    modules["vllm.v1.engine.async_llm"].AsyncLLM = AsyncLLM
    modules["vllm.usage.usage_lib"].UsageContext = UsageContext
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.delenv("TRITON_F32_DEFAULT", raising=False)
    monkeypatch.delenv("VLLM_BATCH_INVARIANT", raising=False)
    return modules["vllm"]


@pytest.fixture
def make_engine(fake_vllm, tiny_model_dir):
    from guardreasoner.engines.vllm import VLLMEngine

    engines = []

    def make(**options):
        engine = VLLMEngine(str(tiny_model_dir), **options)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


PROMPTS = [f"Human user:\nquestion {i}: " + "more words " * i for i in range(12)]
CONFIG = GenerationConfig(max_new_tokens=4)


def expected(prompt_ids, max_new_tokens=4):
    """The stand-in's tokens and finish reason for a prompt."""
    stops_after = len(prompt_ids) % 4 + 2
    count = min(stops_after, max_new_tokens)
    return [
        (sum(prompt_ids) + 7 * k) % 50 + 10 for k in range(count)
    ], "stop" if stops_after <= max_new_tokens else "length"


# -- the engine over the stand-in ------------------------------------------------------------------------


def test_batch_is_one_offline_generate_call_with_the_options_passed_through(make_engine):
    engine = make_engine(
        tensor_parallel_size=2,
        gpu_memory_utilization=0.5,
        max_model_len=1024,
        max_num_seqs=64,
        dtype="bfloat16",
        quantization="fp8",
        enforce_eager=True,
    )
    assert engine.backend is None and not LLM.instances  # nothing is loaded before the first call
    generations = engine.generate(PROMPTS, CONFIG)
    (llm,) = LLM.instances
    assert llm.generate_calls == 1 and not AsyncLLM.instances and engine.backend == "offline"
    assert llm.model == engine.path and llm.options["tokenizer"] == engine.path
    assert {
        k: llm.options[k] for k in ("tensor_parallel_size", "gpu_memory_utilization", "max_model_len")
    } == {
        "tensor_parallel_size": 2,
        "gpu_memory_utilization": 0.5,
        "max_model_len": 1024,
    }
    assert llm.options["max_num_seqs"] == 64 and llm.options["dtype"] == "bfloat16"
    assert llm.options["quantization"] == "fp8" and llm.options["enforce_eager"] is True
    assert llm.options["enable_prefix_caching"] is True
    assert engine.max_context_tokens == 1024
    for prompt, generation in zip(PROMPTS, generations):
        ids = engine.tokenizer(prompt).input_ids
        assert ids[0] == engine.tokenizer.bos_token_id and ids[1] != engine.tokenizer.bos_token_id
        tokens, reason = expected(ids)
        assert generation.text == " ".join(f"t{t}" for t in tokens)
        assert generation.num_generated_tokens == len(tokens)
        assert generation.num_prompt_tokens == len(ids) == engine.count_tokens(prompt)
        assert generation.finish_reason == reason
    assert {g.finish_reason for g in generations} == {"stop", "length"}


def test_context_comes_from_the_config_until_vllm_is_loaded(make_engine, tiny_model_dir):
    engine = make_engine()
    assert engine.max_context_tokens == 4096  # build_tiny_llama's max_position_embeddings
    with pytest.raises(ContextLengthError, match="Prompt 1 is"):
        engine.generate(["short", "word " * 5000], CONFIG)


async def test_concurrent_async_calls_share_one_async_engine_from_any_loop(make_engine):
    engine = make_engine()
    results = await asyncio.gather(*(engine.agenerate([p], CONFIG) for p in PROMPTS))
    (async_llm,) = AsyncLLM.instances
    assert not LLM.instances and engine.backend == "async"
    assert async_llm.loop is not asyncio.get_running_loop()  # the engine's private loop
    assert max(async_llm.core.batch_sizes) >= 8, async_llm.core.batch_sizes  # continuously batched
    assert (
        async_llm.args.options["enable_prefix_caching"] is True
        and async_llm.args.options["disable_log_stats"]
    )
    # A second event loop (another asyncio.run) and plain sync calls use the same AsyncLLM.
    other = await asyncio.to_thread(asyncio.run, engine.agenerate(PROMPTS[:3], CONFIG))
    sync = engine.generate(PROMPTS, CONFIG)
    assert [g.text for g in other] == [r[0].text for r in results[:3]]
    assert [g.text for g in sync] == [r[0].text for r in results]
    assert len(AsyncLLM.instances) == 1 and not LLM.instances
    engine.close()
    assert async_llm.shut_down


async def test_async_calls_on_an_offline_engine_are_batched_by_the_driver(make_engine):
    engine = make_engine()
    sync = engine.generate(PROMPTS, CONFIG)
    (llm,) = LLM.instances
    steps_before = len(llm.llm_engine.core.batch_sizes)
    results = await asyncio.gather(*(engine.agenerate([p], CONFIG) for p in PROMPTS * 4))
    assert not AsyncLLM.instances and len(LLM.instances) == 1
    assert [r[0].text for r in results] == [g.text for g in sync] * 4
    assert max(llm.llm_engine.core.batch_sizes[steps_before:]) >= 16  # not one request at a time
    # Sync batches now go through the driver too (the stand-in asserts one stepper at a time).
    both = await asyncio.gather(
        asyncio.to_thread(engine.generate, PROMPTS, CONFIG), engine.agenerate(PROMPTS, CONFIG)
    )
    assert [g.text for g in both[0]] == [g.text for g in both[1]] == [g.text for g in sync]
    assert llm.generate_calls == 1
    engine.close()
    assert llm.llm_engine.shut_down


async def aborted(backend, count):
    """The stand-in's core once ``count`` requests were aborted (or after 2 s)."""
    core = (LLM.instances[0].llm_engine if backend == "offline" else AsyncLLM.instances[0]).core
    for _ in range(200):
        if len(core.aborted) == count:
            break
        await asyncio.sleep(0.01)
    return core


@pytest.mark.parametrize("backend", ["offline", "async"])
async def test_cancelling_a_caller_aborts_its_request(make_engine, backend):
    engine = make_engine(backend=backend, ignore_eos=True)  # built now, not on first use
    assert engine.backend == backend
    long = GenerationConfig(max_new_tokens=100_000)
    if backend == "offline":
        await engine.agenerate(PROMPTS[:1], CONFIG)  # start the driver
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(engine.agenerate(PROMPTS[:2], long), timeout=0.2)
    core = await aborted(backend, 2)
    assert len(core.aborted) == 2 and not core.running
    # The engine still serves after the abort.
    assert (await engine.agenerate(PROMPTS[:1], CONFIG))[0].finish_reason == "length"


def test_chat_prompts_are_token_ids_with_one_bos_and_eot_stops(make_engine):
    engine = make_engine(prompt_format="chat")
    from guardreasoner.engines.vllm.raw import token_prompts

    (prompt,) = token_prompts(engine, ["Is this harmful?"])
    ids = prompt["prompt_token_ids"]
    bos = engine.tokenizer.bos_token_id
    assert ids[0] == bos and ids.count(bos) == 1
    assert engine.render("x").startswith("<|begin_of_text|><|start_header_id|>user")
    eot = engine.tokenizer.convert_tokens_to_ids("<|eot_id|>")
    eos = engine.tokenizer.eos_token_id
    assert set(engine._sampling_params(CONFIG).stop_token_ids) == {eot, eos}
    assert make_engine()._sampling_params(CONFIG).stop_token_ids == [eos]
    assert make_engine(ignore_eos=True)._sampling_params(CONFIG).stop_token_ids is None


def test_an_encoded_prompt_is_fed_as_its_ids_without_encoding_again(make_engine, monkeypatch):
    from guardreasoner.prompt import EncodedPrompt

    engine = make_engine(scores=False)  # scores decode the output's last tokens; this checks encoding only
    ids = engine.encode(PROMPTS[3])
    assert ids == engine.tokenizer(PROMPTS[3]).input_ids
    monkeypatch.setattr(engine, "tokenizer", None)  # any re-encoding would fail
    (generation,) = engine.generate([EncodedPrompt(PROMPTS[3], ids)], CONFIG)
    tokens, _ = expected(ids)
    assert generation.text == " ".join(f"t{t}" for t in tokens) and generation.num_prompt_tokens == len(ids)
    assert engine.count_tokens(EncodedPrompt(PROMPTS[3], ids)) == len(ids)


def test_ignore_eos_and_sampling_settings_reach_vllm(make_engine):
    engine = make_engine(ignore_eos=True)
    config = GenerationConfig(max_new_tokens=5, temperature=0.7, top_p=0.9, seed=3, n=2)
    params = engine._sampling_params(config)
    assert (params.n, params.temperature, params.top_p, params.max_tokens, params.seed) == (2, 0.7, 0.9, 5, 3)
    generations = engine.generate(PROMPTS[:3], config)
    assert all(g.finish_reason == "length" and g.num_generated_tokens == 5 for g in generations)
    assert all(len(g.samples) == 2 and g.samples[0] == g.text for g in generations)


def test_float32_makes_triton_attention_use_ieee_fp32(make_engine, monkeypatch):
    import os

    make_engine(dtype="float32").generate(PROMPTS[:1], CONFIG)
    assert os.environ.get("TRITON_F32_DEFAULT") == "ieee"
    monkeypatch.setenv("TRITON_F32_DEFAULT", "tf32")  # the user's own choice is kept
    make_engine(dtype="float32").generate(PROMPTS[:1], CONFIG)
    assert os.environ["TRITON_F32_DEFAULT"] == "tf32"


def test_vllm_failures_become_engine_errors(make_engine, monkeypatch):
    engine = make_engine()
    engine.generate(PROMPTS[:1], CONFIG)
    LLM.instances[0].llm_engine.core.fail_next_step = True
    with pytest.raises(EngineError, match="illegal memory access"):
        engine.generate(PROMPTS[:1], CONFIG)

    from guardreasoner.engines.vllm.outputs import to_generation

    aborted = SimpleNamespace(
        request_id="7",
        outputs=[SimpleNamespace(text="", token_ids=[], finish_reason="abort", stop_reason=None)],
    )
    with pytest.raises(EngineError, match="'abort'"):
        to_generation(aborted)


def test_a_failed_load_is_an_engine_load_error_and_is_retried(make_engine, monkeypatch):
    calls = []

    def out_of_memory(model, **options):
        calls.append(model)
        raise RuntimeError("CUDA out of memory")

    engine = make_engine()
    monkeypatch.setattr(sys.modules["vllm"], "LLM", out_of_memory)
    for _ in range(2):
        with pytest.raises(EngineLoadError, match="could not load .*CUDA out of memory"):
            engine.generate(PROMPTS[:1], CONFIG)
    assert len(calls) == 2 and engine.backend is None
    monkeypatch.setattr(sys.modules["vllm"], "LLM", LLM)
    assert engine.generate(PROMPTS[:1], CONFIG)[0].finish_reason in ("stop", "length")


async def test_a_failed_async_load_is_an_engine_load_error_not_a_hang(make_engine, monkeypatch):
    def out_of_memory(args, usage_context):
        raise RuntimeError("CUDA out of memory")

    engine = make_engine()
    monkeypatch.setattr(AsyncLLM, "from_engine_args", staticmethod(out_of_memory))
    with pytest.raises(EngineLoadError, match="could not load .*CUDA out of memory"):
        await asyncio.wait_for(engine.agenerate(PROMPTS[:1], CONFIG), timeout=10)
    assert engine.backend is None
    monkeypatch.setattr(AsyncLLM, "from_engine_args", classmethod(lambda cls, args, usage_context: cls(args)))
    assert (await engine.agenerate(PROMPTS[:1], CONFIG))[0].finish_reason in ("stop", "length")
    assert engine.backend == "async"


def test_a_model_that_cannot_load_raises_from_the_guard_not_fail_closed_verdicts(
    fake_vllm, tiny_model_dir, monkeypatch
):
    from guardreasoner.guard import GuardReasoner

    def missing(model, **options):
        raise OSError(f"no model weights in {model}")

    monkeypatch.setattr(sys.modules["vllm"], "LLM", missing)
    guard = GuardReasoner(str(tiny_model_dir), engine="vllm", max_new_tokens=8)
    with pytest.raises(EngineLoadError, match="could not load the model .*no model weights"):
        guard.classify_batch([("hi", None)] * 2)
    guard.close()


def abort_prompt(monkeypatch, victim_length):
    """Makes the stand-in end the request of every prompt ``victim_length`` tokens long with ``abort``."""
    step = Core.step

    def aborting_step(self):
        outputs = step(self)
        for output in outputs:
            if len(output.prompt_token_ids) == victim_length:
                output.outputs = [
                    SimpleNamespace(text="", token_ids=[], finish_reason="abort", stop_reason=None)
                ]
        return outputs

    monkeypatch.setattr(Core, "step", aborting_step)


@pytest.mark.parametrize("backend", ["auto", "offline", "async"])
async def test_an_aborted_request_is_its_prompts_error_only(make_engine, monkeypatch, backend):
    engine = make_engine(backend=backend)
    victim = len(engine.encode(PROMPTS[2]))
    abort_prompt(monkeypatch, victim)
    for generations in (
        engine.generate_each(PROMPTS[:4], CONFIG),
        engine.generate_each(PROMPTS[:4], CONFIG, timeout=30),
        await engine.agenerate_each(PROMPTS[:4], CONFIG),
    ):
        assert [g.error is None for g in generations] == [True, True, False, True]
        assert isinstance(generations[2].error, EngineError) and "'abort'" in str(generations[2].error)
        assert generations[3].text == " ".join(f"t{t}" for t in expected(engine.encode(PROMPTS[3]))[0])
    with pytest.raises(EngineError, match="'abort'"):  # generate stays all-or-nothing
        engine.generate(PROMPTS[:4], CONFIG)


async def test_a_request_that_raises_in_the_async_engine_fails_alone(make_engine, monkeypatch):
    engine = make_engine(backend="async")
    generate = AsyncLLM.generate
    victim = len(engine.encode(PROMPTS[1]))

    async def failing(self, prompt, params, request_id):
        if len(prompt["prompt_token_ids"]) == victim:
            raise RuntimeError("request failed in the scheduler")
        async for output in generate(self, prompt, params, request_id):
            yield output

    monkeypatch.setattr(AsyncLLM, "generate", failing)
    generations = await engine.agenerate_each(PROMPTS[:3], CONFIG)
    assert [g.error is None for g in generations] == [True, False, True]
    assert "RuntimeError: request failed in the scheduler" in str(generations[1].error)


@pytest.mark.parametrize("backend", ["offline", "async"])
async def test_a_deadline_aborts_the_requests_and_raises_a_timeout(make_engine, backend):
    engine = make_engine(backend=backend, ignore_eos=True)
    long = GenerationConfig(max_new_tokens=100_000)
    with pytest.raises(EngineTimeoutError, match="within 0.2 s"):
        await asyncio.to_thread(engine.generate_each, PROMPTS[:2], long, timeout=0.2)
    with pytest.raises(EngineTimeoutError):
        await engine.agenerate_each(PROMPTS[:2], long, timeout=0.2)
    core = await aborted(backend, 4)
    assert len(core.aborted) == 4 and not core.running
    assert engine.generate_each(PROMPTS[:1], CONFIG, timeout=30)[0].finish_reason == "length"


def test_a_ready_llm_is_used_and_left_running(make_engine, fake_vllm, tiny_model_dir):
    from guardreasoner.engines.vllm import VLLMEngine
    from transformers import AutoTokenizer

    llm = LLM(str(tiny_model_dir))
    engine = VLLMEngine(llm=llm, tokenizer=AutoTokenizer.from_pretrained(tiny_model_dir))
    assert engine.backend == "offline" and engine.max_context_tokens == 4096
    assert engine.generate(PROMPTS[:2], CONFIG)[0].num_prompt_tokens > 3 and llm.generate_calls == 1
    engine.close()
    assert not llm.llm_engine.shut_down
    with pytest.raises(EngineError, match="closed"):
        engine.generate(PROMPTS[:1], CONFIG)
    with pytest.raises(ValueError, match="backend must be"):
        VLLMEngine(str(tiny_model_dir), backend="server")
    with pytest.raises(ValueError, match="ready llm="):
        VLLMEngine(llm=llm, tokenizer=engine.tokenizer, speculative="suffix")


async def test_guard_on_the_vllm_engine(fake_vllm, tiny_model_dir, monkeypatch):
    """GuardReasoner(engine="vllm") passes its options through and parses what vLLM returns."""
    from guardreasoner.guard import GuardReasoner
    from guardreasoner.scores import LabelTokens
    from guardreasoner.testing import guard_output
    from transformers import AutoTokenizer

    answer = guard_output("harmful", "refusal", "unharmful")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = tokenizer(answer, add_special_tokens=False).input_ids
    candidates = LabelTokens.from_tokenizer(tokenizer).texts
    step = Core.step

    def answering_step(self):
        """vLLM's answer to a generation request: the guard output (no log-probabilities, none asked). To a
        1-token label request (the prompt and the output up to a label): the label the output has there at
        -0.1, every other candidate at -3."""
        outputs = step(self)
        for output in outputs:
            prompt = output.prompt_token_ids
            if len(output.outputs[0].token_ids) != 1:
                output.outputs = [
                    SimpleNamespace(
                        text=answer, token_ids=ids, finish_reason="stop", stop_reason=None, logprobs=None
                    )
                ]
                continue
            done = next(n for n in range(len(ids), -1, -1) if n == 0 or prompt[-n:] == ids[:n])
            chosen = ids[done]
            row = {c: Logprob(-3.0, 2, None) for c in candidates}
            row[chosen] = Logprob(-0.1, 1, None)
            output.outputs[0].logprobs = [row]
        return outputs

    monkeypatch.setattr(Core, "step", answering_step)
    guard = GuardReasoner(str(tiny_model_dir), engine="vllm", max_num_seqs=32, max_new_tokens=64)
    verdicts = guard.classify_batch([("How do I pick a lock?", "I can't help with that.")] * 3)
    assert LLM.instances[0].options["max_num_seqs"] == 32
    assert all(v.parse_status is ParseStatus.OK and v.prompt_harmfulness == "harmful" for v in verdicts)
    assert all(v.response_refusal == "refusal" and v.num_generated_tokens == len(ids) for v in verdicts)
    verdict = await guard.aclassify("How do I pick a lock?", "I can't help with that.")
    assert verdict.response_harmfulness == "unharmful" and verdict.finish_reason == "stop"
    # Scores from the label requests' log-probabilities: the greedy label against the other, renormalised.
    sure = 1 / (1 + math.exp(-2.9))
    for scored in (*verdicts, verdict):
        assert scored.prompt_harmfulness_score == pytest.approx(sure)
        assert scored.response_harmfulness_score == pytest.approx(1 - sure)
        assert scored.response_refusal_score == pytest.approx(sure) and not scored.score_status
    guard.close()
    assert PromptFormat(guard.engine.prompt_format) is PromptFormat.RAW


def test_generation_asks_for_no_logprobs_and_label_requests_for_exactly_the_candidates(make_engine):
    engine = make_engine()
    generation_params = engine._sampling_params(CONFIG)
    assert generation_params.logprobs is None and generation_params.logprob_token_ids is None
    label_params = engine._label_params()
    assert label_params.logprob_token_ids == list(engine.label_tokens.candidate_ids)
    assert label_params.max_tokens == 1 and label_params.temperature == 0.0 and not label_params.detokenize
    (generation,) = engine.generate(PROMPTS[:1], CONFIG)
    assert generation.label_logprobs is not None and generation.label_logprobs.labels is engine.label_tokens
    plain = make_engine(scores=False)
    assert plain.label_tokens is None
    assert plain.generate(PROMPTS[:1], CONFIG)[0].label_logprobs is None


# -- options: vLLM's defaults left alone, speculative decoding, batch invariance ---------------------------


async def test_defaults_leave_batch_limits_memory_and_speculation_to_vllm(make_engine):
    offline = make_engine()
    offline.generate(PROMPTS[:2], CONFIG)
    (llm,) = LLM.instances
    # No max_num_seqs pin (vLLM's own default is 1024 on an H200; the reference's 256 cost the 8B 12%), no
    # gpu_memory_utilization (vLLM 0.34 sizes the KV cache from the memory it measures free).
    assert "max_num_seqs" not in llm.options and "gpu_memory_utilization" not in llm.options
    assert "speculative_config" not in llm.options
    assert "worker_extension_cls" not in llm.options and offline.speculative is None
    await make_engine().agenerate(PROMPTS[:2], CONFIG)
    (async_llm,) = AsyncLLM.instances
    assert "max_num_seqs" not in async_llm.args.options
    assert "gpu_memory_utilization" not in async_llm.args.options
    # The async engine gets a server's batch defaults, not the bare engine context's 128 sequences.
    assert async_llm.usage_context is UsageContext.OPENAI_API_SERVER


DRAFT_DIR = "<a draft model's directory>"  # replaced by tiny_model_dir, which has a config.json


@pytest.mark.parametrize(
    ("defaults", "options", "config"),
    [
        (
            {"SUFFIX_TOKENS": 6, "SUFFIX_UP_TO_BATCH": None},
            {"speculative": "suffix"},
            {"method": "suffix", "num_speculative_tokens": 6, "enable_adaptive_verification": True},
        ),
        (
            {"SUFFIX_TOKENS": 6, "SUFFIX_UP_TO_BATCH": 64},
            {"speculative": "suffix"},
            {
                "method": "suffix",
                "num_speculative_tokens": 6,
                "enable_adaptive_verification": True,
                "num_speculative_tokens_per_batch_size": [(1, 64, 6), (65, 1 << 20, 0)],
            },
        ),
        (
            {"SUFFIX_UP_TO_BATCH": 64},
            {"speculative": "suffix", "num_speculative_tokens": 4, "speculate_up_to_batch": 32},
            {
                "method": "suffix",
                "num_speculative_tokens": 4,
                "enable_adaptive_verification": True,
                "num_speculative_tokens_per_batch_size": [(1, 32, 4), (33, 1 << 20, 0)],
            },
        ),
        (  # adaptive verification needs CUDA graphs: off by default without them
            {"SUFFIX_TOKENS": 6, "SUFFIX_UP_TO_BATCH": None},
            {"speculative": "suffix", "enforce_eager": True},
            {"method": "suffix", "num_speculative_tokens": 6, "enable_adaptive_verification": False},
        ),
        (  # vLLM's own fields win, including no schedule at all
            {"SUFFIX_TOKENS": 6, "SUFFIX_UP_TO_BATCH": 64},
            {
                "speculative": "suffix",
                "speculative_options": {
                    "suffix_decoding_corpus_tokens": 1 << 22,
                    "suffix_decoding_max_tree_depth": 32,
                    "enable_adaptive_verification": False,
                    "num_speculative_tokens_per_batch_size": None,
                },
            },
            {
                "method": "suffix",
                "num_speculative_tokens": 6,
                "enable_adaptive_verification": False,
                "suffix_decoding_corpus_tokens": 1 << 22,
                "suffix_decoding_max_tree_depth": 32,
                "num_speculative_tokens_per_batch_size": None,
            },
        ),
        (
            {},
            {"speculative": "ngram"},
            {"method": "ngram", "num_speculative_tokens": 8, "prompt_lookup_min": 1, "prompt_lookup_max": 3},
        ),
        (
            {},
            {"speculative": "ngram_gpu", "num_speculative_tokens": 4, "speculate_up_to_batch": 32},
            {
                "method": "ngram_gpu",
                "num_speculative_tokens": 4,
                "prompt_lookup_min": 1,
                "prompt_lookup_max": 3,
                "num_speculative_tokens_per_batch_size": [(1, 32, 4), (33, 1 << 20, 0)],
            },
        ),
        (
            {"DRAFT_MODEL_TOKENS": 3},
            {"speculative": DRAFT_DIR, "async_scheduling": True},
            {"method": "draft_model", "model": DRAFT_DIR, "num_speculative_tokens": 3},
        ),
        (
            {"DRAFT_MODEL_TOKENS": 3},
            {"speculative": "yueliu1999/GuardReasoner-1B", "speculate_up_to_batch": 128},
            {
                "method": "draft_model",
                "model": "yueliu1999/GuardReasoner-1B",
                "num_speculative_tokens": 3,
                "num_speculative_tokens_per_batch_size": [(1, 128, 3), (129, 1 << 20, 0)],
            },
        ),
    ],
)
@pytest.mark.parametrize("backend", ["offline", "async"])
def test_speculative_options_reach_vllm_as_its_speculative_config(
    make_engine, monkeypatch, tiny_model_dir, defaults, options, config, backend
):
    from guardreasoner.engines.vllm import speculative

    for name, value in defaults.items():
        monkeypatch.setattr(speculative, name, value)
    replace = {DRAFT_DIR: str(tiny_model_dir)}
    options = {k: replace.get(v, v) if isinstance(v, str) else v for k, v in options.items()}
    config = {k: replace.get(v, v) if isinstance(v, str) else v for k, v in config.items()}
    engine = make_engine(backend=backend, **options)
    built = LLM.instances[0].options if backend == "offline" else AsyncLLM.instances[0].args.options
    assert built["speculative_config"] == config
    assert engine.speculative == config["method"]
    suffix = config["method"] == "suffix"
    assert (built.get("worker_extension_cls") == WORKER_EXTENSION) is suffix
    assert built.get("async_scheduling") is options.get("async_scheduling")  # vLLM's default (on) unless set
    assert [g.finish_reason for g in engine.generate(PROMPTS[:2], CONFIG)]  # still serves


def test_suffix_decoding_needs_vllm_034_and_nothing_from_arctic_inference(
    make_engine, fake_vllm, monkeypatch
):
    monkeypatch.setitem(sys.modules, "arctic_inference", None)  # importing it would fail
    monkeypatch.setitem(sys.modules, "arctic_inference.suffix_decoding", None)
    engine = make_engine(speculative="suffix")
    assert engine.warm_suffix_cache([(PROMPTS[0], "Answers: \nRequest: harmful")]) == 1
    monkeypatch.setattr(fake_vllm, "__version__", "0.26.0")
    with pytest.raises(
        EngineLoadError, match=r"vLLM 0.34's GPU suffix .*this is vLLM 0.26.0.*\[vllm-suffix\]"
    ):
        make_engine(speculative="suffix")
    assert make_engine(speculative="ngram_gpu", speculate_up_to_batch=8).speculative == "ngram_gpu"
    monkeypatch.setattr(fake_vllm, "__version__", "0.35.0.dev4+g1234abc")
    assert make_engine(speculative="suffix").speculative == "suffix"


EMPTY_DIR = "<a directory without config.json>"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_speculative_tokens": 4}, "need speculation"),
        ({"speculative": "off", "speculate_up_to_batch": 8}, "need speculation"),
        ({"speculative": "ngram", "num_speculative_tokens": 0}, "at least 1"),
        ({"speculative": "ngram", "speculate_up_to_batch": 0}, "at least 1"),
        ({"speculative": ""}, "draft model path"),
        ({"speculative": "ngram", "speculative_config": {"method": "ngram"}}, "not both"),
        (
            {"speculative": "suffix", "speculative_options": {"suffix_decoding_max_spec_factor": 2.0}},
            "suffix_decoding_max_spec_factor have no effect",
        ),
        (
            {"speculative": "suffix", "speculative_options": {"suffix_decoding_min_token_prob": 0.2}},
            "suffix_decoding_min_token_prob have no effect",
        ),
        (
            {
                "speculative": "suffix",
                "speculate_up_to_batch": 16,
                "speculative_options": {"num_speculative_tokens_per_batch_size": [(1, 8, 4)]},
            },
            "not both",
        ),
        (
            {
                "speculative": "suffix",
                "enforce_eager": True,
                "speculative_options": {"enable_adaptive_verification": True},
            },
            "full CUDA graphs",
        ),
        ({"speculative": "/models/no-such-guard"}, "existing model directory or a Hugging Face hub id"),
        ({"speculative": "./guard-1b"}, "existing model directory"),
        ({"speculative": "suffx"}, "existing model directory"),
        ({"speculative": EMPTY_DIR}, "without a config.json"),
    ],
)
def test_bad_speculative_options_say_what_to_do(make_engine, tmp_path, options, message):
    if options.get("speculative") == EMPTY_DIR:
        options = {**options, "speculative": str(tmp_path)}
    with pytest.raises(ValueError, match=message):
        make_engine(**options)
    assert not LLM.instances


@pytest.mark.parametrize("backend", ["offline", "async"])
def test_warm_suffix_cache_adds_each_pair_as_vllm_adds_a_finished_request(make_engine, monkeypatch, backend):
    from guardreasoner.engines.vllm import suffix_cache

    monkeypatch.setattr(suffix_cache, "BATCH", 2)  # three pairs: two ingestions, as two steps' finished
    engine = make_engine(speculative="suffix", backend=backend, tensor_parallel_size=2)
    pairs = [
        (PROMPTS[0], "# Task 1\n\n## Reasoning Step 1: the request"),
        (PROMPTS[1], "Answers: \nRequest"),
        (PROMPTS[2], "Answers: \nRequest: harmful\nCompletion: refusal\nResponse: unharmful"),
    ]
    assert engine.warm_suffix_cache(pairs) == 3  # counted once, though both ranks add them
    # What vLLM's ingestion keeps of a finished request: the prompt's last 3 tokens, then the response.
    documents = [
        engine.encode(prompt)[-3:] + engine.tokenizer(text, add_special_tokens=False).input_ids
        for prompt, text in pairs
    ]
    (built,) = LLM.instances or AsyncLLM.instances
    for worker in built.workers:
        speculator = worker.model_runner.speculator
        assert speculator.corpus == documents and speculator.num_docs == 3 and speculator.ingested == [2, 1]
        assert speculator.req_states.req_id_to_index == {}  # the running engine's request state is untouched
    assert engine.warm_suffix_cache(pairs[:1]) == 1
    assert [w.model_runner.speculator.num_docs for w in built.workers] == [4, 4]
    assert built.workers[0].model_runner.speculator.corpus[-1] == documents[0]


def test_warm_suffix_cache_refuses_what_it_cannot_add(make_engine):
    pairs = [(PROMPTS[0], "Answers: \nRequest: unharmful")]
    with pytest.raises(ValueError, match="speculative='suffix'"):
        make_engine(speculative="ngram").warm_suffix_cache(pairs)
    off = make_engine(speculative="suffix", speculative_options={"suffix_decoding_corpus_tokens": 0})
    with pytest.raises(EngineError, match="corpus is off"):
        off.warm_suffix_cache(pairs)
    short = make_engine(speculative="suffix", max_model_len=64)
    with pytest.raises(ValueError, match="more than the model's context of 64"):
        short.warm_suffix_cache([(PROMPTS[0], "word " * 80)])
    (llm,) = [i for i in LLM.instances if i.options.get("max_model_len") == 64]
    assert not llm.workers[0].model_runner.speculator.corpus  # refused before anything was sent
    assert short.warm_suffix_cache([]) == 0


def test_batch_invariant_sets_vllms_switch_before_it_starts(make_engine, monkeypatch):
    import os

    monkeypatch.setenv("VLLM_BATCH_INVARIANT", "1")  # so that monkeypatch restores the variable afterwards
    monkeypatch.delenv("VLLM_BATCH_INVARIANT")
    make_engine(batch_invariant=True)
    assert os.environ["VLLM_BATCH_INVARIANT"] == "1"
    monkeypatch.setenv("VLLM_BATCH_INVARIANT", "0")
    with pytest.raises(ValueError, match="VLLM_BATCH_INVARIANT='0'"):
        make_engine(batch_invariant=True)


async def test_vllm_metrics_come_from_the_offline_llm_and_need_it(make_engine):
    engine = make_engine(disable_log_stats=False)
    engine.generate(PROMPTS[:3], CONFIG)
    assert (
        LLM.instances[0].options["disable_log_stats"] is False
    )  # the user's choice beats the engine's default
    (metric,) = engine.vllm_metrics()
    assert metric.name == "vllm:generation_tokens" and metric.value == sum(
        LLM.instances[0].llm_engine.core.batch_sizes
    )
    served = make_engine(backend="async")
    with pytest.raises(EngineError, match="AsyncLLM"):
        served.vllm_metrics()


# -- the runaway cap: max_reasoning_tokens forces the answer -----------------------------------------------


@pytest.mark.parametrize("backend", ["offline", "async"])
async def test_a_runaway_gets_the_answer_opening_and_a_few_greedy_tokens(make_engine, backend):
    from guardreasoner.engines.forcing import ANSWER_OPENING, FORCED_ANSWER_TOKENS

    engine = make_engine(backend=backend, max_reasoning_tokens=2)
    opening = engine.tokenizer(ANSWER_OPENING, add_special_tokens=False).input_ids
    assert "".join(engine._opening_texts) == ANSWER_OPENING and ANSWER_OPENING.endswith("Answers: \n")
    config = GenerationConfig(max_new_tokens=8)
    for generations in (
        engine.generate(PROMPTS, config),
        engine.generate_each(PROMPTS, config, timeout=30),
        await engine.agenerate_each(PROMPTS, config),
    ):
        forced = 0
        for prompt, generation in zip(PROMPTS, generations):
            ids = engine.encode(prompt)
            reasoning, reason = expected(ids, max_new_tokens=2)
            if reason == "stop":  # ended on its own within the cap: untouched
                assert not generation.forced_answer and generation.text == " ".join(
                    f"t{t}" for t in reasoning
                )
                continue
            forced += 1
            answer, answer_reason = expected([*ids, *reasoning, *opening], FORCED_ANSWER_TOKENS)
            assert generation.forced_answer and generation.finish_reason == answer_reason == "stop"
            assert generation.text == " ".join(f"t{t}" for t in reasoning) + ANSWER_OPENING + " ".join(
                f"t{t}" for t in answer
            )
            assert generation.num_generated_tokens == len(reasoning) + len(opening) + len(answer)
            assert len(generation.label_logprobs.tokens) == generation.num_generated_tokens
        assert 0 < forced < len(PROMPTS)


def test_the_cap_is_off_by_default_and_does_not_bind_below_the_callers_limit(make_engine):
    config = GenerationConfig(max_new_tokens=3)
    plain = make_engine(ignore_eos=True).generate(PROMPTS[:2], config)
    assert all(g.finish_reason == "length" and not g.forced_answer for g in plain)
    capped = make_engine(ignore_eos=True, max_reasoning_tokens=3).generate(PROMPTS[:2], config)
    assert [g.text for g in capped] == [g.text for g in plain] and not any(g.forced_answer for g in capped)
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="max_reasoning_tokens must be a positive .* 845"):
            make_engine(max_reasoning_tokens=bad)


def test_a_runaway_whose_forced_answer_would_not_fit_the_context_stays_a_length_finish(make_engine):
    from guardreasoner.engines.forcing import ANSWER_OPENING, FORCED_ANSWER_TOKENS

    engine = make_engine(ignore_eos=True, max_reasoning_tokens=4, max_model_len=512)
    extra = len(engine.tokenizer(ANSWER_OPENING, add_special_tokens=False).input_ids) + FORCED_ANSWER_TOKENS
    fits = too_long = "word " * 10
    while len(engine.encode(too_long)) + 4 + extra <= 512:
        too_long += "w"
    assert len(engine.encode(too_long)) < 512 - 4
    short, long = engine.generate([fits, too_long], GenerationConfig(max_new_tokens=64))
    assert short.forced_answer and ANSWER_OPENING in short.text
    assert not long.forced_answer and long.finish_reason == "length" and long.num_generated_tokens == 4


def test_a_forced_answer_is_marked_and_not_a_clean_allow_under_fail_closed():
    from guardreasoner.engines.base import Engine, Generation
    from guardreasoner.guard import GuardReasoner
    from guardreasoner.testing import guard_output

    class Forcing(Engine):
        name = "forcing"

        def generate(self, prompts, config):
            return [Generation(guard_output("unharmful"), "stop", 900, forced_answer=True) for _ in prompts]

    closed = GuardReasoner(engine=Forcing()).classify("Is this fine?")
    assert closed.forced_answer and closed.prompt_harmfulness == "unharmful"
    assert closed.is_harmful and closed.decided_by == "policy" and "answer was forced" in closed.parse_detail
    opened = GuardReasoner(engine=Forcing(), policy="fail_open").classify("Is this fine?")
    assert opened.forced_answer and opened.is_harmful is False and opened.decided_by == "model"
