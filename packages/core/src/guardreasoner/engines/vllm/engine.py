"""``VLLMEngine``: the options, the prompts as token ids, and the choice of one backend (``offline.py`` or
``async_llm.py``). The package docstring says how batches and async callers are served."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Literal

from guardreasoner.engines.base import Engine, Generation, GenerationConfig
from guardreasoner.engines.forcing import (
    ANSWER_OPENING,
    PROMPT_ANSWER_OPENING,
    answer_config,
    capped,
    check_max_reasoning_tokens,
    opened,
)
from guardreasoner.engines.vllm import label_scores
from guardreasoner.engines.vllm.async_llm import AsyncBackend
from guardreasoner.engines.vllm.offline import OfflineBackend
from guardreasoner.engines.vllm.outputs import to_generation, to_generation_or_failure, with_forced_answer
from guardreasoner.engines.vllm.speculative import OFF as SPECULATION_OFF
from guardreasoner.engines.vllm.speculative import check_suffix_support, speculative_config
from guardreasoner.engines.vllm.suffix_cache import RPC_METHOD, WORKER_EXTENSION
from guardreasoner.errors import (
    ContextLengthError,
    EngineError,
    EngineLoadError,
    EngineTimeoutError,
    GuardReasonerError,
    require,
)
from guardreasoner.prompt import PromptFormat, encode_prompt, render_prompt, stop_token_ids
from guardreasoner.scores import LabelLogprobs, LabelTokens, token_texts

Backend = Literal["auto", "offline", "async"]
BACKENDS = ("auto", "offline", "async")
_FEATURE = "The vllm engine"


class VLLMEngine(Engine):
    """Generation with vLLM (CUDA). See the package docstring for how batches and async calls are served.

    The tuning options go to vLLM as they are: ``tensor_parallel_size``, ``gpu_memory_utilization`` (unset:
    vLLM's own default; on vLLM 0.34 that sizes the KV cache from the memory measured free after start-up,
    where the reference pinned 0.95; set it when the GPU is shared), ``max_model_len``, ``max_num_seqs``
    (unset: vLLM's own default, 1024 on an H100 or H200; the reference pinned 256), ``dtype``,
    ``quantization`` (``"fp8"``: FP8 weights, measured against bf16 in ``benchmarks/gpu/vllm_perf.py``),
    ``enable_prefix_caching``, ``seed``; any other keyword
    (``enforce_eager``, ``async_scheduling``, ``compilation_config``, ...) goes to ``vllm.LLM`` /
    ``AsyncEngineArgs`` unchanged. Pass ``llm=`` to use a ``vllm.LLM`` you built yourself (the engine then
    never shuts it down). ``ignore_eos`` is for benchmarks: every generation runs to ``max_new_tokens``.

    Speculative decoding (``speculative.py``): ``speculative`` is ``"suffix"`` (vLLM 0.34+), ``"ngram"``,
    ``"ngram_gpu"`` or a draft model (a directory or hub id); ``num_speculative_tokens`` the draft length;
    ``speculate_up_to_batch`` drafts only while at most that many requests run; ``speculative_options`` are
    vLLM's own speculative fields. With ``"suffix"``, :meth:`warm_suffix_cache` seeds the cross-request
    corpus with earlier outputs.
    ``batch_invariant=True`` sets vLLM's ``VLLM_BATCH_INVARIANT`` (before vLLM starts; an environment variable,
    not a config field, in vLLM 0.26 and 0.34 alike, for GPUs of compute capability 9.0 and up): a prompt's
    tokens then do not depend on what it is batched with, at a cost in speed.

    Scores (``label_scores.py``): generation asks for no log-probabilities (vLLM would compute and ship them
    for every token); once an output is in, one 1-token request per label of its final answer block asks for
    exactly the label candidates' log-probabilities there (``logprob_token_ids``), on a context vLLM's prefix
    cache already holds (without prefix caching each recomputes its context). Exact, never a top-k bound; in
    bf16 a separate forward from the one that wrote the label, so a near-tie can score on the other side of
    0.5. ``scores=False`` skips those requests (the verdicts then have no scores).

    ``force_answers`` (``reasoning="auto"``/``"never"``): one short greedy request per prompt on its ids and
    the answer opening's, which carries its own label scores; see the method.

    ``max_reasoning_tokens`` (None: off; about 845 recommended, see ``engines/forcing.py``) caps the reasoning:
    an output cut there gets the answer block's opening and a second, greedy request of a few tokens reads
    the labels; its generation says ``forced_answer``. The cap applies to single samples (``n == 1``).
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
        gpu_memory_utilization: float | None = None,
        max_model_len: int | None = None,
        max_num_seqs: int | None = None,
        dtype: Any = "auto",
        quantization: str | None = None,
        enable_prefix_caching: bool = True,
        seed: int = 0,
        ignore_eos: bool = False,
        tokenizer: Any = None,
        speculative: str | None = None,
        num_speculative_tokens: int | None = None,
        speculate_up_to_batch: int | None = None,
        speculative_options: dict[str, Any] | None = None,
        batch_invariant: bool = False,
        scores: bool = True,
        max_reasoning_tokens: int | None = None,
        **vllm_options: Any,
    ):
        self._vllm = require("vllm", extra="vllm", feature=_FEATURE)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}.")
        if path is None and llm is None:
            raise ValueError("VLLMEngine needs a model path, or a ready vllm.LLM as llm=.")
        if llm is not None and backend == "async":
            raise ValueError("backend='async' builds its own AsyncLLM; it cannot use a ready vllm.LLM.")
        if speculative not in SPECULATION_OFF and "speculative_config" in vllm_options:
            raise ValueError("Pass speculative= or vLLM's own speculative_config=, not both.")
        if llm is not None and (speculative not in SPECULATION_OFF or batch_invariant):
            raise ValueError(
                "speculative= and batch_invariant= configure the vllm.LLM this engine builds; with a ready llm=, "
                "set them when you build it (speculative_config=..., VLLM_BATCH_INVARIANT=1)."
            )
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
            "speculative_config": speculative_config(
                speculative,
                num_speculative_tokens=num_speculative_tokens,
                speculate_up_to_batch=speculate_up_to_batch,
                options=speculative_options,
                eager=bool(vllm_options.get("enforce_eager")),
            ),
            **vllm_options,  # vLLM's own speculative_config=, if given, passes through as it is
        }
        spec = self._engine_args["speculative_config"]
        self.speculative: str | None = spec["method"] if spec else None
        if self.speculative == "suffix":
            check_suffix_support(self._vllm)
            self._engine_args.setdefault("worker_extension_cls", WORKER_EXTENSION)
        if batch_invariant:
            if os.environ.get("VLLM_BATCH_INVARIANT", "1") != "1":
                raise ValueError(
                    "batch_invariant=True, but the environment sets VLLM_BATCH_INVARIANT="
                    f"{os.environ['VLLM_BATCH_INVARIANT']!r}; unset it or pass batch_invariant=False."
                )
            os.environ["VLLM_BATCH_INVARIANT"] = "1"
        self._max_model_len = max_model_len
        self._config_max_len = _config_max_len(self.path)
        if tokenizer is None:
            if llm is not None:
                tokenizer = llm.get_tokenizer()
            else:
                transformers = require("transformers", extra="vllm", feature=_FEATURE)
                tokenizer = transformers.AutoTokenizer.from_pretrained(self.path)
        self.tokenizer = tokenizer
        self.max_reasoning_tokens = check_max_reasoning_tokens(max_reasoning_tokens)
        self._opening_ids = list(tokenizer(ANSWER_OPENING, add_special_tokens=False)["input_ids"])
        self._opening_texts = token_texts(
            self._opening_ids, lambda i: tokenizer.decode(i, skip_special_tokens=True)
        )
        self.label_tokens = LabelTokens.from_tokenizer(tokenizer) if scores else None
        self._prompt_opening_ids = list(
            tokenizer(PROMPT_ANSWER_OPENING, add_special_tokens=False)["input_ids"]
        )
        # EOS and (chat) end of turn; none with ignore_eos, whose generations run to max_new_tokens.
        self._stop_ids = [] if ignore_eos else sorted(stop_token_ids(tokenizer, self.prompt_format))
        self._lock = threading.Lock()
        self._backend: concurrent.futures.Future | None = None
        self._closed = False
        if llm is not None:
            self._backend = concurrent.futures.Future()
            self._backend.set_result(OfflineBackend(llm, owned=False))
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
        return render_prompt(self.tokenizer, prompt, self.prompt_format)

    def encode(self, prompt: str) -> list[int]:
        """The ids the model is fed (an :class:`~guardreasoner.prompt.EncodedPrompt`'s own, as they are)."""
        return encode_prompt(self.tokenizer, prompt, self.prompt_format)

    def generate(self, prompts: list[str], config: GenerationConfig) -> list[Generation]:
        if not prompts:
            return []
        return [
            to_generation(out, found)
            for out, found in self._scored(self._outputs(prompts, config), each=False)
        ]

    async def agenerate(self, prompts: list[str], config: GenerationConfig) -> list[Generation]:
        if not prompts:
            return []
        outputs = await self._aoutputs(prompts, config)
        return [to_generation(out, found) for out, found in await self._ascored(outputs, each=False)]

    def generate_each(
        self, prompts: list[str], config: GenerationConfig, *, timeout: float | None = None
    ) -> list[Generation]:
        """Per-prompt results: a request vLLM failed or aborted is that prompt's error only. Past ``timeout``
        seconds (of generating; a model load is not counted) the requests are aborted in vLLM."""
        if not prompts:
            return []
        started = time.monotonic()
        outputs = self._outputs(prompts, config, each=True, timeout=timeout)
        left = None if timeout is None else max(timeout - (time.monotonic() - started), 0.001)
        return [
            to_generation_or_failure(r, found) for r, found in self._scored(outputs, each=True, timeout=left)
        ]

    async def agenerate_each(
        self, prompts: list[str], config: GenerationConfig, *, timeout: float | None = None
    ) -> list[Generation]:
        """Async :meth:`generate_each`; past ``timeout`` seconds (loading included) the requests are aborted."""
        if not prompts:
            return []

        async def scored() -> list[tuple[Any, Any]]:
            return await self._ascored(await self._aoutputs(prompts, config, each=True), each=True)

        try:
            results = await asyncio.wait_for(scored(), timeout)
        except TimeoutError:
            raise EngineTimeoutError(f"The vllm engine gave no answer within {timeout:g} s.") from None
        return [to_generation_or_failure(r, found) for r, found in results]

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

    @property
    def backend(self) -> str | None:
        """``"offline"`` or ``"async"`` once the vLLM engine is built, else None."""
        backend = self._backend
        if backend is None or not backend.done() or backend.exception() is not None:
            return None
        return backend.result().kind

    def warm_suffix_cache(self, pairs: list[tuple[str, str]]) -> int:
        """Seed suffix decoding's cross-request corpus with earlier (prompt, output) texts, e.g. the guard's
        own verdicts, as if this engine had just served them (``suffix_cache.py``; vLLM 0.34).

        Builds the backend if needed; returns how many outputs were added. Needs ``speculative="suffix"``.
        """
        if self.speculative != "suffix":
            raise ValueError("warm_suffix_cache needs an engine built with speculative='suffix'.")
        if not pairs:
            return 0
        prompts = [self.encode(p) for p, _ in pairs]
        outputs = self.tokenizer([o for _, o in pairs], add_special_tokens=False)["input_ids"]
        backend = self._ensure_backend("offline").result()
        for index, (prompt, output) in enumerate(zip(prompts, outputs)):
            if len(prompt) + len(output) > backend.max_model_len:
                raise ValueError(
                    f"Pair {index} is {len(prompt) + len(output)} tokens, more than the model's context of "
                    f"{backend.max_model_len}: this engine could not have written it."
                )
        args = ([(list(p), list(o)) for p, o in zip(prompts, outputs)],)
        try:
            return backend.collective_rpc(RPC_METHOD, args)[0]  # every worker adds the same pairs
        except Exception as exc:
            raise EngineError(f"vLLM could not warm the suffix cache: {type(exc).__name__}: {exc}") from exc

    def vllm_metrics(self) -> list[Any]:
        """vLLM's own metrics (``LLM.get_metrics()``: counters such as ``vllm:spec_decode_num_accepted_tokens``)
        of the offline backend. vLLM collects them only when the engine is built with ``disable_log_stats=False``.
        """
        backend = self._ensure_backend("offline").result()
        if backend.kind != "offline":
            raise EngineError(
                "vllm_metrics reads the offline backend's vllm.LLM; this engine runs an AsyncLLM."
            )
        return backend.llm.get_metrics()

    # -- vLLM's own outputs (token ids), for guardreasoner.engines.vllm.raw ---------------------------

    def _token_prompts(self, prompts: list[str]) -> list[dict[str, list[int]]]:
        """The ``TokensPrompt`` each prompt is fed as; raises :class:`ContextLengthError` if one cannot fit."""
        limit = self.max_context_tokens
        inputs = []
        for index, ids in enumerate(map(self.encode, prompts)):
            if limit is not None and len(ids) >= limit:
                raise ContextLengthError(
                    f"Prompt {index} is {len(ids)} tokens; the model's context is {limit} tokens and at least "
                    "one must be left to generate. Shorten the conversation or raise max_model_len."
                )
            inputs.append({"prompt_token_ids": ids})
        return inputs

    def _outputs(
        self,
        prompts: list[str],
        config: GenerationConfig,
        *,
        each: bool = False,
        timeout: float | None = None,
    ) -> list[Any]:
        """Like :meth:`generate`, but vLLM's ``RequestOutput`` objects (with token ids), in order; with
        ``each``, a failed request's exception in its place."""
        inputs = self._token_prompts(prompts)
        backend = self._ensure_backend("offline").result()
        started = time.monotonic()
        cap = self._cap(config)
        outputs = self._call(backend.generate, inputs, self._sampling_params(cap or config), each, timeout)
        runaways = self._runaways(outputs, cap) if cap else []
        if runaways:
            left = None if timeout is None else max(timeout - (time.monotonic() - started), 0.001)
            answers = self._call(
                backend.generate, self._answer_inputs(outputs, runaways), self._answer_params(), each, left
            )
            self._force(outputs, runaways, answers)
        return outputs

    async def _aoutputs(
        self, prompts: list[str], config: GenerationConfig, *, each: bool = False
    ) -> list[Any]:
        """Async :meth:`_outputs`: the requests join whatever the engine is running."""
        inputs = self._token_prompts(prompts)
        backend = await asyncio.wrap_future(self._ensure_backend("async"))
        cap = self._cap(config)
        outputs = await self._acall(backend.agenerate, inputs, self._sampling_params(cap or config), each)
        runaways = self._runaways(outputs, cap) if cap else []
        if runaways:
            answer_inputs = self._answer_inputs(outputs, runaways)
            self._force(
                outputs,
                runaways,
                await self._acall(backend.agenerate, answer_inputs, self._answer_params(), each),
            )
        return outputs

    def _call(self, generate: Any, inputs: list, params: Any, each: bool, timeout: float | None) -> list:
        try:
            return generate(inputs, params, each=each, timeout=timeout)
        except GuardReasonerError:
            raise
        except Exception as exc:
            raise _engine_error(exc, timeout) from exc

    async def _acall(self, agenerate: Any, inputs: list, params: Any, each: bool) -> list:
        try:
            return await agenerate(inputs, params, each=each)
        except GuardReasonerError:
            raise
        except Exception as exc:
            raise _engine_error(exc, None) from exc

    # -- label scores (label_scores.py) -----------------------------------------------------------------

    def _scored(
        self, outputs: list[Any], *, each: bool, timeout: float | None = None
    ) -> list[tuple[Any, LabelLogprobs | None]]:
        """Each output with what scoring needs, from one batch of 1-token requests at the label positions."""
        queries, inputs = self._label_requests(outputs)
        answers = []
        if inputs:
            backend = self._ensure_backend("offline").result()
            answers = self._call(backend.generate, inputs, self._label_params(), each, timeout)
        return self._with_scores(outputs, queries, answers)

    async def _ascored(self, outputs: list[Any], *, each: bool) -> list[tuple[Any, LabelLogprobs | None]]:
        queries, inputs = self._label_requests(outputs)
        answers = []
        if inputs:
            backend = await asyncio.wrap_future(self._ensure_backend("async"))
            answers = await self._acall(backend.agenerate, inputs, self._label_params(), each)
        return self._with_scores(outputs, queries, answers)

    def _label_requests(self, outputs: list[Any]) -> tuple[list[label_scores.LabelQuery], list[dict]]:
        if self.label_tokens is None:
            return [], []
        queries = label_scores.plan(outputs, self._decode, self.label_tokens)
        return queries, label_scores.requests(outputs, queries)

    def _with_scores(
        self, outputs: list[Any], queries: list[label_scores.LabelQuery], answers: list[Any]
    ) -> list[tuple[Any, LabelLogprobs | None]]:
        if self.label_tokens is None:
            return [(output, None) for output in outputs]
        return list(
            zip(outputs, label_scores.label_logprobs(len(outputs), queries, answers, self.label_tokens))
        )

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def _label_params(self) -> Any:
        from vllm import SamplingParams

        return SamplingParams(
            max_tokens=1,
            temperature=0.0,
            logprob_token_ids=list(self.label_tokens.candidate_ids),
            detokenize=False,
        )

    # -- answer-first (guardreasoner.reasoning, engines/forcing.py) --------------------------------------

    def force_answers(self, prompts: list[str], *, timeout: float | None = None) -> list[Generation]:
        """One short greedy request per prompt: its ids and the answer opening's, a few tokens, the label
        candidates' log-probabilities at each (``logprob_token_ids``; a handful of tokens, so no label
        requests after it). A reasoning pass for the same prompt (``reasoning="auto"``) feeds the same prompt
        ids first, so with prefix caching (on by default) vLLM reuses the blocks this request computed and
        prefills only the prompt's last partial block."""
        if not prompts:
            return []
        inputs = self._forced_inputs(prompts)
        backend = self._ensure_backend("offline").result()
        outputs = self._call(backend.generate, inputs, self._forced_params(), True, timeout)
        return [self._forced_generation(output) for output in outputs]

    async def aforce_answers(self, prompts: list[str], *, timeout: float | None = None) -> list[Generation]:
        if not prompts:
            return []
        inputs = self._forced_inputs(prompts)

        async def answered() -> list[Any]:
            backend = await asyncio.wrap_future(self._ensure_backend("async"))
            return await self._acall(backend.agenerate, inputs, self._forced_params(), True)

        try:
            outputs = await asyncio.wait_for(answered(), timeout)
        except TimeoutError:
            raise EngineTimeoutError(f"The vllm engine gave no answer within {timeout:g} s.") from None
        return [self._forced_generation(output) for output in outputs]

    def _forced_inputs(self, prompts: list[str]) -> list[dict[str, list[int]]]:
        return [
            {"prompt_token_ids": [*prompt["prompt_token_ids"], *self._prompt_opening_ids]}
            for prompt in self._token_prompts(prompts)
        ]

    def _forced_params(self) -> Any:
        """A forced answer's: the runaway cap's few greedy tokens (:meth:`_answer_params`), with the label
        candidates' log-probabilities at each."""
        candidates = list(self.label_tokens.candidate_ids) if self.label_tokens else None
        return self._sampling_params(answer_config(), logprob_token_ids=candidates)

    def _forced_generation(self, result: Any) -> Generation:
        scores = None
        if self.label_tokens is not None and not isinstance(result, BaseException):
            scores = label_scores.generated_logprobs(result, self._decode, self.label_tokens)
        return opened(to_generation_or_failure(result, scores))

    # -- the runaway cap (engines/forcing.py) -----------------------------------------------------------

    def _cap(self, config: GenerationConfig) -> GenerationConfig | None:
        return capped(config, self.max_reasoning_tokens) if config.n == 1 else None

    def _runaways(self, outputs: list[Any], cap: GenerationConfig) -> list[int]:
        """The requests cut at the cap whose forced answer fits the context (one cut by the context itself
        stays a plain ``length`` finish; in each mode, failed ones are left as they are)."""
        limit = self.max_context_tokens
        extra = len(self._opening_ids) + answer_config().max_new_tokens
        runaways = []
        for i, output in enumerate(outputs):
            if isinstance(output, BaseException) or not output.outputs:
                continue
            first = output.outputs[0]
            length = len(output.prompt_token_ids) + len(first.token_ids) + extra
            if (
                first.finish_reason == "length"
                and len(first.token_ids) >= cap.max_new_tokens
                and (limit is None or length <= limit)
            ):
                runaways.append(i)
        return runaways

    def _answer_inputs(self, outputs: list[Any], runaways: list[int]) -> list[dict[str, list[int]]]:
        """The prompt, the reasoning so far and the answer block's opening, as one token prompt each."""
        return [
            {
                "prompt_token_ids": [
                    *outputs[i].prompt_token_ids,
                    *outputs[i].outputs[0].token_ids,
                    *self._opening_ids,
                ]
            }
            for i in runaways
        ]

    def _force(self, outputs: list[Any], runaways: list[int], answers: list[Any]) -> None:
        for i, answer in zip(runaways, answers):
            if isinstance(answer, BaseException):
                outputs[i] = answer
            else:
                outputs[i] = with_forced_answer(outputs[i], answer, self._opening_ids, self._opening_texts)

    # -- internals ------------------------------------------------------------------------------------

    def _answer_params(self) -> Any:
        """A forced answer's: a few greedy tokens (``engines/forcing.py``)."""
        return self._sampling_params(answer_config())

    def _sampling_params(self, config: GenerationConfig, **extra: Any) -> Any:
        """vLLM's sampling parameters for ``config``; ``extra`` are more of vLLM's own fields."""
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
            **extra,
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
                future.set_result(OfflineBackend(self._build_llm(), owned=True))
            except BaseException as exc:
                self._build_failed(future, exc)
        else:
            backend = AsyncBackend()
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
        error = EngineLoadError(
            f"vLLM could not load the model at {self.path}: {type(exc).__name__}: {exc}. Check the path, the "
            "GPU's free memory (gpu_memory_utilization, max_model_len) and the vLLM options."
        )
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
        from vllm.usage.usage_lib import UsageContext
        from vllm.v1.engine.async_llm import AsyncLLM

        options = self._options()
        options.setdefault("disable_log_stats", True)
        # A server's defaults, not the bare engine's: vLLM sizes max_num_seqs / max_num_batched_tokens by
        # usage context, and ENGINE_CONTEXT gets 128 / 2048, below the offline LLM's (1024 / 16384 on an H200).
        args = AsyncEngineArgs(model=self.path, tokenizer=self.path, **options)
        return AsyncLLM.from_engine_args(args, usage_context=UsageContext.OPENAI_API_SERVER)


def _engine_error(exc: Exception, timeout: float | None) -> Exception:
    """What a vLLM failure raises: a missed deadline as a timeout, else an EngineError."""
    if isinstance(exc, TimeoutError) and timeout is not None:
        return EngineTimeoutError(f"The vllm engine gave no answer within {timeout:g} s.")
    return EngineError(f"vLLM generation failed: {type(exc).__name__}: {exc}")


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
