"""The vLLM engine: the reference implementation's engine, for batches and for concurrent async callers.

Design: one engine object, one set of weights, two ways in.

* ``generate`` (``classify_batch``) is vLLM's offline path: the whole batch goes to one ``LLM.generate``
  call, as the reference implementation runs GuardReasoner. ``agenerate`` (``aclassify``) is vLLM's async
  engine (``AsyncLLM``): each call is a request that joins the running batch at the next step (continuous
  batching), so 256 concurrent callers share decode steps instead of queueing behind each other.
* An ``LLM`` and an ``AsyncLLM`` each load the weights and size a KV cache to ``gpu_memory_utilization``; two
  on one GPU would not fit at the reference's 0.95 (and would halve the cache below it). So an engine builds
  exactly one of them, chosen by ``backend``:

  - ``"auto"`` (the default) builds lazily, by first use: the first ``generate`` builds an ``LLM``, the first
    ``agenerate`` an ``AsyncLLM``. A batch job never starts an async engine and a server never runs the
    offline one, and constructing the engine (and so ``GuardReasoner``) costs only a tokenizer load.
  - ``"offline"`` or ``"async"`` builds that one now, for a server that wants the model loaded before its
    first request.

  The other way in then uses the backend that exists, keeping both of its properties:

  - ``generate`` on an ``AsyncLLM`` submits every prompt at once and waits for all: one batch, scheduled
    together with any concurrent async traffic.
  - ``agenerate`` on an ``LLM`` (built by an earlier ``generate``, or passed in as ``llm=``) starts a driver
    thread that owns the ``LLM``'s engine: it adds each request as it arrives and steps the engine, so
    concurrent callers are continuously batched there too. From then on ``generate`` goes through the
    driver as well, so two threads never step one engine.

* The ``AsyncLLM`` lives on a private event loop in a daemon thread. vLLM binds its output handler and its
  ZMQ sockets to the loop it first runs on; a private loop makes the engine usable from any loop (each
  ``asyncio.run``, per-test loops, a framework's worker loop) and from sync code, and keeps vLLM's output
  processing off the application's loop. Callers await a future wrapped for their own loop; cancelling the
  caller (a guard timeout) aborts its requests in vLLM.
* Prompts go in as token ids (``TokensPrompt``) encoded here with the model's tokenizer, exactly as the
  ``hf`` engine encodes them: raw prompts get BOS from the tokenizer (the reference's behaviour); a chat
  template's rendered text already starts with BOS, so it is encoded without special tokens (no double BOS),
  and ``<|eot_id|>`` stops generation. ``count_tokens`` therefore counts what the model is fed.
* ``dtype="float32"`` means float32: vLLM's Triton attention kernel (the one that takes fp32 on CUDA) feeds
  fp32 operands to TF32 tensor cores unless ``TRITON_F32_DEFAULT=ieee``, so the engine sets that variable
  (unless the user did) before vLLM starts. With it, greedy decoding matches transformers token for token
  (``benchmarks/gpu/vllm_suite.py``).
* Prefix caching is on: every GuardReasoner prompt starts with the same instruction.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import json
import os
import threading
from pathlib import Path
from typing import Any, Literal

from guardreasoner.engines.base import Engine, Generation, GenerationConfig
from guardreasoner.errors import ContextLengthError, EngineError, GuardReasonerError, require
from guardreasoner.prompt import PromptFormat

Backend = Literal["auto", "offline", "async"]
BACKENDS = ("auto", "offline", "async")
_FEATURE = "The vllm engine"
_FINISH_REASONS = {"stop": "stop", "length": "length"}
_ids = itertools.count()


class VLLMEngine(Engine):
    """Generation with vLLM (CUDA). See the module docstring for how batches and async calls are served.

    The tuning options go to vLLM as they are: ``tensor_parallel_size``, ``gpu_memory_utilization`` (0.95,
    as the reference), ``max_model_len``, ``max_num_seqs`` (256, as the reference), ``dtype``,
    ``quantization``, ``enable_prefix_caching``, ``seed``; any other keyword (``enforce_eager``,
    ``kv_cache_dtype``, ...) goes to ``vllm.LLM`` / ``AsyncEngineArgs`` unchanged. Pass ``llm=`` to use a
    ``vllm.LLM`` you built yourself (the engine then never shuts it down). ``ignore_eos`` is for
    benchmarks: every generation runs to ``max_new_tokens``.
    """

    name = "vllm"

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        prompt_format: PromptFormat | str = PromptFormat.RAW,
        backend: Backend = "auto",
        llm: Any = None,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.95,
        max_model_len: int | None = None,
        max_num_seqs: int = 256,
        dtype: Any = "auto",
        quantization: str | None = None,
        enable_prefix_caching: bool = True,
        seed: int = 0,
        ignore_eos: bool = False,
        tokenizer: Any = None,
        **vllm_options: Any,
    ):
        self._vllm = require("vllm", extra="vllm", feature=_FEATURE)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}.")
        if path is None and llm is None:
            raise ValueError("VLLMEngine needs a model path, or a ready vllm.LLM as llm=.")
        if llm is not None and backend == "async":
            raise ValueError("backend='async' builds its own AsyncLLM; it cannot use a ready vllm.LLM.")
        self.path = os.fspath(path) if path is not None else None
        self.prompt_format = PromptFormat(prompt_format)
        self.ignore_eos = ignore_eos
        self._backend_kind: str = "offline" if llm is not None else backend
        self._engine_args: dict[str, Any] = {
            "tensor_parallel_size": tensor_parallel_size,
            "gpu_memory_utilization": gpu_memory_utilization,
            "max_model_len": max_model_len,
            "max_num_seqs": max_num_seqs,
            "dtype": dtype,
            "quantization": quantization,
            "enable_prefix_caching": enable_prefix_caching,
            "seed": seed,
            **vllm_options,
        }
        self._max_model_len = max_model_len
        self._config_max_len = _config_max_len(self.path)
        if tokenizer is None:
            if llm is not None:
                tokenizer = llm.get_tokenizer()
            else:
                transformers = require("transformers", extra="vllm", feature=_FEATURE)
                tokenizer = transformers.AutoTokenizer.from_pretrained(self.path)
        self.tokenizer = tokenizer
        self._stop_ids = _chat_stop_ids(tokenizer) if self.prompt_format is PromptFormat.CHAT else []
        self._encoded: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        self._backend: concurrent.futures.Future | None = None
        self._closed = False
        if llm is not None:
            self._backend = concurrent.futures.Future()
            self._backend.set_result(_OfflineBackend(llm, owned=False))
        elif backend != "auto":
            self._ensure_backend(backend).result()

    # -- the interface --------------------------------------------------------------------------------

    @property
    def max_context_tokens(self) -> int | None:  # type: ignore[override]
        backend = self._backend
        if backend is not None and backend.done() and backend.exception() is None:
            return backend.result().max_model_len
        return self._max_model_len or self._config_max_len

    def render(self, prompt: str) -> str:
        if self.prompt_format is PromptFormat.RAW:
            return prompt
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )

    def count_tokens(self, text: str) -> int:
        return len(self._encode([text])[0])

    def generate(self, prompts: list[str], config: GenerationConfig) -> list[Generation]:
        if not prompts:
            return []
        return [_to_generation(out) for out in self.generate_outputs(prompts, config)]

    async def agenerate(self, prompts: list[str], config: GenerationConfig) -> list[Generation]:
        if not prompts:
            return []
        outputs = await self.agenerate_outputs(prompts, config)
        return [_to_generation(out) for out in outputs]

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            backend = self._backend
        if backend is None:
            return
        if backend.done():
            if backend.exception() is None:
                backend.result().close()
            return

        def close_when_built(built: concurrent.futures.Future) -> None:  # still loading: close it once loaded
            if built.exception() is None:
                threading.Thread(target=built.result().close, daemon=True).start()

        backend.add_done_callback(close_when_built)

    # -- vLLM's own outputs (token ids, logprobs) -----------------------------------------------------

    def token_prompts(self, prompts: list[str]) -> list[dict[str, list[int]]]:
        """The ``TokensPrompt`` each prompt is fed as; raises :class:`ContextLengthError` if one cannot fit."""
        limit = self.max_context_tokens
        inputs = []
        for index, ids in enumerate(self._encode(prompts)):
            if limit is not None and len(ids) >= limit:
                raise ContextLengthError(
                    f"Prompt {index} is {len(ids)} tokens; the model's context is {limit} tokens and at least "
                    "one must be left to generate. Shorten the conversation or raise max_model_len."
                )
            inputs.append({"prompt_token_ids": ids})
        return inputs

    def generate_outputs(self, prompts: list[str], config: GenerationConfig) -> list[Any]:
        """Like :meth:`generate`, but vLLM's ``RequestOutput`` objects (with token ids), in order."""
        inputs = self.token_prompts(prompts)
        backend = self._ensure_backend("offline").result()
        try:
            return backend.generate(inputs, self._sampling_params(config))
        except GuardReasonerError:
            raise
        except Exception as exc:
            raise EngineError(f"vLLM generation failed: {type(exc).__name__}: {exc}") from exc

    async def agenerate_outputs(self, prompts: list[str], config: GenerationConfig) -> list[Any]:
        """Async :meth:`generate_outputs`: the requests join whatever the engine is running."""
        inputs = self.token_prompts(prompts)
        backend = await asyncio.wrap_future(self._ensure_backend("async"))
        try:
            return await backend.agenerate(inputs, self._sampling_params(config))
        except GuardReasonerError:
            raise
        except Exception as exc:
            raise EngineError(f"vLLM generation failed: {type(exc).__name__}: {exc}") from exc

    @property
    def backend(self) -> str | None:
        """``"offline"`` or ``"async"`` once the vLLM engine is built, else None."""
        backend = self._backend
        if backend is None or not backend.done() or backend.exception() is not None:
            return None
        return backend.result().kind

    # -- internals ------------------------------------------------------------------------------------

    def _encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids for each prompt, as the hf engine encodes them; memoised (the guard counts, then runs)."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._encoded]
        if missing:
            rendered = [self.render(t) for t in missing]
            add_special = self.prompt_format is PromptFormat.RAW
            encoded = self.tokenizer(rendered, add_special_tokens=add_special)["input_ids"]
            with self._lock:
                if len(self._encoded) > 16384:
                    self._encoded.clear()
                self._encoded.update(zip(missing, encoded))
        cache = self._encoded
        return [list(cache[t]) if t in cache else self._encode_one(t) for t in texts]

    def _encode_one(self, text: str) -> list[int]:
        add_special = self.prompt_format is PromptFormat.RAW
        return list(self.tokenizer(self.render(text), add_special_tokens=add_special)["input_ids"])

    def _sampling_params(self, config: GenerationConfig) -> Any:
        from vllm import SamplingParams

        return SamplingParams(
            n=config.n,
            temperature=config.temperature,
            top_p=config.top_p,
            max_tokens=config.max_new_tokens,
            seed=config.seed,
            ignore_eos=self.ignore_eos,
            stop_token_ids=list(self._stop_ids) or None,
            skip_special_tokens=True,
        )

    def _ensure_backend(self, want: str) -> concurrent.futures.Future:
        """The future of the one vLLM backend; builds it (``want``, unless ``backend`` fixed it) on first use."""
        with self._lock:
            if self._closed:
                raise EngineError("This vllm engine is closed.")
            if self._backend is not None:
                return self._backend
            kind = want if self._backend_kind == "auto" else self._backend_kind
            future: concurrent.futures.Future = concurrent.futures.Future()
            self._backend = future
        if kind == "offline":
            try:
                future.set_result(_OfflineBackend(self._build_llm(), owned=True))
            except BaseException as exc:
                self._build_failed(future, exc)
        else:
            backend = _AsyncBackend()
            started = backend.start(self._build_async_llm)

            def done(started: concurrent.futures.Future) -> None:  # runs on the backend's loop thread
                if started.exception() is None:
                    future.set_result(backend)
                else:
                    self._build_failed(future, started.exception())
                    backend.close()

            started.add_done_callback(done)
        return future

    def _build_failed(self, future: concurrent.futures.Future, exc: BaseException) -> None:
        with self._lock:
            if self._backend is future:
                self._backend = None  # a later call may retry (after freeing GPU memory, say)
        if isinstance(exc, GuardReasonerError):
            future.set_exception(exc)
            return
        error = EngineError(f"vLLM could not load the model at {self.path}: {type(exc).__name__}: {exc}")
        error.__cause__ = exc
        future.set_exception(error)

    def _options(self) -> dict[str, Any]:
        options = {k: v for k, v in self._engine_args.items() if v is not None}
        if str(options.get("dtype")).replace("torch.", "") in ("float32", "float"):
            os.environ.setdefault("TRITON_F32_DEFAULT", "ieee")
        return options

    def _build_llm(self) -> Any:
        options = self._options()
        options.setdefault("disable_log_stats", True)
        return self._vllm.LLM(model=self.path, tokenizer=self.path, **options)

    def _build_async_llm(self) -> Any:
        from vllm.engine.arg_utils import AsyncEngineArgs

        try:
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError:  # older releases
            from vllm import AsyncLLMEngine as AsyncLLM
        options = self._options()
        options.setdefault("disable_log_stats", True)
        return AsyncLLM.from_engine_args(AsyncEngineArgs(model=self.path, tokenizer=self.path, **options))


# -- backends -------------------------------------------------------------------------------------------


class _OfflineBackend:
    """A ``vllm.LLM``: ``LLM.generate`` for batches; a driver thread once async callers arrive."""

    kind = "offline"

    def __init__(self, llm: Any, *, owned: bool):
        self.llm = llm
        self.owned = owned
        self.max_model_len = llm.llm_engine.model_config.max_model_len
        self._lock = threading.Lock()  # held while anything steps the LLM's engine
        self._driver: _Driver | None = None

    def generate(self, inputs: list, params: Any) -> list[Any]:
        driver = self._driver  # once set, never unset: no lock needed to read it
        if driver is None:
            with self._lock:
                if self._driver is None:
                    return self.llm.generate(inputs, params, use_tqdm=False)
            driver = self._driver
        ids = [f"guardreasoner-{next(_ids)}" for _ in inputs]
        params = _final_only(params)
        futures = [driver.submit(i, p, params) for i, p in zip(ids, inputs)]
        try:
            return [f.result() for f in futures]
        except BaseException:
            driver.abort(ids)
            raise

    async def agenerate(self, inputs: list, params: Any) -> list[Any]:
        driver = self._driver or await asyncio.to_thread(self._start_driver)
        ids = [f"guardreasoner-{next(_ids)}" for _ in inputs]
        params = _final_only(params)
        futures = [asyncio.wrap_future(driver.submit(i, p, params)) for i, p in zip(ids, inputs)]
        try:
            return list(await asyncio.gather(*futures))
        except BaseException:
            driver.abort(ids)
            raise

    def _start_driver(self) -> _Driver:
        with self._lock:  # waits for a running LLM.generate batch to finish
            if self._driver is None:
                self._driver = _Driver(self.llm.llm_engine, self._lock)
            return self._driver

    def close(self) -> None:
        if self._driver is not None:
            self._driver.close()
        if self.owned:
            _shutdown(self.llm.llm_engine)
            self.llm = None


class _Driver:
    """One thread that adds requests to an offline engine and steps it: continuous batching without AsyncLLM."""

    def __init__(self, engine: Any, lock: threading.Lock):
        self._engine = engine
        self._lock = lock
        self._cv = threading.Condition()
        self._pending: list[tuple[str, Any, Any, concurrent.futures.Future]] = []
        self._aborts: list[str] = []
        self._running: dict[str, concurrent.futures.Future] = {}
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="guardreasoner-vllm-driver", daemon=True)
        self._thread.start()

    def submit(self, request_id: str, prompt: Any, params: Any) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._cv:
            if self._error is not None or self._closed:
                raise EngineError(f"The vLLM engine has stopped: {self._error or 'closed'}")
            self._pending.append((request_id, prompt, params, future))
            self._cv.notify()
        return future

    def abort(self, request_ids: list[str]) -> None:
        with self._cv:
            self._aborts.extend(request_ids)
            self._cv.notify()

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        try:
            while True:
                with self._cv:
                    while not (self._pending or self._running or self._aborts or self._closed):
                        self._cv.wait()
                    if self._closed:
                        break
                    new, self._pending = self._pending, []
                    aborts, self._aborts = self._aborts, []
                with self._lock:
                    self._admit(new, aborts)
                    outputs = self._engine.step() if self._running else []
                for output in outputs:
                    if output.finished:
                        future = self._running.pop(output.request_id, None)
                        if future is not None:
                            _settle(future, result=output)
        except BaseException as exc:  # the engine died: fail everything waiting
            self._error = exc
        with self._cv:
            error = self._error or EngineError("The vllm engine was closed.")
            waiting = [f for *_, f in self._pending] + list(self._running.values())
            self._pending, self._running = [], {}
        for future in waiting:
            _settle(future, error=error)

    def _admit(self, new: list, aborts: list[str]) -> None:
        # A caller that gave up cancels its future (asyncio.wrap_future does) or names its requests.
        aborted = set(aborts)
        dropped = [r for r, f in self._running.items() if r in aborted or f.cancelled()]
        if dropped:
            self._engine.abort_request(dropped)
            for request_id in dropped:
                _settle(self._running.pop(request_id), error=concurrent.futures.CancelledError())
        for request_id, prompt, params, future in new:
            if request_id in aborted or future.cancelled():
                _settle(future, error=concurrent.futures.CancelledError())
                continue
            try:
                self._engine.add_request(request_id, prompt, params)
            except Exception as exc:
                _settle(future, error=exc)
                continue
            self._running[request_id] = future


class _AsyncBackend:
    """vLLM's ``AsyncLLM`` on a private event loop in a daemon thread."""

    kind = "async"

    def __init__(self) -> None:
        self.engine: Any = None
        self.max_model_len: int | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="guardreasoner-vllm-async", daemon=True
        )
        self._thread.start()

    def start(self, build: Any) -> concurrent.futures.Future:
        async def create() -> None:
            # Built inside the loop, so vLLM binds its output handler and sockets to it.
            self.engine = build()
            self.max_model_len = self.engine.model_config.max_model_len

        return asyncio.run_coroutine_threadsafe(create(), self._loop)

    def generate(self, inputs: list, params: Any) -> list[Any]:
        future = asyncio.run_coroutine_threadsafe(self._generate(inputs, params), self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    async def agenerate(self, inputs: list, params: Any) -> list[Any]:
        return await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(self._generate(inputs, params), self._loop)
        )

    async def _generate(self, inputs: list, params: Any) -> list[Any]:
        params = _final_only(params)
        tasks = [asyncio.ensure_future(self._one(prompt, params)) for prompt in inputs]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:  # one failed or the caller gave up: abort the rest too
                task.cancel()
            raise

    async def _one(self, prompt: Any, params: Any) -> Any:
        final = None
        async for output in self.engine.generate(prompt, params, f"guardreasoner-{next(_ids)}"):
            final = output
        if final is None or not final.finished:
            raise EngineError("vLLM ended a request without a final output.")
        return final

    def close(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None:

            async def shutdown() -> None:
                engine.shutdown()

            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=120)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if threading.current_thread() is self._thread:
            return  # called from the loop itself (a failed build): it stops when this callback returns
        self._thread.join(timeout=30)
        if not self._thread.is_alive():
            self._loop.close()


# -- helpers --------------------------------------------------------------------------------------------


def _to_generation(output: Any) -> Generation:
    """A vLLM ``RequestOutput`` as a :class:`Generation` (finish reasons ``stop`` / ``length`` only)."""
    completions = list(output.outputs)
    if not completions:
        raise EngineError(f"vLLM returned no completion for request {output.request_id}.")
    first = completions[0]
    reason = _FINISH_REASONS.get(first.finish_reason)
    if reason is None:
        raise EngineError(
            f"vLLM ended request {output.request_id} with finish reason {first.finish_reason!r} "
            f"(stop reason {getattr(first, 'stop_reason', None)!r})."
        )
    prompt_ids = getattr(output, "prompt_token_ids", None)
    return Generation(
        text=first.text,
        finish_reason=reason,
        num_generated_tokens=len(first.token_ids),
        num_prompt_tokens=len(prompt_ids) if prompt_ids is not None else None,
        samples=tuple(c.text for c in completions) if len(completions) > 1 else (),
    )


def _settle(
    future: concurrent.futures.Future, *, result: Any = None, error: BaseException | None = None
) -> None:
    """Resolve ``future`` unless its caller already cancelled it."""
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


def _final_only(params: Any) -> Any:
    """One output per request, when it finishes (no per-token streaming objects)."""
    from vllm.sampling_params import RequestOutputKind

    params = params.clone()
    params.output_kind = RequestOutputKind.FINAL_ONLY
    return params


def _chat_stop_ids(tokenizer: Any) -> list[int]:
    """``<|eot_id|>`` ends a chat turn, as in the hf engine."""
    token = tokenizer.convert_tokens_to_ids("<|eot_id|>")
    if isinstance(token, int) and token != getattr(tokenizer, "unk_token_id", None):
        return [token]
    return []


def _config_max_len(path: str | None) -> int | None:
    """The context length from ``config.json``, before vLLM is loaded (vLLM's own value replaces it)."""
    if path is None:
        return None
    try:
        config = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    config = config.get("text_config", config)
    value = config.get("max_position_embeddings")
    return int(value) if isinstance(value, int) else None


def _shutdown(llm_engine: Any) -> None:
    core = getattr(llm_engine, "engine_core", None)
    if core is not None and hasattr(core, "shutdown"):
        with contextlib.suppress(Exception):
            core.shutdown()
