"""The ``openai`` engine: any OpenAI-compatible server (vLLM, SGLang, ``transformers serve``...).

Raw-format models (the released GuardReasoner models) go to the Completions API, ``POST /v1/completions``,
with the raw prompt and no chat template; the server's tokenizer adds BOS as it does for any text (vLLM and
``transformers serve`` both do, matching how the models were evaluated). Chat-format models go to
``POST /v1/chat/completions`` as one user message and the server applies its chat template.

One request per prompt (clean token accounting, per-prompt retries), at most ``max_concurrency`` in flight.
Failed requests are retried with exponential backoff and jitter on 408/409/429/5xx, connection errors and
timeouts; anything else (400, 401, 404, 422...) fails at once. When retries run out the engine raises
:class:`~guardreasoner.errors.EngineError` (:class:`EngineTimeoutError` for timeouts) naming the URL, the cause
and what to check.

Serving a released model::

    vllm serve yueliu1999/GuardReasoner-8B            # the model name is the hub id
    GuardReasoner("yueliu1999/GuardReasoner-8B", engine="openai", base_url="http://localhost:8000/v1")
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from guardreasoner.engines.base import Engine, Generation, GenerationConfig
from guardreasoner.errors import ContextLengthError, EngineError, EngineTimeoutError, require
from guardreasoner.prompt import PromptFormat

if TYPE_CHECKING:
    import openai


__all__ = ["DEFAULT_BASE_URL", "EngineTimeoutError", "OpenAIEngine"]

DEFAULT_BASE_URL = "http://localhost:8000/v1"
DEFAULT_TIMEOUT = 300.0
"""Seconds to wait for one answer: 2048 tokens of reasoning from an 8B model on a busy server."""
RETRY_STATUSES = frozenset({408, 409, 429})
"""Retried besides every 5xx."""
MAX_RETRY_AFTER = 60.0
"""The longest ``Retry-After`` the engine honours; a longer one falls back to its own backoff."""


@dataclass
class _LoopState:
    client: Any
    semaphore: asyncio.Semaphore
    owned: bool


@dataclass
class _Failure:
    retryable: bool
    error: EngineError | ContextLengthError
    retry_after: float | None = None


class OpenAIEngine(Engine):
    """Generate through an OpenAI-compatible server.

    Args:
        model: The name the server serves the model under (``vllm serve <name>``; for a server pinned to a
            local directory, that path as given).
        base_url: The API root, ending in ``/v1``. Default: ``$OPENAI_BASE_URL``, else ``http://localhost:8000/v1``.
        api_key: Default: ``$OPENAI_API_KEY``, else ``"EMPTY"`` (what vLLM accepts when started without a key).
        prompt_format: ``raw`` (Completions API, raw prompt) or ``chat`` (Chat Completions API, one user turn).
        max_concurrency: The most requests in flight at once, per event loop for :meth:`agenerate` and per
            engine for :meth:`generate`.
        timeout: Seconds to wait for one answer. Default 300, or the injected client's own timeout.
        request_timeout: Another name for ``timeout``, for when the engine is built by
            ``GuardReasoner(..., engine="openai")``, whose own ``timeout=`` bounds each whole async call.
        max_retries: Retries after the first attempt (0 disables them).
        backoff_base, backoff_max: Retry ``k`` (from 0) waits a random time in ``[d/2, d]`` where
            ``d = min(backoff_max, backoff_base * 2**k)``; a ``Retry-After`` header up to 60 s takes precedence.
        client, async_client: ``openai.OpenAI`` / ``openai.AsyncOpenAI`` clients you built (proxies, headers,
            TLS). Their own retries are turned off in favour of the engine's. When only one is given, the other
            is built with its base URL and key. Injected clients are not closed by :meth:`close`.
        extra_body: Extra JSON fields for every request (e.g. vLLM's ``{"skip_special_tokens": False}``).
            ``transformers serve`` rejects fields it does not know with HTTP 422.
        max_context_tokens: The served model's context window, when you want the guard to check it.
        tokenizer: A tokenizer (or a path or hub id to load one with ``transformers``) for :meth:`count_tokens`.
    """

    name = "openai"

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
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
        self.model = str(model)
        self.prompt_format = PromptFormat(prompt_format)
        self.max_concurrency = int(max_concurrency)
        self.max_retries = int(max_retries)
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.extra_body = dict(extra_body) if extra_body else None
        self.max_context_tokens = max_context_tokens
        self._tokenizer_spec = tokenizer
        self._tokenizer: Any = None

        injected = client if client is not None else async_client
        # An injected client keeps its URL and key unless given here too; then these win.
        overrides: dict[str, Any] = {"max_retries": 0}
        if base_url is not None:
            overrides["base_url"] = base_url
        elif injected is not None:
            base_url = str(injected.base_url)
        else:
            base_url = os.environ.get("OPENAI_BASE_URL")
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        if api_key is not None:
            overrides["api_key"] = api_key
        elif injected is not None:
            api_key = injected.api_key
        else:
            api_key = os.environ.get("OPENAI_API_KEY")
        self._api_key = api_key or "EMPTY"

        if timeout is not None:
            overrides["timeout"] = float(timeout)
        self._sync_client = client.with_options(**overrides) if client is not None else None
        self._owns_sync_client = False
        self._shared_async_client = (
            async_client.with_options(**overrides) if async_client is not None else None
        )
        if timeout is not None:
            self.timeout = float(timeout)
        elif injected is not None:
            self.timeout = _timeout_seconds(injected.timeout)
        else:
            self.timeout = DEFAULT_TIMEOUT
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()
        self._sync_slots = threading.BoundedSemaphore(self.max_concurrency)

    def __repr__(self) -> str:
        return f"OpenAIEngine(model={self.model!r}, base_url={self.base_url!r}, prompt_format={self.prompt_format.value!r})"

    # ------------------------------------------------------------------------------------------------------
    # The Engine interface
    # ------------------------------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The URL generation requests go to."""
        path = "completions" if self.prompt_format is PromptFormat.RAW else "chat/completions"
        return f"{self.base_url}/{path}"

    def generate(self, prompts: list[str], config: GenerationConfig) -> list[Generation]:
        """Generate for every prompt, up to ``max_concurrency`` requests at once, in order.

        Runs in worker threads, so it also works where an event loop is running (a Jupyter cell).
        """
        prompts = list(prompts)
        if not prompts:
            return []
        client = self._get_sync_client()
        if len(prompts) == 1:
            return [self._generate_one_sync(client, prompts[0], config, 0)]
        pool = ThreadPoolExecutor(
            min(self.max_concurrency, len(prompts)), thread_name_prefix="guardreasoner-openai"
        )
        futures = [
            pool.submit(self._generate_one_sync, client, prompt, config, i)
            for i, prompt in enumerate(prompts)
        ]
        try:
            results = [future.result() for future in futures]
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return results

    async def agenerate(self, prompts: list[str], config: GenerationConfig) -> list[Generation]:
        """Generate for every prompt concurrently on the running loop, at most ``max_concurrency`` in flight."""
        prompts = list(prompts)
        if not prompts:
            return []
        state = self._loop_state()
        tasks = [
            asyncio.ensure_future(self._generate_one_async(state, prompt, config, i))
            for i, prompt in enumerate(prompts)
        ]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    def render(self, prompt: str) -> str:
        """The prompt as sent: unchanged (raw models get no template; chat models get the server's)."""
        return prompt

    def count_tokens(self, text: str) -> int | None:
        """Tokens the server will see for ``text`` (BOS included), when a ``tokenizer`` was given; else None.

        For chat-format models the count includes the chat template around ``text`` as the user turn.
        """
        tokenizer = self._get_tokenizer()
        if tokenizer is None:
            return None
        if self.prompt_format is PromptFormat.CHAT and getattr(tokenizer, "chat_template", None):
            ids = tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True
            )
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return len(ids)
        return len(tokenizer(text)["input_ids"])

    def list_models(self) -> list[str]:
        """The model names the server serves (``GET /v1/models``)."""
        return [entry.id for entry in self._get_sync_client().models.list().data]

    def close(self) -> None:
        """Close the HTTP connections the engine opened (clients you injected stay open).

        Async connections belong to their event loop and can only be closed on it: call :meth:`aclose` from
        the loop to close them too; otherwise they are dropped.
        """
        with self._lock:
            client = self._sync_client if self._owns_sync_client else None
            if client is not None:
                self._sync_client, self._owns_sync_client = None, False
            self._loops.clear()
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the async connections of the running loop, then the rest (see :meth:`close`)."""
        state = self._loops.pop(asyncio.get_running_loop(), None)
        if state is not None and state.owned:
            await state.client.close()
        self.close()

    # ------------------------------------------------------------------------------------------------------
    # Clients
    # ------------------------------------------------------------------------------------------------------

    def _client_options(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "api_key": self._api_key,
            "timeout": self.timeout,
            "max_retries": 0,
        }

    def _get_sync_client(self) -> openai.OpenAI:
        with self._lock:
            if self._sync_client is None:
                self._sync_client = self._openai.OpenAI(**self._client_options())
                self._owns_sync_client = True
            return self._sync_client

    def _loop_state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        with self._lock:
            state = self._loops.get(loop)
            if state is None:
                # An httpx async client's connections belong to one loop, so each loop gets its own client.
                if self._shared_async_client is not None:
                    client, owned = self._shared_async_client, False
                else:
                    client, owned = self._openai.AsyncOpenAI(**self._client_options()), True
                state = _LoopState(client, asyncio.Semaphore(self.max_concurrency), owned)
                self._loops[loop] = state
            return state

    # ------------------------------------------------------------------------------------------------------
    # One prompt
    # ------------------------------------------------------------------------------------------------------

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
        return kwargs

    def _create(self, client: Any, kwargs: dict[str, Any]) -> Any:
        if self.prompt_format is PromptFormat.RAW:
            return client.completions.create(**kwargs)
        return client.chat.completions.create(**kwargs)

    def _generate_one_sync(
        self, client: Any, prompt: str, config: GenerationConfig, index: int
    ) -> Generation:
        responses: list[Any] = []
        while _choice_count(responses) < config.n:
            kwargs = self._request_kwargs(
                prompt, config, config.n - _choice_count(responses), _choice_count(responses)
            )
            for attempt in range(self.max_retries + 1):
                try:
                    with self._sync_slots:
                        response = self._create(client, kwargs)
                    break
                except self._openai.OpenAIError as exc:
                    failure = self._classify(exc, attempt + 1, config, index)
                    if failure.retryable and attempt < self.max_retries:
                        time.sleep(self._backoff(attempt, failure.retry_after))
                        continue
                    if _may_be_wrong_model(exc) and isinstance(failure.error, EngineError):
                        failure.error = self._with_models(failure.error, self._try_list_models_sync(client))
                    raise failure.error from exc
            responses.append(self._check_response(response, index))
        return self._to_generation(responses, config.n)

    async def _generate_one_async(
        self, state: _LoopState, prompt: str, config: GenerationConfig, index: int
    ) -> Generation:
        responses: list[Any] = []
        while _choice_count(responses) < config.n:
            kwargs = self._request_kwargs(
                prompt, config, config.n - _choice_count(responses), _choice_count(responses)
            )
            for attempt in range(self.max_retries + 1):
                try:
                    async with state.semaphore:
                        response = await self._acreate(state.client, kwargs)
                    break
                except self._openai.OpenAIError as exc:
                    failure = self._classify(exc, attempt + 1, config, index)
                    if failure.retryable and attempt < self.max_retries:
                        await asyncio.sleep(self._backoff(attempt, failure.retry_after))
                        continue
                    if _may_be_wrong_model(exc) and isinstance(failure.error, EngineError):
                        failure.error = self._with_models(
                            failure.error, await self._try_list_models_async(state.client)
                        )
                    raise failure.error from exc
            responses.append(self._check_response(response, index))
        return self._to_generation(responses, config.n)

    async def _acreate(self, client: Any, kwargs: dict[str, Any]) -> Any:
        if self.prompt_format is PromptFormat.RAW:
            return await client.completions.create(**kwargs)
        return await client.chat.completions.create(**kwargs)

    def _backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry ``attempt`` (0-based): exponential, with jitter in its upper half."""
        if retry_after is not None and 0 <= retry_after <= MAX_RETRY_AFTER:
            return retry_after
        ceiling = min(self.backoff_max, self.backoff_base * (2**attempt))
        return random.uniform(ceiling / 2, ceiling)

    # ------------------------------------------------------------------------------------------------------
    # Responses
    # ------------------------------------------------------------------------------------------------------

    def _check_response(self, response: Any, index: int) -> Any:
        if not getattr(response, "choices", None):
            raise _error(
                EngineError,
                f"{self.endpoint} answered prompt {index} with no choices ({_short(response)}). Is it an "
                "OpenAI-compatible server, and does it serve this API?",
                url=self.endpoint,
                prompt_index=index,
            )
        return response

    def _to_generation(self, responses: list[Any], n: int) -> Generation:
        choices = [choice for response in responses for choice in sorted(response.choices, key=_index)]
        texts = [self._choice_text(choice) for choice in choices][:n]
        usage = getattr(responses[0], "usage", None)
        single = n == 1 and len(responses) == 1 and len(responses[0].choices) == 1
        return Generation(
            text=texts[0],
            finish_reason=choices[0].finish_reason,
            num_generated_tokens=getattr(usage, "completion_tokens", None) if single else None,
            num_prompt_tokens=getattr(usage, "prompt_tokens", None),
            samples=tuple(texts) if n > 1 else (),
        )

    def _choice_text(self, choice: Any) -> str:
        if self.prompt_format is PromptFormat.RAW:
            return choice.text or ""
        message = getattr(choice, "message", None)
        return (getattr(message, "content", None) or "") if message is not None else ""

    # ------------------------------------------------------------------------------------------------------
    # Errors
    # ------------------------------------------------------------------------------------------------------

    def _classify(self, exc: Exception, attempts: int, config: GenerationConfig, index: int) -> _Failure:
        o = self._openai
        url = self.endpoint
        tried = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        common = {"url": url, "attempts": attempts, "prompt_index": index}
        if isinstance(exc, o.APITimeoutError):
            return _Failure(
                True,
                _error(
                    EngineTimeoutError,
                    f"No answer from {url} within {self.timeout:g}s ({tried}). The server may be overloaded or the "
                    f"generation long (max_new_tokens={config.max_new_tokens}): raise timeout= or lower "
                    "max_concurrency=.",
                    **common,
                ),
            )
        if isinstance(exc, o.APIConnectionError):
            cause = exc.__cause__ or exc
            return _Failure(
                True,
                _error(
                    EngineError,
                    f"Could not reach {url} ({type(cause).__name__}: {cause}) after {tried}. Is the server running "
                    f"and is base_url right (it usually ends in /v1)? For example: vllm serve {self.model} --port "
                    f"8000, then base_url='http://localhost:8000/v1'.",
                    **common,
                ),
            )
        if isinstance(exc, o.APIStatusError):
            status = exc.status_code
            detail = _detail(exc)
            retryable = status in RETRY_STATUSES or status >= 500
            if status == 400 and _is_context_error(detail):
                error: Any = ContextLengthError(
                    f"The server at {url} refused the prompt as too long for the model: {detail}. Shorten the "
                    "conversation, lower max_new_tokens, or serve the model with a longer context (vLLM: "
                    "--max-model-len)."
                )
                for key, value in {**common, "status_code": status}.items():
                    setattr(error, key, value)
                return _Failure(False, error)
            hint = _STATUS_HINTS.get(status) or (
                "The server failed; see its log."
                if status >= 500
                else "Check the request options (extra_body=)."
            )
            if status in (400, 404) and _mentions_model(exc):
                hint = (
                    f"Check model='{self.model}': it must be the name the server serves the model under "
                    "(vllm serve <name>, or --served-model-name)."
                )
            elif status == 404:
                hint = f"Check base_url='{self.base_url}' (it usually ends in /v1) and that the server has this API."
            retry_after = _retry_after(exc) if retryable else None
            return _Failure(
                retryable,
                _error(
                    EngineError,
                    f"{url} answered HTTP {status} ({tried}): {detail}. {hint}",
                    status_code=status,
                    **common,
                ),
                retry_after,
            )
        return _Failure(
            False, _error(EngineError, f"Request to {url} failed ({type(exc).__name__}: {exc}).", **common)
        )

    def _with_models(self, error: Any, models: list[str] | None) -> Any:
        """Add the server's model list to a 400/404 error, saying whether ``model`` is among them."""
        if models is None:
            return error
        listing = ", ".join(repr(m) for m in models) or "none"
        message = f"{error} The server at {self.base_url} serves: {listing}."
        if self.model not in models:
            message += f" model='{self.model}' is not among them: pass one of those names as model=."
        enriched = type(error)(message)
        enriched.__dict__.update(error.__dict__)
        enriched.served_models = models
        return enriched

    def _try_list_models_sync(self, client: Any) -> list[str] | None:
        try:
            return [entry.id for entry in client.with_options(timeout=5.0, max_retries=0).models.list().data]
        except Exception:
            return None

    async def _try_list_models_async(self, client: Any) -> list[str] | None:
        try:
            page = await client.with_options(timeout=5.0, max_retries=0).models.list()
            return [entry.id for entry in page.data]
        except Exception:
            return None

    # ------------------------------------------------------------------------------------------------------
    # Tokenizer
    # ------------------------------------------------------------------------------------------------------

    def _get_tokenizer(self) -> Any:
        if self._tokenizer is None and self._tokenizer_spec is not None:
            spec = self._tokenizer_spec
            if isinstance(spec, (str, os.PathLike)):
                transformers = require(
                    "transformers", extra="hf", feature="Counting tokens for the openai engine"
                )
                spec = transformers.AutoTokenizer.from_pretrained(os.fspath(spec))
            self._tokenizer = spec
        return self._tokenizer


_STATUS_HINTS = {
    401: "Check api_key= (or $OPENAI_API_KEY): the server wants the key it was started with (vllm --api-key).",
    403: "Check api_key= (or $OPENAI_API_KEY) and the server's access rules.",
    408: "The server timed out the request.",
    413: "The prompt is too large for the server.",
    422: "The server rejected a request field; drop unsupported extra_body= entries.",
    429: "The server is rate limiting: lower max_concurrency=.",
}


def _error(cls: type[EngineError], message: str, **attributes: Any) -> EngineError:
    error = cls(message)
    error.status_code = None  # type: ignore[attr-defined]
    for key, value in attributes.items():
        setattr(error, key, value)
    return error


def _detail(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            for key in ("message", "detail", "error"):
                if inner.get(key):
                    return _short(inner[key])
        elif inner:
            return _short(inner)
        if body.get("detail"):
            return _short(body["detail"])
    elif body:
        return _short(body)
    response = getattr(exc, "response", None)
    text = getattr(response, "text", "") if response is not None else ""
    return _short(text) if text else str(exc)


def _mentions_model(exc: Any) -> bool:
    detail = _detail(exc).lower()
    return "model" in detail or "pinned" in detail


def _may_be_wrong_model(exc: Any) -> bool:
    """A 400 or 404 may come from a model name the server does not serve: worth listing its models."""
    return getattr(exc, "status_code", None) in (400, 404)


def _is_context_error(detail: str) -> bool:
    lowered = detail.lower()
    return "context length" in lowered or "maximum context" in lowered or "max_model_len" in lowered


def _retry_after(exc: Any) -> float | None:
    response = getattr(exc, "response", None)
    if response is None:
        return None
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _short(value: Any, limit: int = 500) -> str:
    text = str(value).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _index(choice: Any) -> int:
    return getattr(choice, "index", 0) or 0


def _choice_count(responses: list[Any]) -> int:
    return sum(len(response.choices) for response in responses)


def _timeout_seconds(timeout: Any) -> float:
    if isinstance(timeout, (int, float)):
        return float(timeout)
    read = getattr(timeout, "read", None)
    return float(read) if isinstance(read, (int, float)) else DEFAULT_TIMEOUT
