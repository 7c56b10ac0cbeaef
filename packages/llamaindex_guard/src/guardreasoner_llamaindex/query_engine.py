"""A query engine that GuardReasoner checks on the way in (the query) and out (the answer)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Any, Literal

from guardreasoner import Verdict
from guardreasoner.guard import GuardReasoner
from guardreasoner.integrations import GuardProvider, is_violation
from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.response.schema import (
    RESPONSE_TYPE,
    AsyncStreamingResponse,
    PydanticResponse,
    Response,
    StreamingResponse,
)
from llama_index.core.callbacks.base import CallbackManager
from llama_index.core.prompts.mixin import PromptMixinType
from llama_index.core.schema import QueryBundle

from guardreasoner_llamaindex._guard import Stage, text_or_none, verdict_metadata
from guardreasoner_llamaindex.errors import GuardReasonerViolation

OnViolation = Literal["raise", "refuse"]

DEFAULT_REFUSAL = "I'm sorry, but I can't help with that."


class GuardedQueryEngine(BaseQueryEngine):
    """Wrap any :class:`BaseQueryEngine`: judge the query before it runs and the answer after.

    >>> engine = GuardedQueryEngine(index.as_query_engine(), guard=guard)  # doctest: +SKIP

    The query is judged alone (as the request); the answer's text is judged as the response to it, so a
    refusal of a harmful query passes on output. A verdict the guard's policy decided blocks under
    ``fail_closed`` and passes under ``fail_open``.

    ``on_violation="raise"`` (default) raises :class:`~guardreasoner_llamaindex.GuardReasonerViolation`
    (with the verdict); a flagged query never reaches the wrapped engine. ``"refuse"`` returns
    ``refusal_message`` as the answer, with no source nodes and ``metadata["guardreasoner"] = {"stage": ...,
    "verdict": ...}``, in the wrapped engine's response type.

    Streaming: the whole answer is generated and judged before anything is yielded (the stream, if any,
    comes back as a response that yields the judged text at once). ``streaming`` says whether input
    refusals should be streaming responses too; left None, it is read from the wrapped engine's response
    synthesizer when it has one. ``retrieve``/``synthesize`` are not offered: they would bypass the guard.
    """

    def __init__(
        self,
        query_engine: BaseQueryEngine,
        guard: GuardReasoner | None = None,
        *,
        check_input: bool = True,
        check_output: bool = True,
        on_violation: OnViolation = "raise",
        refusal_message: str = DEFAULT_REFUSAL,
        streaming: bool | None = None,
        model: str | None = None,
        callback_manager: CallbackManager | None = None,
        **guard_options: Any,
    ):
        if on_violation not in ("raise", "refuse"):
            raise ValueError(f"on_violation must be 'raise' or 'refuse', got {on_violation!r}.")
        self._query_engine = query_engine
        self._provider = GuardProvider(guard, model, guard_options)
        self.check_input = check_input
        self.check_output = check_output
        self.on_violation = on_violation
        self.refusal_message = refusal_message
        if streaming is None:
            synthesizer = getattr(query_engine, "_response_synthesizer", None)
            streaming = bool(getattr(synthesizer, "_streaming", False))
        self.streaming = streaming
        super().__init__(callback_manager or query_engine.callback_manager)

    @property
    def guard(self) -> GuardReasoner:
        return self._provider.get()

    def _get_prompt_modules(self) -> PromptMixinType:
        return {"query_engine": self._query_engine}

    # -- query ----------------------------------------------------------------------------------------

    def _query(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        query = query_bundle.query_str
        if self.check_input and text_or_none(query) is not None:
            verdict = self.guard.classify(query)
            if is_violation(verdict, judged_on="request"):
                return self._refuse("input", verdict, query, None, is_async=False)
        response = self._query_engine.query(query_bundle)
        if not self.check_output:
            return response
        text, response = _read_sync(response)
        if text is None or text_or_none(query) is None:
            return response
        verdict = self.guard.classify(query, text)
        if is_violation(verdict, judged_on="response"):
            return self._refuse("output", verdict, text, response, is_async=False)
        return response

    async def _aquery(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        query = query_bundle.query_str
        if self.check_input and text_or_none(query) is not None:
            verdict = await self.guard.aclassify(query)
            if is_violation(verdict, judged_on="request"):
                return self._refuse("input", verdict, query, None, is_async=True)
        response = await self._query_engine.aquery(query_bundle)
        if not self.check_output:
            return response
        text, response = await _read_async(response)
        if text is None or text_or_none(query) is None:
            return response
        verdict = await self.guard.aclassify(query, text)
        if is_violation(verdict, judged_on="response"):
            return self._refuse("output", verdict, text, response, is_async=True)
        return response

    def _refuse(
        self, stage: Stage, verdict: Verdict, content: str, response: RESPONSE_TYPE | None, *, is_async: bool
    ) -> RESPONSE_TYPE:
        if self.on_violation == "raise":
            raise GuardReasonerViolation(verdict=verdict, stage=stage, content=content)
        metadata = {"guardreasoner": verdict_metadata(stage, verdict)}
        streams = isinstance(response, (StreamingResponse, AsyncStreamingResponse)) or (
            response is None and self.streaming
        )
        if not streams:
            return Response(self.refusal_message, source_nodes=[], metadata=metadata)
        if isinstance(response, AsyncStreamingResponse) or (response is None and is_async):
            return _async_stream_of(self.refusal_message, [], metadata)
        return _stream_of(self.refusal_message, [], metadata)


def _read_sync(response: RESPONSE_TYPE) -> tuple[str | None, RESPONSE_TYPE]:
    """The answer's text, and a response to return in its place (a consumed stream is rebuilt)."""
    if isinstance(response, StreamingResponse):
        text = response.get_response().response or ""
        return text_or_none(text), _stream_of(text, response.source_nodes, response.metadata)
    if isinstance(response, AsyncStreamingResponse):
        raise TypeError("The wrapped engine returned an async stream from a sync query; call aquery instead.")
    return _text_of(response), response


async def _read_async(response: RESPONSE_TYPE) -> tuple[str | None, RESPONSE_TYPE]:
    if isinstance(response, AsyncStreamingResponse):
        text = (await response.get_response()).response or ""
        return text_or_none(text), _async_stream_of(text, response.source_nodes, response.metadata)
    return _read_sync(response)


def _text_of(response: RESPONSE_TYPE) -> str | None:
    if isinstance(response, PydanticResponse):
        return text_or_none(response.response.model_dump_json() if response.response is not None else None)
    return text_or_none(response.response)


def _stream_of(text: str, source_nodes: list, metadata: dict | None) -> StreamingResponse:
    def once() -> Generator[str, None, None]:
        yield text

    return StreamingResponse(once(), source_nodes=list(source_nodes), metadata=metadata, response_txt=text)


def _async_stream_of(text: str, source_nodes: list, metadata: dict | None) -> AsyncStreamingResponse:
    async def once() -> AsyncGenerator[str, None]:
        yield text

    return AsyncStreamingResponse(
        once(), source_nodes=list(source_nodes), metadata=metadata, response_txt=text
    )
