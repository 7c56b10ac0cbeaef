"""Agent middleware for ``langchain.agents.create_agent``: GuardReasoner on the way in and out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from guardreasoner import Verdict
from guardreasoner.guard import GuardReasoner
from guardreasoner.integrations import GuardProvider, is_violation
from langchain.agents.middleware.types import AgentMiddleware, AgentState, hook_config
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from guardreasoner_langchain._guard import Stage, last_index, message_text
from guardreasoner_langchain.errors import GuardReasonerViolation

if TYPE_CHECKING:
    from langgraph.runtime import Runtime

ExitBehavior = Literal["error", "end", "replace"]

DEFAULT_VIOLATION_MESSAGE = "I'm sorry, but I can't help with that."


@dataclass(frozen=True)
class _Check:
    index: int
    """Where the judged message is in the state's messages."""
    stage: Stage
    prompt: str
    response: str | None

    @property
    def content(self) -> str:
        return self.prompt if self.response is None else self.response


class GuardReasonerMiddleware(AgentMiddleware[AgentState[Any], Any]):
    """Guard an agent's traffic with GuardReasoner, in the shape of LangChain's moderation middleware.

    >>> agent = create_agent(model, tools, middleware=[GuardReasonerMiddleware(guard=guard)])  # doctest: +SKIP

    What is judged (one ``classify_batch`` call per hook):

    - ``check_input``: before the model, the last human message, once per turn (when no AI message follows
      it yet; later model calls in the same turn, after tools, do not re-judge it). Earlier turns are not shown
      to the guard: GuardReasoner judges one request.
    - ``check_output``: after the model, the new AI message's text as the response to the last human message
      (so a refusal of a harmful request passes; the response is what is judged). An AI message with no text
      (tool calls only) is not judged.
    - ``check_tool_results``: before the model, each tool result since the last AI message, as the response
      to the last human message (off by default).

    Multi-part content counts as its text parts joined. Text with no human message before it is judged alone,
    as a request. A verdict the guard's policy decided (unparseable output, engine failure) blocks under
    ``fail_closed`` and passes under ``fail_open``; under ``raise`` the core's ``GuardUndecidedError``
    propagates out of the agent.

    ``exit_behavior`` on a violation:

    - ``"end"`` (default): the run ends with an AI message saying ``violation_message``. A flagged AI message
      is replaced by it (same id, no tool calls), so the harmful text does not stay in the state; for a flagged
      request or tool result the refusal is appended and the model is not called.
    - ``"error"``: raise :class:`~guardreasoner_langchain.GuardReasonerViolation` (with the verdict).
    - ``"replace"``: the flagged message's content becomes ``violation_message`` and the run goes on (an AI
      message keeps its tool calls; the model sees the placeholder instead of a flagged request or tool result).

    Streaming: the output is judged in ``after_model``, once the model's message is complete, so a streamed
    agent (any ``stream_mode``: the model's tokens, or the ``model`` step's update) shows that message before
    the verdict's effect follows. The final state holds only what passed. Where unjudged text must not reach
    the user, show the final state, not the stream.

    The guard is ``guard=`` or built on first use from ``model=`` and the other keyword options.
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
        model: str | None = None,
        **guard_options: Any,
    ):
        super().__init__()
        if exit_behavior not in ("error", "end", "replace"):
            raise ValueError(f"exit_behavior must be 'error', 'end' or 'replace', got {exit_behavior!r}.")
        self._provider = GuardProvider(guard, model, guard_options)
        self.check_input = check_input
        self.check_output = check_output
        self.check_tool_results = check_tool_results
        self.exit_behavior = exit_behavior
        self.violation_message = violation_message

    @property
    def guard(self) -> GuardReasoner:
        return self._provider.get()

    # -- hooks ----------------------------------------------------------------------------------------

    @hook_config(can_jump_to=["end"])
    def before_model(self, state: AgentState[Any], runtime: Runtime[Any]) -> dict[str, Any] | None:  # type: ignore[override]
        messages = list(state.get("messages", []))
        checks = self._input_checks(messages)
        return self._apply(messages, checks, self._classify(checks)) if checks else None

    @hook_config(can_jump_to=["end"])
    async def abefore_model(self, state: AgentState[Any], runtime: Runtime[Any]) -> dict[str, Any] | None:  # type: ignore[override]
        messages = list(state.get("messages", []))
        checks = self._input_checks(messages)
        return self._apply(messages, checks, await self._aclassify(checks)) if checks else None

    @hook_config(can_jump_to=["end"])
    def after_model(self, state: AgentState[Any], runtime: Runtime[Any]) -> dict[str, Any] | None:  # type: ignore[override]
        messages = list(state.get("messages", []))
        checks = self._output_checks(messages)
        return self._apply(messages, checks, self._classify(checks)) if checks else None

    @hook_config(can_jump_to=["end"])
    async def aafter_model(self, state: AgentState[Any], runtime: Runtime[Any]) -> dict[str, Any] | None:  # type: ignore[override]
        messages = list(state.get("messages", []))
        checks = self._output_checks(messages)
        return self._apply(messages, checks, await self._aclassify(checks)) if checks else None

    # -- what to judge --------------------------------------------------------------------------------

    def _input_checks(self, messages: Sequence[BaseMessage]) -> list[_Check]:
        checks: list[_Check] = []
        last_ai = last_index(messages, AIMessage)
        if self.check_tool_results and last_ai is not None:
            human = last_index(messages, HumanMessage, before=last_ai)
            request = message_text(messages[human]) if human is not None else None
            for index in range(last_ai + 1, len(messages)):
                if isinstance(messages[index], ToolMessage) and (text := message_text(messages[index])):
                    checks.append(_pair(index, "tool", request, text))
        if self.check_input:
            human = last_index(messages, HumanMessage)
            if human is not None and (last_ai is None or last_ai < human):
                text = message_text(messages[human])
                if text is not None:
                    checks.append(_Check(human, "input", text, None))
        return checks

    def _output_checks(self, messages: Sequence[BaseMessage]) -> list[_Check]:
        if not self.check_output:
            return []
        ai = last_index(messages, AIMessage)
        if ai is None or (text := message_text(messages[ai])) is None:
            return []
        human = last_index(messages, HumanMessage, before=ai)
        request = message_text(messages[human]) if human is not None else None
        return [_pair(ai, "output", request, text)]

    # -- judging and acting ---------------------------------------------------------------------------

    def _classify(self, checks: list[_Check]) -> list[Verdict]:
        return self.guard.classify_batch([(c.prompt, c.response) for c in checks])

    async def _aclassify(self, checks: list[_Check]) -> list[Verdict]:
        return await self.guard.aclassify_batch([(c.prompt, c.response) for c in checks])

    def _apply(
        self, messages: list[BaseMessage], checks: list[_Check], verdicts: list[Verdict]
    ) -> dict[str, Any] | None:
        working = list(messages)
        changed = False
        for check, verdict in zip(checks, verdicts):
            if not is_violation(verdict, judged_on="request" if check.response is None else "response"):
                continue
            if self.exit_behavior == "error":
                raise GuardReasonerViolation(verdict=verdict, stage=check.stage, content=check.content)
            if self.exit_behavior == "end":
                refusal = self._refusal(check, verdict)
                if check.stage == "output":
                    # Same id: the state's reducer swaps the flagged AI message for the refusal.
                    return {
                        "messages": [refusal.model_copy(update={"id": working[check.index].id})],
                        "jump_to": "end",
                    }
                return {"messages": [refusal], "jump_to": "end"}
            working[check.index] = working[check.index].model_copy(update={"content": self.violation_message})
            changed = True
        return {"messages": working} if changed else None

    def _refusal(self, check: _Check, verdict: Verdict) -> AIMessage:
        return AIMessage(
            content=self.violation_message,
            response_metadata={
                "guardreasoner": {
                    "stage": check.stage,
                    "decided_by": verdict.decided_by,
                    "parse_status": verdict.parse_status.value,
                }
            },
        )


def _pair(index: int, stage: Stage, request: str | None, text: str) -> _Check:
    """Text judged as the response to ``request``; with no request before it, judged alone as one."""
    if request is None:
        return _Check(index, stage, text, None)
    return _Check(index, stage, request, text)
