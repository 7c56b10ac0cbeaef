"""A query engine that GuardReasoner checks on the way in (the query) and out (the answer)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Any

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
from llama_index.postprocessor.guardreasoner._common import Stage, refusal_metadata, text_or_none
from llama_index.postprocessor.guardreasoner._streams import aguard_stream, guard_stream
from llama_index.postprocessor.guardreasoner._tracing import SPANS

from guardreasoner import Verdict
from guardreasoner.guard import GuardReasoner
from guardreasoner.integrations import (
    DEFAULT_STREAM_CHUNK_TOKENS,
    DEFAULT_VIOLATION_MESSAGE,
    ExitBehavior,
    StreamMode,
    is_violation,
)
from guardreasoner.integrations.guarding import GuardedOptions, Guarding


class GuardedQueryEngine(GuardedOptions, BaseQueryEngine):
    """Wrap any :class:`BaseQueryEngine`: judge the query before its answer is used, and the answer.

    >>> engine = GuardedQueryEngine(index.as_query_engine(), guard=guard)  # doctest: +SKIP

    The query is judged alone (as the request); the answer's text is judged as the response to it, so a
    refusal of a harmful query passes on output. A verdict the guard's policy decided blocks under
    ``fail_closed`` and passes under ``fail_open``.

    ``exit_behavior="error"`` (default) raises :class:`~guardreasoner.integrations.GuardReasonerViolation`;
    ``"end"`` and ``"replace"`` both answer ``violation_message`` (a template) in place of the query's answer
    (a query engine has nothing to go on with), with no source nodes and ``metadata["guardreasoner"] =
    {"stage": ..., "verdict": <the full verdict>}``, in the wrapped engine's response type.

    ``parallel_input_check=True`` (default) starts the wrapped engine beside the input check (retrieval
    and the LLM call have no effect a user sees) and holds its answer until the verdict: a flagged query's
    answer is discarded (the async call is cancelled) and a streamed answer is never read.

    Streaming: ``stream_mode="buffered"`` (default) releases the answer in chunks of
    ``stream_chunk_tokens`` tokens, each after the guard judged the answer so far; ``"whole"`` releases it
    once the whole answer is judged; ``"passthrough"`` streams as it comes and judges at the end. On a
    flagged stream the stream ends with the refusal (``end``/``replace``; the response's
    ``metadata["guardreasoner"]`` is set) or raises from the consumer's loop (``error``). ``streaming`` says
    whether input refusals should be streaming responses too; left None, it is read from the wrapped
    engine's response synthesizer. ``retrieve``/``synthesize`` are not offered: they would bypass the guard.

    Each check is a ``GuardReasoner.<stage>`` span of LlamaIndex's instrumentation under the query's span
    (a stream's checks too, as it is read), its verdict in a ``GuardReasonerVerdictEvent``.
    """

    def __init__(
        self,
        query_engine: BaseQueryEngine,
        guard: GuardReasoner | None = None,
        *,
        check_input: bool = True,
        check_output: bool = True,
        exit_behavior: ExitBehavior = "error",
        violation_message: str = DEFAULT_VIOLATION_MESSAGE,
        parallel_input_check: bool = True,
        stream_mode: StreamMode = "buffered",
        stream_chunk_tokens: int = DEFAULT_STREAM_CHUNK_TOKENS,
        streaming: bool | None = None,
        model: str | None = None,
        callback_manager: CallbackManager | None = None,
        **guard_options: Any,
    ):
        if not isinstance(query_engine, BaseQueryEngine):
            raise TypeError(
                f"GuardedQueryEngine wraps a LlamaIndex BaseQueryEngine, got {type(query_engine).__name__}; "
                "wrap a chat engine with GuardedChatEngine and an agent with GuardedAgent."
            )
        self._query_engine = query_engine
        # the query is judged alone
        self._guarding = Guarding.from_arguments(locals(), history_window=0, tracer=SPANS)
        if streaming is None:
            synthesizer = getattr(query_engine, "_response_synthesizer", None)
            streaming = bool(getattr(synthesizer, "_streaming", False))
        self.streaming = streaming
        super().__init__(callback_manager or query_engine.callback_manager)

    def _get_prompt_modules(self) -> PromptMixinType:
        return {"query_engine": self._query_engine}

    # -- query ----------------------------------------------------------------------------------------

    def _query(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        query = query_bundle.query_str
        held = self._guarding.call_checked(
            text_or_none(query), lambda: self._query_engine.query(query_bundle)
        )
        if held.blocked:
            return self._refuse("input", held.verdict, query, None, is_async=False)
        response = held.result
        if not self.check_output or text_or_none(query) is None:
            return response
        if isinstance(response, AsyncStreamingResponse):
            raise TypeError(
                "The wrapped engine returned an async stream from a sync query; call aquery instead."
            )
        if isinstance(response, StreamingResponse):
            return self._guard_stream(query, response)
        text = _text_of(response)
        return self._judge_answer(response, self._guarding.classify("output", query, text) if text else None)

    async def _aquery(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        query = query_bundle.query_str
        held = await self._guarding.acall_checked(
            text_or_none(query), lambda: self._query_engine.aquery(query_bundle)
        )
        if held.blocked:
            return self._refuse("input", held.verdict, query, None, is_async=True)
        response = held.result
        if not self.check_output or text_or_none(query) is None:
            return response
        if isinstance(response, (StreamingResponse, AsyncStreamingResponse)):
            return self._guard_stream(query, response)
        text = _text_of(response)
        verdict = await self._guarding.aclassify("output", query, text) if text else None
        return self._judge_answer(response, verdict)

    # -- answers --------------------------------------------------------------------------------------

    def _judge_answer(self, response: RESPONSE_TYPE, verdict: Verdict | None) -> RESPONSE_TYPE:
        if verdict is not None and is_violation(verdict, judged_on="response"):
            return self._refuse("output", verdict, _text_of(response) or "", response, is_async=False)
        return response

    def _guard_stream(
        self, query: str, response: StreamingResponse | AsyncStreamingResponse
    ) -> StreamingResponse | AsyncStreamingResponse:
        """The same response, its generator replaced by the guarded one. Nothing is read until the consumer
        reads; on a violation under ``end``/``replace`` the response loses its source nodes and gains
        ``metadata["guardreasoner"]``."""

        def mark(verdict: Verdict, _content: str) -> None:
            response.source_nodes = []
            response.metadata = {**(response.metadata or {}), **refusal_metadata(verdict, "output")}

        options = {"text_of": str, "refusal_piece": str, "on_violation": mark}
        is_async = isinstance(response, AsyncStreamingResponse)
        upstream = response.response_gen
        if response.response_txt is not None:  # the wrapped engine already read its stream: judge that text
            upstream = (_async_stream_of if is_async else _stream_of)(
                response.response_txt, [], None
            ).response_gen
        guarded = aguard_stream if is_async else guard_stream
        # the stream's checks are made as it is read, after the query's span ended: under that span still
        response.response_gen = guarded(self._guarding.at_current_step(), query, upstream, **options)
        response.response_txt = None
        return response

    def _refuse(
        self, stage: Stage, verdict: Verdict, content: str, response: RESPONSE_TYPE | None, *, is_async: bool
    ) -> RESPONSE_TYPE:
        text = self._guarding.refuse(verdict, stage, content)
        metadata = refusal_metadata(verdict, stage)
        streams = isinstance(response, (StreamingResponse, AsyncStreamingResponse)) or (
            response is None and self.streaming
        )
        if not streams:
            return Response(text, source_nodes=[], metadata=metadata)
        if isinstance(response, AsyncStreamingResponse) or (response is None and is_async):
            return _async_stream_of(text, [], metadata)
        return _stream_of(text, [], metadata)


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
