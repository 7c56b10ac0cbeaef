"""The openai engine's errors, as typed classes, and the mapping from a failed request to one of them.

Every failure of a request (an HTTP error, a dropped connection, a timeout, an answer that is not the JSON
of an OpenAI-compatible server) becomes a :class:`RequestError` that names the URL, how often it was tried
and what to check; :func:`classify_failure` also says whether the request is worth retrying.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from guardreasoner.errors import ContextLengthError, EngineError, EngineTimeoutError

RETRY_STATUSES = frozenset({408, 409, 429})
"""Retried besides every 5xx."""

_STATUS_HINTS = {
    401: "Check api_key= (or $OPENAI_API_KEY): the server wants the key it was started with (vllm --api-key).",
    403: "Check api_key= (or $OPENAI_API_KEY) and the server's access rules.",
    408: "The server timed out the request.",
    413: "The prompt is too large for the server.",
    422: "The server rejected a request field; drop unsupported extra_body= entries.",
    429: "The server is rate limiting: lower max_concurrency=.",
}


class RequestError(EngineError):
    """A request to an OpenAI-compatible server failed (after ``attempts`` tries)."""

    def __init__(
        self,
        message: str,
        *,
        url: str,
        attempts: int = 1,
        prompt_index: int | None = None,
        status_code: int | None = None,
        served_models: list[str] | None = None,
    ):
        super().__init__(message)
        self.url = url
        self.attempts = attempts
        self.prompt_index = prompt_index
        self.status_code = status_code
        self.served_models = served_models

    def with_served_models(self, models: list[str], model: str) -> RequestError:
        """The same error, saying which models the server serves and whether ``model`` is among them."""
        listing = ", ".join(repr(m) for m in models) or "none"
        message = f"{self} The server serves: {listing}."
        if model not in models:
            message += f" model='{model}' is not among them: pass one of those names as model=."
        return type(self)(
            message,
            url=self.url,
            attempts=self.attempts,
            prompt_index=self.prompt_index,
            status_code=self.status_code,
            served_models=models,
        )


class RequestTimeoutError(RequestError, EngineTimeoutError):
    """No complete answer within the time allowed (one attempt's ``timeout`` or the call's deadline)."""


class MalformedResponseError(RequestError):
    """The server answered, but not with what an OpenAI-compatible server sends (HTML, bad JSON, wrong shape)."""


class ServerContextLengthError(ContextLengthError):
    """The server refused the prompt as longer than the model's context."""

    def __init__(
        self, message: str, *, url: str, status_code: int | None = None, prompt_index: int | None = None
    ):
        super().__init__(message)
        self.url = url
        self.status_code = status_code
        self.prompt_index = prompt_index
        self.attempts = 1


@dataclass
class Failure:
    """What went wrong with one attempt, and what to do about it."""

    error: RequestError | ServerContextLengthError
    retryable: bool
    endpoint_fault: bool
    """The endpoint itself misbehaved (down, slow, 5xx, garbage): counts towards ejecting it from the pool."""
    retry_after: float | None = None
    may_be_wrong_model: bool = False


def classify_failure(
    exc: BaseException, *, openai: Any, url: str, model: str, attempts: int, index: int, timeout: float
) -> Failure:
    """Turn the exception one attempt raised into a typed error and a retry decision."""
    tried = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    where = {"url": url, "attempts": attempts, "prompt_index": index}
    if isinstance(exc, (TimeoutError, openai.APITimeoutError)):
        message = (
            f"No complete answer from {url} within {timeout:g}s ({tried}). The server may be overloaded or the "
            "generation long: raise timeout= or lower max_new_tokens= or max_concurrency=."
        )
        return Failure(RequestTimeoutError(message, **where), retryable=True, endpoint_fault=True)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        message = (
            f"Could not reach {url} ({type(cause).__name__}: {cause}) after {tried}. Is the server running "
            f"and is base_url right (it usually ends in /v1)? For example: vllm serve {model} --port 8000, "
            "then base_url='http://localhost:8000/v1'."
        )
        return Failure(RequestError(message, **where), retryable=True, endpoint_fault=True)
    if isinstance(exc, openai.APIStatusError):
        return _status_failure(exc, url=url, model=model, tried=tried, where=where)
    # A 200 whose body is not an OpenAI answer: invalid JSON, HTML from a proxy, fields of the wrong type.
    message = (
        f"{url} answered with something that is not an OpenAI-compatible completion ({type(exc).__name__}: "
        f"{short(exc)}) after {tried}. Is base_url an OpenAI-compatible server (not a proxy's error page)?"
    )
    return Failure(MalformedResponseError(message, **where), retryable=True, endpoint_fault=True)


def _status_failure(exc: Any, *, url: str, model: str, tried: str, where: dict[str, Any]) -> Failure:
    status = exc.status_code
    detail = _detail(exc)
    if status == 400 and _is_context_error(detail):
        message = (
            f"The server at {url} refused the prompt as too long for the model: {detail}. Shorten the "
            "conversation, lower max_new_tokens, or serve the model with a longer context (vLLM: --max-model-len)."
        )
        error = ServerContextLengthError(
            message, url=url, status_code=status, prompt_index=where["prompt_index"]
        )
        return Failure(error, retryable=False, endpoint_fault=False)
    retryable = status in RETRY_STATUSES or status >= 500
    hint = _STATUS_HINTS.get(status) or (
        "The server failed; see its log." if status >= 500 else "Check the request options (extra_body=)."
    )
    if status in (400, 404) and any(word in detail.lower() for word in ("model", "pinned")):
        hint = (
            f"Check model='{model}': it must be the name the server serves the model under "
            "(vllm serve <name>, or --served-model-name)."
        )
    elif status == 404:
        base_url = url.rsplit("/", 1)[0].removesuffix("/chat")
        hint = f"Check base_url='{base_url}' (it usually ends in /v1) and that the server has this API."
    error = RequestError(
        f"{url} answered HTTP {status} ({tried}): {detail}. {hint}", status_code=status, **where
    )
    return Failure(
        error,
        retryable=retryable,
        endpoint_fault=status >= 500,
        retry_after=_retry_after(exc) if retryable else None,
        may_be_wrong_model=status in (400, 404),
    )


def _detail(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            for key in ("message", "detail", "error"):
                if inner.get(key):
                    return short(inner[key])
        elif inner:
            return short(inner)
        if body.get("detail"):
            return short(body["detail"])
    elif body:
        return short(body)
    response = getattr(exc, "response", None)
    text = getattr(response, "text", "") if response is not None else ""
    return short(text) if text else str(exc)


def _is_context_error(detail: str) -> bool:
    lowered = detail.lower()
    return "context length" in lowered or "maximum context" in lowered or "max_model_len" in lowered


def _retry_after(exc: Any) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def short(value: Any, limit: int = 500) -> str:
    text = str(value).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."
