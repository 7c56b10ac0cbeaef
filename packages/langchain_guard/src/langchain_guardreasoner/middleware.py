"""Agent middleware for ``langchain.agents.create_agent``: GuardReasoner around every model call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from guardreasoner import Verdict
from guardreasoner.guard import GuardReasoner
from guardreasoner.integrations import (
    DEFAULT_HISTORY_TURNS,
    DEFAULT_STREAM_CHUNK_TOKENS,
    DEFAULT_VIOLATION_MESSAGE,
    Check,
    ExitBehavior,
    GuardedOptions,
    Guarding,
    StreamMode,
    arun_beside_check,
    is_violation,
    run_beside_check,
)
from langchain.agents.middleware.types import (
    AgentMiddleware,
    AgentState,
    ExtendedModelResponse,
    ModelRequest,
    ModelResponse,
)
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables.config import ensure_config, var_child_runnable_config
from langgraph.constants import TAG_NOSTREAM
from langgraph.types import Command

from langchain_guardreasoner._agent_stream import StreamedModelCall
from langchain_guardreasoner._messages import Stage, last_index, message_text, messages_conversation
from langchain_guardreasoner._tracing import RUNS
from langchain_guardreasoner._violation import refusal_message, with_refusal


@dataclass(frozen=True)
class _Check:
    index: int
    """Where the judged message is in the request's messages (-1: the model's new message)."""
    stage: Stage
    prompt: str
    response: str | None

    @property
    def content(self) -> str:
        return self.prompt if self.response is None else self.response

    def blocks(self, verdict: Verdict) -> bool:
        return is_violation(verdict, judged_on="request" if self.response is None else "response")


class GuardReasonerMiddleware(GuardedOptions, AgentMiddleware[AgentState[Any], Any]):
    """Guard an agent's model calls with GuardReasoner, in the shape of LangChain's moderation middleware.

    >>> agent = create_agent(model, tools, middleware=[GuardReasonerMiddleware(guard=guard)])  # doctest: +SKIP

    Everything happens in ``wrap_model_call``/``awrap_model_call``, around each model call, so nothing the
    model produced reaches the agent's state, its tools or its stream before the verdict. What is judged (one
    ``classify_batch`` per check):

    - ``check_input``: the last human message, once per turn (when no AI message follows it yet; later model
      calls in the same turn, after tools, do not re-judge it), with ``history_window`` earlier human/AI
      turns folded in ahead of it (:func:`guardreasoner.integrations.fold_history`; 0: the request alone).
    - ``check_tool_results`` (off by default): each tool result since the last AI message, as the response to
      the turn's request.
    - ``check_output``: the model's new AI message's text, as the response to the turn's request (a refusal of
      a harmful request passes). An AI message with no text (tool calls only) is not judged.

    ``parallel_input_check`` (default True): the model call starts beside the input checks and its result is
    held until their verdict, so a benign turn waits max(check, model) instead of their sum. On a harmful
    verdict the result is dropped before anything sees it: no tool runs, no token is streamed. The model call
    does run (its cost is spent, tracing sees it); async agents cancel it, sync ones let it finish in a
    background thread. False: the model is called only after a safe verdict.

    ``exit_behavior`` on a violation:

    - ``"end"`` (default): the model's answer is an AI message saying ``violation_message`` (no tool calls),
      so the run ends with it; a flagged AI message never enters the state.
    - ``"error"``: raise :class:`~guardreasoner.integrations.GuardReasonerViolation` (with the verdict).
    - ``"replace"``: the flagged message says ``violation_message`` instead and the run goes on: a flagged
      request or tool result is replaced in the state and the model answers the placeholder; a flagged AI
      message keeps its tool calls.

    The refusal (or replaced message) carries ``{"stage": ..., "verdict": <the full verdict>}`` under
    ``response_metadata["guardreasoner"]`` (``additional_kwargs`` for human and tool messages).
    ``violation_message`` is a template: ``{stage}``, ``{labels}``, ``{decided_by}``, ``{parse_status}``.

    ``stream_mode``, for an agent streamed with ``stream_mode="messages"`` or ``astream_events`` (an agent
    nobody streams is judged once per message, whole): the model's own tokens are held, and released once
    the input is judged safe (:mod:`langchain_guardreasoner._agent_stream`):

    - ``"buffered"`` (default): judged every ``stream_chunk_tokens`` tokens (the request with the answer so
      far, while the model goes on writing) and each judged chunk released under the message's id; on a
      harmful chunk nothing of it or after it is released, the model is stopped, and ``exit_behavior``
      applies (``"end"``: the refusal is the rest of the message; ``"error"``: the run raises;
      ``"replace"``: the refusal is streamed as a new message and replaces the answer). Tool-call chunks
      carry no text to judge and stream as they come. The state holds exactly what was streamed.
    - ``"whole"``: the answer released in one chunk once judged whole.
    - ``"passthrough"``: tokens stream as the model writes them (after the input verdict, with
      ``parallel_input_check``), the answer judged whole at the end: the consumer may see text the guard
      then blocks; the refusal follows it and the state holds only what passed.

    A verdict the guard's policy decided (unparseable output, engine failure) blocks under ``fail_closed``
    and passes under ``fail_open``; under ``raise`` the core's ``GuardUndecidedError`` propagates. The guard
    is ``guard=`` or built on first use from ``model=`` and the other keyword options.

    Each check is a child run named ``GuardReasoner`` of the model step, beside the model call: the judged
    exchange as inputs, the verdict as outputs, the guard's model and engine in its metadata (LangSmith and
    every LangChain tracer show it).
    """

    def __init__(
        self,
        guard: GuardReasoner | None = None,
        *,
        check_input: bool = True,
        check_output: bool = True,
        check_tool_results: bool = False,
        exit_behavior: ExitBehavior = "end",
        violation_message: str = DEFAULT_VIOLATION_MESSAGE,
        parallel_input_check: bool = True,
        stream_mode: StreamMode = "buffered",
        stream_chunk_tokens: int = DEFAULT_STREAM_CHUNK_TOKENS,
        history_window: int = DEFAULT_HISTORY_TURNS,
        model: str | None = None,
        **guard_options: Any,
    ):
        super().__init__()
        self._guarding = Guarding.from_arguments(locals(), tracer=RUNS)
        self.check_tool_results = check_tool_results

    # -- hooks ----------------------------------------------------------------------------------------

    def wrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], ModelResponse[Any]]
    ) -> ModelResponse[Any] | AIMessage | ExtendedModelResponse[Any]:
        checks = self._input_checks(request.messages)
        if (streamed := StreamedModelCall.open(self, request, checks)) is not None:
            return streamed.run(request, handler, checks)
        response: ModelResponse[Any] | None = None
        if checks and self.parallel_input_check:
            held = run_beside_check(
                lambda: self._classify(checks),
                lambda: self._call(handler, request, hold=True),
                blocks=lambda verdicts: _any_blocks(checks, verdicts),
            )
            verdicts, response = held.verdict, held.result
        else:
            verdicts = self._classify(checks) if checks else []
        outcome = self._on_input(request, checks, verdicts)
        if isinstance(outcome, AIMessage):
            return outcome
        request, updates = outcome
        if response is None or updates:
            response = self._call(handler, request, hold=self.stream_mode != "passthrough")
        output = self._output_checks(request.messages, response)
        return self._finish(response, output, self._classify(output) if output else [], updates)

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any] | AIMessage | ExtendedModelResponse[Any]:
        checks = self._input_checks(request.messages)
        if (streamed := StreamedModelCall.open(self, request, checks)) is not None:
            return await streamed.arun(request, handler, checks)
        response: ModelResponse[Any] | None = None
        if checks and self.parallel_input_check:
            held = await arun_beside_check(
                self._aclassify(checks),
                lambda: self._acall(handler, request, hold=True),
                blocks=lambda verdicts: _any_blocks(checks, verdicts),
            )
            verdicts, response = held.verdict, held.result
        else:
            verdicts = await self._aclassify(checks) if checks else []
        outcome = self._on_input(request, checks, verdicts)
        if isinstance(outcome, AIMessage):
            return outcome
        request, updates = outcome
        if response is None or updates:
            response = await self._acall(handler, request, hold=self.stream_mode != "passthrough")
        output = self._output_checks(request.messages, response)
        return self._finish(response, output, await self._aclassify(output) if output else [], updates)

    # -- calling the model ----------------------------------------------------------------------------

    @staticmethod
    def _call(handler: Callable[[ModelRequest[Any]], Any], request: ModelRequest[Any], *, hold: bool) -> Any:
        if not hold:
            return handler(request)
        token = var_child_runnable_config.set(_nostream(ensure_config()))
        try:
            return handler(request)
        finally:
            var_child_runnable_config.reset(token)

    @staticmethod
    async def _acall(
        handler: Callable[[ModelRequest[Any]], Awaitable[Any]], request: ModelRequest[Any], *, hold: bool
    ) -> Any:
        if not hold:
            return await handler(request)
        token = var_child_runnable_config.set(_nostream(ensure_config()))
        try:
            return await handler(request)
        finally:
            var_child_runnable_config.reset(token)

    # -- what to judge --------------------------------------------------------------------------------

    def _input_checks(self, messages: Sequence[BaseMessage]) -> list[_Check]:
        checks: list[_Check] = []
        last_ai = last_index(messages, AIMessage)
        if self.check_tool_results and last_ai is not None:
            request = self._request_before(messages, last_ai)
            for index in range(last_ai + 1, len(messages)):
                if isinstance(messages[index], ToolMessage) and (text := message_text(messages[index])):
                    checks.append(_pair(index, "tool", request, text))
        if self.check_input:
            human = last_index(messages, HumanMessage)
            if human is not None and (last_ai is None or last_ai < human) and message_text(messages[human]):
                prompt, _ = messages_conversation(messages[: human + 1], self.history_window)
                checks.append(_Check(human, "input", prompt, None))
        return checks

    def _output_checks(self, messages: Sequence[BaseMessage], response: ModelResponse[Any]) -> list[_Check]:
        if not self.check_output:
            return []
        ai = _ai_message(response)
        if ai is None or (text := message_text(response.result[ai])) is None:
            return []
        return [_pair(ai, "output", self._request_before(messages, len(messages)), text)]

    def _request_before(self, messages: Sequence[BaseMessage], end: int) -> str | None:
        """The turn's request (history folded in) for what comes at index ``end``; None with no human."""
        human = last_index(messages, HumanMessage, before=end)
        if human is None or message_text(messages[human]) is None:
            return None
        return messages_conversation(messages[: human + 1], self.history_window)[0]

    # -- judging and acting ---------------------------------------------------------------------------

    def _classify(self, checks: list[_Check]) -> list[Verdict]:
        return self._guarding.classify_all([Check(c.stage, c.prompt, c.response) for c in checks])

    async def _aclassify(self, checks: list[_Check]) -> list[Verdict]:
        return await self._guarding.aclassify_all([Check(c.stage, c.prompt, c.response) for c in checks])

    def _on_input(
        self, request: ModelRequest[Any], checks: list[_Check], verdicts: list[Verdict]
    ) -> AIMessage | tuple[ModelRequest[Any], list[BaseMessage]]:
        """The refusal that ends the turn, or the request to send (flagged messages replaced) and the
        replaced messages for the state."""
        messages = list(request.messages)
        updates: list[BaseMessage] = []
        for check, verdict in zip(checks, verdicts):
            if not check.blocks(verdict):
                continue
            text = self._guarding.refuse(verdict, check.stage, check.content)
            if self.exit_behavior == "end":
                return refusal_message(text, verdict, check.stage)
            messages[check.index] = with_refusal(messages[check.index], text, verdict, check.stage)
            updates.append(messages[check.index])
        return (request.override(messages=messages) if updates else request), updates

    def _finish(
        self,
        response: ModelResponse[Any],
        checks: list[_Check],
        verdicts: list[Verdict],
        updates: list[BaseMessage],
    ) -> ModelResponse[Any] | AIMessage | ExtendedModelResponse[Any]:
        for check, verdict in zip(checks, verdicts):
            if not check.blocks(verdict):
                continue
            text = self._guarding.refuse(verdict, check.stage, check.content)
            result = list(response.result)
            flagged = result[check.index]
            # A new id: a stream that showed the flagged message (passthrough) shows the refusal after it.
            if self.exit_behavior == "end":
                result[check.index] = with_refusal(
                    flagged, text, verdict, check.stage, tool_calls=[], id=None
                )
                result = result[: check.index + 1]  # nothing the flagged answer produced follows it
            else:
                result[check.index] = with_refusal(flagged, text, verdict, check.stage, id=None)
            response = ModelResponse(result=result, structured_response=response.structured_response)
        if not updates:
            return response
        # Same ids: the state's reducer swaps each flagged request or tool result for its placeholder.
        return ExtendedModelResponse(model_response=response, command=Command(update={"messages": updates}))


def _any_blocks(checks: list[_Check], verdicts: list[Verdict]) -> bool:
    return any(check.blocks(verdict) for check, verdict in zip(checks, verdicts))


def _ai_message(response: ModelResponse[Any]) -> int | None:
    return last_index(response.result, AIMessage)


def _nostream(config: Any) -> Any:
    """The config with LangGraph's ``nostream`` tag, so ``stream_mode="messages"`` skips the model's tokens
    (the AI message is streamed whole when the model step ends, after the verdict)."""
    return {**config, "tags": [*config.get("tags", []), TAG_NOSTREAM]}


def _pair(index: int, stage: Stage, request: str | None, text: str) -> _Check:
    """Text judged as the response to ``request``; with no request before it, judged alone as one."""
    if request is None:
        return _Check(index, stage, text, None)
    return _Check(index, stage, request, text)
