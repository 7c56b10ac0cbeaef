"""``guard_chain``: wrap any Runnable so its input is judged before (or beside) it runs, and its output after
(or, streamed, chunk by chunk before each chunk is released)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from typing import Any

from guardreasoner import InvalidInputError, Verdict
from guardreasoner.guard import GuardReasoner
from guardreasoner.integrations import (
    DEFAULT_HISTORY_TURNS,
    DEFAULT_STREAM_CHUNK_TOKENS,
    DEFAULT_VIOLATION_MESSAGE,
    AReadAhead,
    ExitBehavior,
    GuardedOptions,
    Guarding,
    GuardReasonerViolation,
    ReadAhead,
    StreamMode,
    is_violation,
)
from langchain_core.messages import BaseMessage, BaseMessageChunk
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import patch_config

from langchain_guardreasoner._messages import Stage, conversation_of, message_text
from langchain_guardreasoner._stop_switch import StopSwitch
from langchain_guardreasoner._tracing import RUNS
from langchain_guardreasoner._violation import refusal_chunk, with_refusal


class GuardedRunnable(GuardedOptions, Runnable[Any, Any]):
    """A Runnable whose input and output GuardReasoner judges; build it with :func:`guard_chain`."""

    def __init__(self, chain: Runnable[Any, Any], guarding: Guarding, *, input_key: str | None):
        self.chain = chain
        self._guarding = guarding
        self.input_key = input_key
        self.name = f"Guarded{chain.get_name()}"

    # -- invoke ---------------------------------------------------------------------------------------

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self._call_with_config(self._run, input, config, **kwargs)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return await self._acall_with_config(self._arun, input, config, **kwargs)

    def _run(self, value: Any, run_manager: Any, config: RunnableConfig, **kwargs: Any) -> Any:
        request = self._request(value)
        child = patch_config(config, callbacks=run_manager.get_child())
        held = self._guarding.call_checked(request, lambda: self.chain.invoke(value, child, **kwargs))
        if held.blocked:
            return self._refusal(held.verdict, "input", request, None)
        output = held.result
        if self.check_output and (response := self._response(output)) is not None:
            verdict = self._guarding.classify("output", request, response)
            if _blocks_response(verdict):
                return self._refusal(verdict, "output", response, output)
        return output

    async def _arun(self, value: Any, run_manager: Any, config: RunnableConfig, **kwargs: Any) -> Any:
        request = self._request(value)
        child = patch_config(config, callbacks=run_manager.get_child())
        held = await self._guarding.acall_checked(request, lambda: self.chain.ainvoke(value, child, **kwargs))
        if held.blocked:
            return self._refusal(held.verdict, "input", request, None)
        output = held.result
        if self.check_output and (response := self._response(output)) is not None:
            verdict = await self._guarding.aclassify("output", request, response)
            if _blocks_response(verdict):
                return self._refusal(verdict, "output", response, output)
        return output

    # -- stream ---------------------------------------------------------------------------------------

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        yield from self._transform_stream_with_config(iter([input]), self._stream, config, **kwargs)

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        async def one() -> AsyncIterator[Any]:
            yield input

        async for chunk in self._atransform_stream_with_config(one(), self._astream, config, **kwargs):
            yield chunk

    def _stream(
        self, inputs: Iterator[Any], run_manager: Any, config: RunnableConfig, **kwargs: Any
    ) -> Iterator[Any]:
        value = next(inputs)
        request = self._request(value)
        switch = StopSwitch()
        child = patch_config(config, callbacks=switch.joined(run_manager.get_child()))

        def open_stream() -> Iterator[Any]:
            return self.chain.stream(value, child, **kwargs)

        ahead = None  # the stream, read in a worker thread, held until released
        if self.check_input:
            if self.parallel_input_check:
                ahead = ReadAhead(open_stream, on_stop=switch.stop)
            try:
                verdict = self._guarding.classify("input", request)
            except BaseException:
                if ahead is not None:
                    ahead.close()
                raise
            if _blocks_request(verdict):
                if ahead is not None:
                    ahead.close()
                yield self._refusal(verdict, "input", request, None)
                return
        if ahead is None and self.check_output and self.stream_mode != "passthrough":
            ahead = ReadAhead(open_stream, on_stop=switch.stop)
        upstream: Iterable[Any] = ahead if ahead is not None else switch.stoppable(open_stream())
        if not self.check_output:
            yield from upstream
            return
        reader = _ChunkReader()
        if self.stream_mode == "passthrough":
            text = ""
            for chunk in upstream:
                text += reader(chunk)
                yield chunk
            if text.strip() and _blocks_response(verdict := self._guarding.classify("output", request, text)):
                yield self._stream_refusal(_output_violation(verdict, text), reader.messages)
            return
        try:
            yield from self._guarding.moderator(request, reader).moderate(upstream)
        except GuardReasonerViolation as violation:
            yield self._stream_refusal(violation, reader.messages)

    async def _astream(
        self, inputs: AsyncIterator[Any], run_manager: Any, config: RunnableConfig, **kwargs: Any
    ) -> AsyncIterator[Any]:
        value = await anext(inputs)
        request = self._request(value)
        switch = StopSwitch()
        child = patch_config(config, callbacks=switch.joined(run_manager.get_child()))
        ahead = None  # the stream, read by a task, held until released
        if self.check_input:
            if self.parallel_input_check:
                ahead = AReadAhead(self.chain.astream(value, child, **kwargs), on_stop=switch.stop)
            try:
                verdict = await self._guarding.aclassify("input", request)
            except BaseException:
                if ahead is not None:
                    await ahead.aclose()
                raise
            if _blocks_request(verdict):
                if ahead is not None:
                    await ahead.aclose()
                yield self._refusal(verdict, "input", request, None)
                return
        if ahead is None and self.check_output and self.stream_mode != "passthrough":
            ahead = AReadAhead(self.chain.astream(value, child, **kwargs), on_stop=switch.stop)
        upstream: AsyncIterable[Any] = (
            ahead if ahead is not None else switch.astoppable(self.chain.astream(value, child, **kwargs))
        )
        if not self.check_output:
            async for chunk in upstream:
                yield chunk
            return
        reader = _ChunkReader()
        if self.stream_mode == "passthrough":
            text = ""
            async for chunk in upstream:
                text += reader(chunk)
                yield chunk
            if text.strip() and _blocks_response(
                verdict := await self._guarding.aclassify("output", request, text)
            ):
                yield self._stream_refusal(_output_violation(verdict, text), reader.messages)
            return
        try:
            async for chunk in self._guarding.moderator(request, reader).amoderate(upstream):
                yield chunk
        except GuardReasonerViolation as violation:
            yield self._stream_refusal(violation, reader.messages)

    # -- reading and refusing -------------------------------------------------------------------------

    def _request(self, value: Any) -> str:
        if isinstance(value, Mapping) and "prompt" not in value and "messages" not in value:
            if self.input_key is not None:
                if self.input_key not in value:
                    raise InvalidInputError(f"The chain's input has no {self.input_key!r} key (input_key).")
                value = value[self.input_key]
            else:
                texts = [v for v in value.values() if isinstance(v, str)]
                if len(texts) != 1:
                    raise InvalidInputError(
                        f"Cannot tell which key of the chain's input {sorted(value)} is the user's request: "
                        "pass input_key= to guard_chain."
                    )
                value = texts[0]
        return conversation_of(value, history_window=self.history_window)[0]

    @staticmethod
    def _response(output: Any) -> str | None:
        if isinstance(output, (str, BaseMessage)):
            return message_text(output)
        raise InvalidInputError(
            f"guard_chain can judge a chain's output when it is a str or a message, not a "
            f"{type(output).__name__}: end the chain with a StrOutputParser, or pass check_output=False."
        )

    def _refusal(self, verdict: Verdict, stage: Stage, content: str, output: Any) -> Any:
        """Raise, or the refusal in the output's form: a copy of a message output with the verdict in its
        metadata, else a str (always for a flagged input, since the chain did not run)."""
        text = self._guarding.refuse(verdict, stage, content)
        if isinstance(output, BaseMessage):
            return with_refusal(output, text, verdict, stage)
        return text

    def _stream_refusal(self, violation: GuardReasonerViolation, messages: bool) -> Any:
        """The stream's last chunk after a harmful one: raise, or the refusal (an ``AIMessageChunk`` with
        the verdict in its metadata when the stream is of message chunks, else a str)."""
        text = self._guarding.refuse(violation.verdict, "output", violation.content)
        return refusal_chunk(text, violation.verdict, "output") if messages else text


class _ChunkReader:
    """A streamed chunk's text for the moderator; remembers whether the stream is of message chunks."""

    messages = False

    def __call__(self, chunk: Any) -> str:
        if isinstance(chunk, str):
            return chunk
        if isinstance(chunk, BaseMessageChunk):
            self.messages = True
            return str(chunk.text)
        raise InvalidInputError(
            f"guard_chain can moderate a stream of str or message chunks, not {type(chunk).__name__}: end "
            "the chain with a StrOutputParser, or pass check_output=False."
        )


def _output_violation(verdict: Verdict, text: str) -> GuardReasonerViolation:
    return GuardReasonerViolation(verdict=verdict, stage="output", content=text)


def _blocks_request(verdict: Verdict) -> bool:
    return is_violation(verdict, judged_on="request")


def _blocks_response(verdict: Verdict) -> bool:
    return is_violation(verdict, judged_on="response")


def guard_chain(
    chain: Runnable[Any, Any],
    guard: GuardReasoner | None = None,
    *,
    check_input: bool = True,
    check_output: bool = True,
    exit_behavior: ExitBehavior = "error",
    violation_message: str = DEFAULT_VIOLATION_MESSAGE,
    input_key: str | None = None,
    parallel_input_check: bool = False,
    stream_mode: StreamMode = "buffered",
    stream_chunk_tokens: int = DEFAULT_STREAM_CHUNK_TOKENS,
    history_window: int = DEFAULT_HISTORY_TURNS,
    model: str | None = None,
    **guard_options: Any,
) -> GuardedRunnable:
    """Wrap ``chain``: judge its input before it runs and its output (as the response) after.

    >>> safe_chain = guard_chain(prompt | llm | StrOutputParser(), guard)  # doctest: +SKIP

    The request is read from the chain's input: a str, messages or PromptValue (the last human message, with
    ``history_window`` earlier turns folded in), ``{"prompt": ...}``, or a mapping whose ``input_key`` (or
    only str value) holds it. The output must be a str or a message (its text parts joined), or, streamed,
    str or message chunks. A flagged input stops the chain before it runs.

    - ``exit_behavior``: ``"error"`` raises :class:`~guardreasoner.integrations.GuardReasonerViolation` (with
      the verdict); ``"replace"`` returns the refusal instead: a copy of the output message with the verdict
      in ``response_metadata["guardreasoner"]`` when the chain returned a message, else (and always for a
      flagged input, since the chain did not run) the refusal str.
    - ``violation_message``: the refusal, a template (``{stage}``, ``{labels}``, ``{decided_by}``,
      ``{parse_status}``).
    - ``parallel_input_check`` (default False): run the chain beside the input check and hold its output (or
      its stream) until the verdict; dropped unseen when the input is harmful (async runs are cancelled,
      a sync stream is closed). Turn it on only for chains with no side effects of their own (a prompt, a
      model, a parser), since the chain does run on a harmful input.
    - ``stream_mode`` for ``stream``/``astream``: ``"buffered"`` (default) holds the chunks and releases them
      every ``stream_chunk_tokens`` tokens once the guard judged the response so far safe; ``"whole"``
      releases them after the whole response is judged. In both nothing is released before it is judged; on
      a harmful chunk the upstream stream is closed and the stream ends with the refusal (a str, or an
      ``AIMessageChunk`` with the verdict in its metadata), or raises under ``"error"``. ``"passthrough"``
      yields chunks as they come and judges the whole response at the end (the consumer may already have
      seen harmful text; the refusal or error follows it).

    Policy-decided verdicts follow the guard's policy (fail closed blocks). ``batch`` runs ``invoke`` per
    input; use :class:`GuardReasonerRunnable` in the chain for one batched guard call. Callbacks and
    ``astream_events`` observe the inner chain's runs as they happen, before the verdict: read the guarded
    chain's output, not the inner events, for judged content. Each check (a stream's too, numbered by
    ``chunk``) is a child run named ``GuardReasoner`` of the guarded run, beside the inner chain's run.
    """
    # a chain has no turn to end: it raises or replaces
    guarding = Guarding.from_arguments(locals(), exit_behaviors=("error", "replace"), tracer=RUNS)
    return GuardedRunnable(chain, guarding, input_key=input_key)
