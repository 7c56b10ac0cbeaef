"""The openai engine: one async request loop per prompt (retries, backoff, deadline, endpoint choice),
run on the caller's event loop or, for synchronous callers, on the engine's own."""

from __future__ import annotations

import asyncio
import os
import random
import threading
import weakref
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from guardreasoner.engines.base import Engine, Generation, GenerationConfig, raise_first_error
from guardreasoner.engines.forcing import PROMPT_ANSWER_OPENING, answer_config, opened
from guardreasoner.engines.openai.clients import BackgroundLoop, LoopClients, client_options
from guardreasoner.engines.openai.endpoints import Endpoint, EndpointPool
from guardreasoner.engines.openai.errors import RequestError, RequestTimeoutError, classify_failure
from guardreasoner.engines.openai.tokens import DEFAULT_MAX_PROMPT_BYTES, TokenCounter
from guardreasoner.errors import require
from guardreasoner.prompt import PromptFormat
from guardreasoner.scores import WITHOUT_TOKENIZER, LabelLogprobs, LabelTokens, from_openai_logprobs

if TYPE_CHECKING:
    import openai

DEFAULT_BASE_URL = "http://localhost:8000/v1"
DEFAULT_TIMEOUT = 300.0
"""Seconds to wait for one answer: 2048 tokens of reasoning from an 8B model on a busy server."""
CONNECTIONS_PER_CLIENT = 64
MAX_RETRY_AFTER = 60.0
"""The longest ``Retry-After`` the engine honours; a longer one falls back to its own backoff."""


@dataclass
class _Answer:
    """One server answer, checked: its choices as (text, finish_reason), its token usage, and the first
    choice's ``logprobs`` as the server returned them (None when it returned none)."""

    choices: list[tuple[str, str | None]]
    prompt_tokens: int | None
    completion_tokens: int | None
    logprobs: Any = None


class OpenAIEngine(Engine):
    """Generate through one or several OpenAI-compatible servers.

    Args:
        model: The name the server serves the model under (``vllm serve <name>``; for a server pinned to a
            local directory, that path as given).
        base_url: The API root, ending in ``/v1``, or a list of them (an endpoint pool: load is spread,
            a failing endpoint is ejected for ``cooldown`` seconds after ``eject_after`` failures in a row,
            and retries go elsewhere). Default: ``$OPENAI_BASE_URL``, else ``http://localhost:8000/v1``.
        api_key: Default: ``$OPENAI_API_KEY``, else ``"EMPTY"`` (what vLLM accepts when started without a key).
        prompt_format: ``raw`` (Completions API, raw prompt) or ``chat`` (Chat Completions API, one user turn).
        max_concurrency: The most requests in flight at once, per event loop for :meth:`agenerate` and per
            engine for :meth:`generate`.
        timeout: Seconds one attempt may take, body included (a server that trickles its answer is cut off).
            Default 300, or the injected client's own timeout. The whole call's deadline is ``timeout=`` of
            :meth:`generate_each` (the guard's ``timeout=``).
        request_timeout: Another name for ``timeout``, for when the engine is built by
            ``GuardReasoner(..., engine="openai")``, whose own ``timeout=`` bounds each whole call.
        max_retries: Retries after the first attempt (0 disables them).
        backoff_base, backoff_max: Retry ``k`` (from 0) waits a random time in ``[d/2, d]`` where
            ``d = min(backoff_max, backoff_base * 2**k)``; a ``Retry-After`` header up to 60 s takes precedence,
            unless it would pass the call's deadline (the request then ends as timed out at once).
        client, async_client: ``openai.OpenAI`` / ``openai.AsyncOpenAI`` clients you built. Requests go
            through ``async_client`` (its own retries turned off); from ``client`` the engine takes the URL,
            key, timeout, headers and query for clients of its own. Injected clients are not closed.
        extra_body: Extra JSON fields for every request (e.g. vLLM's ``{"skip_special_tokens": False}``).
            ``transformers serve`` rejects fields it does not know with HTTP 422.
        max_context_tokens: The served model's context window. Default: what the server's ``/tokenize``
            reports (vLLM), else unknown.
        tokenizer: A tokenizer (or a path or hub id to load one with ``transformers``) for
            :meth:`count_tokens` and the verdict scores (it names the label words' tokens; the Completions API is then asked for
            ``logprobs``). Without one the server's ``/tokenize`` counts, where it has one, and verdicts have
            no scores (``no_tokenizer``).
        max_prompt_bytes: When tokens cannot be counted, prompts over this many UTF-8 bytes are refused
            before sending (:class:`ContextLengthError`). ``None`` lifts the bound.
        eject_after, cooldown: The endpoint pool's circuit breaker (see ``base_url``).
    """

    name = "openai"

    def __init__(
        self,
        *,
        model: str,
        base_url: str | Sequence[str] | None = None,
        api_key: str | None = None,
        prompt_format: PromptFormat | str = PromptFormat.RAW,
        max_concurrency: int = 64,
        timeout: float | None = None,
        request_timeout: float | None = None,
        max_retries: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        client: openai.OpenAI | None = None,
        async_client: openai.AsyncOpenAI | None = None,
        extra_body: dict[str, Any] | None = None,
        max_context_tokens: int | None = None,
        tokenizer: Any = None,
        max_prompt_bytes: int | None = DEFAULT_MAX_PROMPT_BYTES,
        eject_after: int = 3,
        cooldown: float = 10.0,
    ):
        self._openai = require("openai", extra="openai", feature="The openai engine")
        if request_timeout is not None:
            if timeout is not None and timeout != request_timeout:
                raise ValueError("Pass timeout= or request_timeout= (the same setting), not both.")
            timeout = request_timeout
        if not model or not str(model).strip():
            raise ValueError("The openai engine needs model=, the name the server serves the model under.")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, not {max_concurrency}.")
        if max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, not {max_retries}.")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be positive seconds, not {timeout}.")
        if max_prompt_bytes is not None and max_prompt_bytes < 1:
            raise ValueError(f"max_prompt_bytes must be positive or None, not {max_prompt_bytes}.")
        self.model = str(model)
        self.prompt_format = PromptFormat(prompt_format)
        self.max_concurrency = int(max_concurrency)
        self.max_retries = int(max_retries)
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.extra_body = dict(extra_body) if extra_body else None
        self._max_context_tokens = max_context_tokens

        injected = async_client if async_client is not None else client
        if base_url is None:
            base_url = str(injected.base_url) if injected is not None else os.environ.get("OPENAI_BASE_URL")
        urls = (
            [base_url or DEFAULT_BASE_URL]
            if base_url is None or isinstance(base_url, str)
            else list(base_url)
        )
        self.pool = EndpointPool([u.rstrip("/") for u in urls], eject_after=eject_after, cooldown=cooldown)
        if api_key is None:
            api_key = injected.api_key if injected is not None else os.environ.get("OPENAI_API_KEY")
        self._api_key = api_key or "EMPTY"
        if timeout is not None:
            self.timeout = float(timeout)
        elif injected is not None:
            self.timeout = _timeout_seconds(injected.timeout)
        else:
            self.timeout = DEFAULT_TIMEOUT
        self._async_client = None
        if async_client is not None:
            if len(self.pool.endpoints) > 1:
                raise ValueError(
                    "An injected async_client serves one base URL; pass base_url= as a list instead."
                )
            self._async_client = async_client.with_options(
                base_url=self.base_url, api_key=self._api_key, timeout=self.timeout, max_retries=0
            )
        self._client_extras = client_options(injected)
        self._labels: LabelTokens | None = None
        self.tokens = TokenCounter(
            tokenizer,
            prompt_format=self.prompt_format,
            model=self.model,
            root_url=self.base_url.removesuffix("/v1"),
            api_key=self._api_key,
            timeout=self.timeout,
            max_prompt_bytes=max_prompt_bytes,
        )
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopClients] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()
        self._runner = BackgroundLoop("guardreasoner-openai")

    def __repr__(self) -> str:
        urls = [e.base_url for e in self.pool.endpoints]
        where = urls[0] if len(urls) == 1 else urls
        return f"OpenAIEngine(model={self.model!r}, base_url={where!r}, prompt_format={self.prompt_format.value!r})"

    @property
    def base_url(self) -> str:
        """The (first) endpoint's API root."""
        return self.pool.endpoints[0].base_url

    @property
    def endpoint(self) -> str:
        """The URL generation requests go to (on the first endpoint)."""
        return self._url(self.pool.endpoints[0])

    @property
    def max_context_tokens(self) -> int | None:  # type: ignore[override]
        if self._max_context_tokens is not None:
            return self._max_context_tokens
        return self.tokens.server_context()

    def count_tokens(self, text: str) -> int | None:
        """Tokens the server will see for ``text`` (BOS, and for chat models the template, included), when a
        ``tokenizer`` was given or the server counts (``/tokenize``); else None."""
        return self.tokens.count(text)

    # -- generation ------------------------------------------------------------------------------------

    def generate(self, prompts: list[str], config: GenerationConfig) -> list[Generation]:
        """Generate for every prompt, in order; the first failed request raises (see :meth:`generate_each`)."""
        return raise_first_error(self.generate_each(prompts, config))

    async def agenerate(self, prompts: list[str], config: GenerationConfig) -> list[Generation]:
        return raise_first_error(await self.agenerate_each(prompts, config))

    def generate_each(
        self, prompts: list[str], config: GenerationConfig, *, timeout: float | None = None
    ) -> list[Generation]:
        """Synchronous :meth:`agenerate_each`, run on the engine's own event loop (so it also works where a
        loop is running, e.g. a notebook cell)."""
        prompts = list(prompts)
        if not prompts:
            return []
        return self._runner.run(self.agenerate_each(prompts, config, timeout=timeout))

    async def agenerate_each(
        self, prompts: list[str], config: GenerationConfig, *, timeout: float | None = None
    ) -> list[Generation]:
        """One request per prompt, at most ``max_concurrency`` in flight, each ending in its own result.

        A request that fails (after retries) or is still unanswered ``timeout`` seconds after the call began
        comes back as a generation with ``error`` set; the others are unaffected. A prompt that is not valid
        text or is over ``max_prompt_bytes`` raises before anything is sent, as does a server's refusal of a
        prompt as too long (:class:`ContextLengthError`).
        """
        prompts = list(prompts)
        if not prompts:
            return []
        self.tokens.check_sizes(prompts)
        state = self._loop_clients()
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        tasks = [
            asyncio.ensure_future(self._generate_one(state, prompt, config, i, deadline, timeout))
            for i, prompt in enumerate(prompts)
        ]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    def force_answers(self, prompts: list[str], *, timeout: float | None = None) -> list[Generation]:
        """Synchronous :meth:`aforce_answers`, on the engine's own event loop."""
        prompts = list(prompts)
        if not prompts:
            return []
        return self._runner.run(self.aforce_answers(prompts, timeout=timeout))

    async def aforce_answers(self, prompts: list[str], *, timeout: float | None = None) -> list[Generation]:
        """One Completions request per prompt, the raw prompt with the answer opening appended: a few greedy
        tokens, with ``logprobs`` where the engine has a tokenizer (a server that returns none leaves the
        forced answers without scores, and ``reasoning="auto"`` then reasons on every conversation)."""
        forced = [prompt + PROMPT_ANSWER_OPENING for prompt in prompts]
        return [opened(g) for g in await self.agenerate_each(forced, answer_config(), timeout=timeout)]

    def forced_answer_unsupported(self) -> str | None:
        if self.prompt_format is not PromptFormat.RAW:
            return (
                "the openai engine forces answers through the Completions API, which a chat-format model "
                "(prompt_format='chat') is not served on; serve a raw-format model, or use reasoning='always'."
            )
        return None

    def close(self) -> None:
        """Close the HTTP connections the engine opened (clients you injected stay open).

        Async connections belong to their event loop and can only be closed on it: call :meth:`aclose` from
        the loop to close them too; otherwise they are dropped.
        """
        self._runner.stop(self._close_runner_clients())
        with self._lock:
            self._loops.clear()

    async def _close_runner_clients(self) -> None:
        state = self._loops.pop(asyncio.get_running_loop(), None)
        if state is not None:
            await state.aclose()

    async def aclose(self) -> None:
        """Close the async connections of the running loop, then the rest (see :meth:`close`)."""
        state = self._loops.pop(asyncio.get_running_loop(), None)
        if state is not None:
            await state.aclose()
        await asyncio.to_thread(self.close)

    # -- one prompt ------------------------------------------------------------------------------------

    async def _generate_one(
        self,
        state: LoopClients,
        prompt: str,
        config: GenerationConfig,
        index: int,
        deadline: float | None,
        timeout: float | None,
    ) -> Generation:
        try:
            async with asyncio.timeout_at(deadline) if deadline is not None else nullcontext():
                answers: list[_Answer] = []
                while (have := sum(len(a.choices) for a in answers)) < config.n:
                    kwargs = self._request_kwargs(prompt, config, config.n - have, have)
                    answers.append(await self._request(state, kwargs, index, deadline))
        except TimeoutError:
            message = (
                f"No answer for prompt {index} within the call's deadline of {timeout:g} s (connection, "
                "retries and backoff included); a late answer is discarded. Raise the guard's timeout= or "
                "lower max_new_tokens=."
            )
            return Generation.failed(RequestTimeoutError(message, url=self.endpoint, prompt_index=index))
        except RequestError as exc:
            return Generation.failed(exc)
        return _to_generation(answers, config.n, self._label_logprobs(answers[0]))

    async def _request(
        self, state: LoopClients, kwargs: dict[str, Any], index: int, deadline: float | None
    ) -> _Answer:
        """One answer, retried on another endpoint where there is one; raises the last failure typed."""
        loop = asyncio.get_running_loop()
        avoid: Endpoint | None = None
        for attempt in range(1, self.max_retries + 2):
            async with state.semaphore:
                endpoint = self.pool.acquire(avoid)
                client = self._client(state, endpoint)
                try:
                    response = await asyncio.wait_for(self._create(client, kwargs), self.timeout)
                    answer = self._check(response)
                except Exception as exc:
                    cause = exc
                    failure = classify_failure(
                        exc,
                        openai=self._openai,
                        url=self._url(endpoint),
                        model=self.model,
                        attempts=attempt,
                        index=index,
                        timeout=self.timeout,
                    )
                    self.pool.release(
                        endpoint, ok=False, fault=failure.error if failure.endpoint_fault else None
                    )
                else:
                    self.pool.release(endpoint, ok=True)
                    return answer
            if not failure.retryable or attempt > self.max_retries:
                error = failure.error
                if failure.may_be_wrong_model and isinstance(error, RequestError):
                    models = await self._served_models(client)
                    if models is not None:
                        error = error.with_served_models(models, self.model)
                raise error from cause
            wait = self._backoff(attempt - 1, failure.retry_after)
            if deadline is not None and loop.time() + wait >= deadline:
                raise RequestTimeoutError(
                    f"{failure.error} The next retry would wait {wait:g} s, past the call's deadline: given up.",
                    url=self._url(endpoint),
                    attempts=attempt,
                    prompt_index=index,
                ) from cause
            avoid = endpoint
            await asyncio.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _request_kwargs(
        self, prompt: str, config: GenerationConfig, n: int, sample_offset: int
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "max_tokens": config.max_new_tokens,
            "temperature": config.temperature,
            "top_p": config.top_p,
        }
        if self.prompt_format is PromptFormat.RAW:
            kwargs["prompt"] = prompt
        else:
            kwargs["messages"] = [{"role": "user", "content": prompt}]
        if n > 1:
            kwargs["n"] = n
        if config.seed is not None:
            kwargs["seed"] = config.seed + sample_offset
        if self.extra_body:
            kwargs["extra_body"] = self.extra_body
        if self.prompt_format is PromptFormat.RAW and (labels := self._label_tokens()) is not None:
            kwargs["logprobs"] = labels.top_k
        return kwargs

    def _label_tokens(self) -> LabelTokens | None:
        """The label words' tokens, from ``tokenizer=``; None without one (verdicts say ``no_tokenizer``)."""
        if self._labels is None and (tokenizer := self.tokens.tokenizer()) is not None:
            self._labels = LabelTokens.from_tokenizer(tokenizer)
        return self._labels

    def _label_logprobs(self, answer: _Answer) -> LabelLogprobs | None:
        """What scoring needs from the first choice: the Completions API's ``logprobs`` (the chat API is not
        asked for them, so its verdicts say ``no_logprobs``)."""
        if self.prompt_format is not PromptFormat.RAW:
            return None
        labels = self._label_tokens()
        if labels is None:
            return WITHOUT_TOKENIZER
        return from_openai_logprobs(answer.logprobs, answer.choices[0][0], labels, labels.top_k)

    async def _create(self, client: Any, kwargs: dict[str, Any]) -> Any:
        if self.prompt_format is PromptFormat.RAW:
            return await client.completions.create(**kwargs)
        return await client.chat.completions.create(**kwargs)

    def _check(self, response: Any) -> _Answer:
        """The answer's choices and usage, or a ``ValueError`` saying what an OpenAI answer would have had."""
        choices = getattr(response, "choices", None)
        if not isinstance(choices, list) or not choices:
            raise ValueError(f"no list of choices in the answer: {response!r:.200}")
        checked = []
        choices = sorted(choices, key=lambda c: getattr(c, "index", 0) or 0)
        for choice in choices:
            if self.prompt_format is PromptFormat.RAW:
                text = getattr(choice, "text", None)
            else:
                text = getattr(getattr(choice, "message", None), "content", None)
            finish = getattr(choice, "finish_reason", None)
            if not isinstance(text, (str, type(None))) or not isinstance(finish, (str, type(None))):
                raise ValueError(f"a choice without text and finish_reason strings: {choice!r:.200}")
            checked.append((text or "", finish))
        usage = getattr(response, "usage", None)
        return _Answer(
            checked,
            _count(usage, "prompt_tokens"),
            _count(usage, "completion_tokens"),
            getattr(choices[0], "logprobs", None),
        )

    def _backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry ``attempt`` (0-based): exponential, with jitter in its upper half."""
        if retry_after is not None and 0 <= retry_after <= MAX_RETRY_AFTER:
            return retry_after
        ceiling = min(self.backoff_max, self.backoff_base * (2**attempt))
        return random.uniform(ceiling / 2, ceiling)

    async def _served_models(self, client: Any) -> list[str] | None:
        try:
            page = await asyncio.wait_for(client.with_options(max_retries=0).models.list(), 5.0)
            return [entry.id for entry in page.data]
        except Exception:
            return None

    # -- clients ---------------------------------------------------------------------------------------

    def _url(self, endpoint: Endpoint) -> str:
        path = "completions" if self.prompt_format is PromptFormat.RAW else "chat/completions"
        return f"{endpoint.base_url}/{path}"

    def _loop_clients(self) -> LoopClients:
        loop = asyncio.get_running_loop()
        with self._lock:
            state = self._loops.get(loop)
            if state is None:
                state = self._loops[loop] = LoopClients(asyncio.Semaphore(self.max_concurrency))
            return state

    def _client(self, state: LoopClients, endpoint: Endpoint) -> Any:
        """An async client for ``endpoint`` on this loop: one per ``CONNECTIONS_PER_CLIENT`` concurrent
        requests, taken in turn, since an HTTP connection pool scans all its connections on every request."""
        if self._async_client is not None:
            return self._async_client
        shards = -(-self.max_concurrency // CONNECTIONS_PER_CLIENT)
        key = (endpoint.base_url, next(state.turn) % shards)
        client = state.clients.get(key)
        if client is None:
            client = state.clients[key] = self._openai.AsyncOpenAI(
                base_url=endpoint.base_url,
                api_key=self._api_key,
                timeout=self.timeout,
                max_retries=0,
                **self._client_extras,
            )
        return client


def _to_generation(answers: list[_Answer], n: int, label_logprobs: LabelLogprobs | None) -> Generation:
    choices = [choice for answer in answers for choice in answer.choices][:n]
    single = n == 1 and len(answers) == 1 and len(answers[0].choices) == 1
    return Generation(
        text=choices[0][0],
        finish_reason=choices[0][1],
        num_generated_tokens=answers[0].completion_tokens if single else None,
        num_prompt_tokens=answers[0].prompt_tokens,
        samples=tuple(text for text, _ in choices) if n > 1 else (),
        label_logprobs=label_logprobs,
    )


def _count(usage: Any, name: str) -> int | None:
    value = getattr(usage, name, None)
    return value if isinstance(value, int) else None


def _timeout_seconds(timeout: Any) -> float:
    if isinstance(timeout, (int, float)):
        return float(timeout)
    read = getattr(timeout, "read", None)
    return float(read) if isinstance(read, (int, float)) else DEFAULT_TIMEOUT
