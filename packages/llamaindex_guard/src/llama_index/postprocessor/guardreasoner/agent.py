"""Guarded LlamaIndex 0.14 agents: ``FunctionAgent``, ``ReActAgent`` (any ``BaseWorkflowAgent``), alone or in
an ``AgentWorkflow``.

Why the agent's steps and its tools, not its LLM: an agent run is a workflow whose steps call
``take_step`` (the LLM call), ``call_tool`` and ``finalize``, and both ``agent.run(...)`` and
``AgentWorkflow`` drive the same agent methods and read the same ``agent.tools``. Wrapping those is
what reaches every run path (async ``await handler``, ``handler.stream_events()``, a sync caller's
``asyncio.run``) with the run's context in hand:

- the input, before the first LLM call: the first ``take_step`` of a run judges the user's message (with
  ``history_window`` earlier turns from the memory folded in). With ``parallel_input_check`` the step
  starts beside the check on a *held* context: its events (streamed tokens included) and its writes to the
  run's state are kept aside until the verdict; on a harmful one the step is cancelled and its writes
  dropped, so no tool call it asked for runs and no token reaches the stream;
- each tool result, before the LLM sees it: each tool is wrapped so that its output is judged (as the
  response to the user's message) where it is produced, before the agent writes it to the event stream,
  the memory or the next LLM input. A tool's own exception is the agent's business (it becomes an error
  result, as without the guard) and is not judged;
- the final answer, before it is returned: a step without tool calls is judged; streamed text is released
  through :class:`~guardreasoner.integrations.streaming.BufferedStreamModerator` (``stream_mode``), which
  stops the step (and the LLM's stream) on a harmful chunk.

``exit_behavior``: ``"error"`` (default) makes the run raise
:class:`~guardreasoner.integrations.GuardReasonerViolation` (``await handler`` raises it; a flagged tool
result raises at the next step, before any LLM call sees it). ``"end"`` stops the run and answers the
refusal (a flagged tool result ends the run without another LLM call). ``"replace"`` puts the refusal in
place of the flagged content and goes on: a flagged tool result reaches the LLM as the refusal text, and
the agent continues; input and final answer have nothing to go on with, so they end with the refusal.
A refusal answer's ``AgentOutput.raw["guardreasoner"]`` holds the stage and the full verdict, and the
refusal (never the flagged text) is what the run's memory keeps.

Each check is a ``GuardReasoner.<stage>`` span of LlamaIndex's instrumentation under the agent step it
guards (a tool result's under the guarded tool's call), its verdict in a ``GuardReasonerVerdictEvent``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
from collections.abc import Sequence
from typing import Any

from llama_index.core.agent.workflow import AgentWorkflow, BaseWorkflowAgent
from llama_index.core.agent.workflow.workflow_events import AgentOutput, AgentStream, ToolCallResult
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.memory import BaseMemory
from llama_index.core.prompts.mixin import PromptMixinType
from llama_index.core.tools import AsyncBaseTool, BaseTool, FunctionTool, ToolOutput, adapt_to_async_tool
from llama_index.core.workflow import Context
from llama_index.postprocessor.guardreasoner._common import (
    Stage,
    folded_request,
    refusal_metadata,
    text_or_none,
)
from llama_index.postprocessor.guardreasoner._tracing import SPANS

from guardreasoner import Verdict
from guardreasoner.guard import GuardReasoner
from guardreasoner.integrations import (
    DEFAULT_HISTORY_TURNS,
    DEFAULT_STREAM_CHUNK_TOKENS,
    DEFAULT_VIOLATION_MESSAGE,
    ExitBehavior,
    GuardReasonerViolation,
    StreamMode,
    is_violation,
)
from guardreasoner.integrations.guarding import Guarding

_INPUT_JUDGED = "guardreasoner_input_judged"
_FLAGGED_TOOLS = "guardreasoner_flagged_tool_results"
_REFUSED = "guardreasoner_refused"
_END = object()


class GuardedAgent(BaseWorkflowAgent):
    """A LlamaIndex agent whose input, tool results and final answer GuardReasoner judges (see the module).

    >>> agent = GuardedAgent(FunctionAgent(tools=[search], llm=llm), guard=guard)  # doctest: +SKIP
    >>> response = await agent.run(user_msg="...")  # doctest: +SKIP

    It is an agent itself (same name, description, tools, LLM, prompts and workflow options as the one it
    wraps), so it runs, streams and composes as that agent does, e.g. in ``AgentWorkflow(agents=[...])``
    (or use :meth:`workflow` to guard every agent of an existing ``AgentWorkflow``). In a workflow the input
    is judged once per run, whichever agent takes the first step. The wrapped agent is not changed.

    Rejected at construction, with what to do instead: objects that are not ``BaseWorkflowAgent`` (an
    ``AgentWorkflow``: use :meth:`workflow`; a chat or query engine: ``GuardedChatEngine`` /
    ``GuardedQueryEngine``), an agent already guarded, and an agent with a ``tool_retriever`` (its tools
    come from the retriever at run time and could not be guarded: pass them as ``tools=``).
    """

    _agent: BaseWorkflowAgent = PrivateAttr()
    _guarding: Guarding = PrivateAttr()

    def __init__(
        self,
        agent: BaseWorkflowAgent,
        guard: GuardReasoner | None = None,
        *,
        check_input: bool = True,
        check_tool_results: bool = True,
        check_output: bool = True,
        exit_behavior: ExitBehavior = "error",
        violation_message: str = DEFAULT_VIOLATION_MESSAGE,
        history_window: int = DEFAULT_HISTORY_TURNS,
        parallel_input_check: bool = True,
        stream_mode: StreamMode = "buffered",
        stream_chunk_tokens: int = DEFAULT_STREAM_CHUNK_TOKENS,
        model: str | None = None,
        **guard_options: Any,
    ):
        _check_agent(agent)
        guarding = Guarding.from_arguments(locals(), tracer=SPANS)
        tools = list(agent.tools or [])
        super().__init__(
            **_options_of(
                agent, "name", "description", "system_prompt", "can_handoff_to", "llm", "streaming"
            ),
            tools=[_GuardedTool.wrap(tool, self) for tool in tools] if check_tool_results else tools,
            timeout=getattr(agent, "_timeout", None),
            verbose=getattr(agent, "_verbose", False),
        )
        self._agent = agent
        self._guarding = guarding

    @classmethod
    def workflow(
        cls, workflow: AgentWorkflow, guard: GuardReasoner | None = None, **options: Any
    ) -> AgentWorkflow:
        """A copy of ``workflow`` (same root agent, prompts, state and options) whose agents are guarded.

        The agents share one guard: ``guard=`` or one built from ``model=``/the options on first use.
        """
        if not isinstance(workflow, AgentWorkflow):
            raise TypeError(f"GuardedAgent.workflow takes an AgentWorkflow, got {type(workflow).__name__}.")
        agents = [cls(agent, guard, **options) for agent in workflow.agents.values()]
        for agent in agents[1:]:
            agent._guarding.provider = agents[0]._guarding.provider  # one guard, built once on first use
        return AgentWorkflow(
            **_options_of(workflow, "root_agent", "handoff_prompt", "handoff_output_prompt"),
            agents=agents,
            timeout=workflow._timeout,
        )

    @property
    def guard(self) -> GuardReasoner:
        return self._guarding.guard

    @property
    def agent(self) -> BaseWorkflowAgent:
        """The wrapped agent."""
        return self._agent

    def _get_prompt_modules(self) -> PromptMixinType:
        return {"agent": self._agent}

    # -- the agent's steps ----------------------------------------------------------------------------

    async def take_step(
        self, ctx: Context, llm_input: list[ChatMessage], tools: Sequence[AsyncBaseTool], memory: BaseMemory
    ) -> AgentOutput:
        flagged = await ctx.store.get(_FLAGGED_TOOLS, default=[])
        if flagged:  # a tool result flagged under "error" or "end": the LLM must not go on
            await ctx.store.set(_FLAGGED_TOOLS, [])
            verdict, content = flagged[0]
            return await self._stop(ctx, verdict, "tool", content)
        request = await self._request(ctx, memory)
        judge_input = (
            self._guarding.check_input
            and request is not None
            and await ctx.store.get(_INPUT_JUDGED, default=None) != request
        )
        if judge_input:  # once per run (a later step, or a handoff, sees the same request)
            await ctx.store.set(_INPUT_JUDGED, request)
            if not self._guarding.parallel_input_check:
                verdict = await self._guarding.aclassify("input", request)
                if is_violation(verdict, judged_on="request"):
                    return await self._stop(ctx, verdict, "input", request)
        held = _HeldContext(ctx)
        step = asyncio.ensure_future(self._agent.take_step(held, llm_input, tools, memory))
        if judge_input and self._guarding.parallel_input_check:
            try:
                verdict = await self._guarding.aclassify("input", request)
            except BaseException:
                await _cancel(step)
                raise
            if is_violation(verdict, judged_on="request"):
                await _cancel(step)  # its tool calls never run, its tokens never reach the stream
                return await self._stop(ctx, verdict, "input", request)
        try:
            output, judged = await self._release(ctx, held, step, request)
        except GuardReasonerViolation as exc:
            return await self._stop(ctx, exc.verdict, "output", exc.content)
        final = not output.tool_calls and self._guarding.check_output and not judged
        if final and (text := text_or_none(output.response.content)) is not None:
            verdict = await self._judge("output", request, text)
            if verdict is not None:  # the step's writes (its answer in the scratchpad) are dropped with it
                return await self._stop(ctx, verdict, "output", text)
        await held.store.commit()
        return output

    async def handle_tool_call_results(
        self, ctx: Context, results: list[ToolCallResult], memory: BaseMemory
    ) -> None:
        await self._agent.handle_tool_call_results(ctx, results, memory)

    async def finalize(self, ctx: Context, output: AgentOutput, memory: BaseMemory) -> AgentOutput:
        flagged = await ctx.store.get(_FLAGGED_TOOLS, default=[])
        if flagged:  # a flagged return_direct tool ends the run here, without another step
            await ctx.store.set(_FLAGGED_TOOLS, [])
            if self._guarding.exit_behavior == "error":
                verdict, content = flagged[0]
                raise GuardReasonerViolation(verdict=verdict, stage="tool", content=content)
        output = await self._agent.finalize(ctx, output, memory)
        if await ctx.store.get(_REFUSED, default=False):
            await ctx.store.set(_REFUSED, False)
            await memory.aput(ChatMessage(role=MessageRole.ASSISTANT, content=output.response.content))
        return output

    # -- internals ------------------------------------------------------------------------------------

    async def _request(self, ctx: Context, memory: BaseMemory) -> str | None:
        """The user's message with up to ``history_window`` earlier turns of the memory folded in (None when
        the run has no user text, e.g. an image alone)."""
        message = text_or_none(await ctx.store.get("user_msg_str", default=None))
        if message is None:
            return None
        history = await memory.aget_all()
        if history and history[-1].role == MessageRole.USER and (history[-1].content or "") == message:
            history = history[:-1]
        return folded_request(history, message, self._guarding.history_window)

    async def _judge(self, stage: Stage, request: str | None, text: str) -> Verdict | None:
        """The blocking verdict on ``text`` as the response to ``request`` (alone when there is none)."""
        if request is None:
            verdict = await self._guarding.aclassify(stage, text)
            return verdict if is_violation(verdict, judged_on="request") else None
        verdict = await self._guarding.aclassify(stage, request, text)
        return verdict if is_violation(verdict, judged_on="response") else None

    async def _release(
        self, ctx: Context, held: _HeldContext, step: asyncio.Future[AgentOutput], request: str | None
    ) -> tuple[AgentOutput, bool]:
        """Run the step to its end, its held events released to the run's stream as the guard allows.

        Returns the step's output and whether its streamed text was judged in full (then the final answer
        needs no second check). Raises :class:`GuardReasonerViolation` on a harmful chunk, having cancelled
        the step (its writes are dropped with it).
        """
        passthrough = self._guarding.stream_mode == "passthrough"  # streamed as it comes, judged at the end
        if not (self._guarding.check_output and self.streaming and request is not None) or passthrough:
            held.open(ctx.write_event_to_stream)
            return await step, False
        pieces: asyncio.Queue[Any] = asyncio.Queue()
        held.open(lambda event: pieces.put_nowait(event) if isinstance(event, AgentStream) else None, ctx)
        step.add_done_callback(lambda _: pieces.put_nowait(_END))
        moderator = self._guarding.moderator(request, lambda event: event.delta or "")

        async def stream() -> Any:
            while (event := await pieces.get()) is not _END:
                yield event

        async def moderate() -> None:
            async for event in moderator.amoderate(stream()):
                ctx.write_event_to_stream(event)

        moderation = asyncio.ensure_future(moderate())
        await asyncio.wait([step, moderation], return_when=asyncio.FIRST_EXCEPTION)
        if moderation.done() and moderation.exception() is not None:
            await _cancel(step)
            raise moderation.exception()
        if step.exception() is not None:
            await _cancel(moderation)
            raise step.exception()
        await moderation
        return step.result(), moderator.checks > 0

    async def _stop(self, ctx: Context, verdict: Verdict, stage: Stage, content: str) -> AgentOutput:
        """Raise under ``error``; else answer the refusal (the run then finalizes with it)."""
        if stage == "input":  # a flagged request is judged again if it comes again on this context
            await ctx.store.set(_INPUT_JUDGED, None)
        refusal = self._guarding.refuse(verdict, stage, content)
        await ctx.store.set(_REFUSED, True)
        if self.streaming:
            ctx.write_event_to_stream(
                AgentStream(delta=refusal, response=refusal, current_agent_name=self.name, raw=None)
            )
        return AgentOutput(
            response=ChatMessage(role=MessageRole.ASSISTANT, content=refusal),
            tool_calls=[],
            raw=refusal_metadata(verdict, stage),
            current_agent_name=self.name,
        )

    async def _judge_tool_result(self, ctx: Context, output: ToolOutput) -> ToolOutput:
        """The tool's output, or (flagged) the refusal in its place; under ``error``/``end`` the flag is left
        for the next step (or ``finalize``), which stops the run before any LLM call sees the result."""
        text = text_or_none(output.content)
        if text is None or output.is_error:
            return output
        request = text_or_none(await ctx.store.get("user_msg_str", default=None))
        verdict = await self._judge("tool", request, text)
        if verdict is None:
            return output
        if self._guarding.exit_behavior != "replace":
            flagged = await ctx.store.get(_FLAGGED_TOOLS, default=[])
            await ctx.store.set(_FLAGGED_TOOLS, [*flagged, (verdict, text)])
        return ToolOutput(
            content=self._guarding.refusal(verdict, "tool"),
            tool_name=output.tool_name,
            raw_input=output.raw_input,
            raw_output=refusal_metadata(verdict, "tool"),
        )


def _check_agent(agent: Any) -> None:
    if isinstance(agent, GuardedAgent):
        raise ValueError(f"Agent {agent.name!r} is already guarded.")
    if isinstance(agent, AgentWorkflow):
        raise TypeError(
            "GuardedAgent wraps one agent; to guard an AgentWorkflow use GuardedAgent.workflow(workflow, ...) "
            "or build it from guarded agents: AgentWorkflow(agents=[GuardedAgent(a, guard=guard), ...])."
        )
    if not isinstance(agent, BaseWorkflowAgent):
        hint = {
            "chat": " A chat engine: use GuardedChatEngine.",
            "query": " A query engine: use GuardedQueryEngine.",
        }
        extra = next((text for method, text in hint.items() if callable(getattr(agent, method, None))), "")
        raise TypeError(
            "GuardedAgent wraps a LlamaIndex 0.14 agent (FunctionAgent, ReActAgent or another "
            f"BaseWorkflowAgent), got {type(agent).__name__}.{extra}"
        )
    if agent.tool_retriever is not None:
        raise ValueError(
            f"Agent {agent.name!r} gets its tools from a tool_retriever at run time, so their results could "
            "not be guarded: pass the tools as tools=[...] instead."
        )


def _options_of(source: BaseWorkflowAgent | AgentWorkflow, *names: str) -> dict[str, Any]:
    """``source``'s ``names`` and the options an agent and a workflow both take, to build a guarded copy
    (its own ``initial_state``, deep-copied, so the copy's runs do not change the original's)."""
    shared = ("state_prompt", "output_cls", "structured_output_fn", "early_stopping_method")
    return {
        **{name: getattr(source, name) for name in (*names, *shared)},
        "initial_state": copy.deepcopy(source.initial_state),
    }


class _GuardedTool:
    """Builds the guarded stand-in of a tool: a ``FunctionTool`` with the tool's metadata (so the LLM sees
    the same schema) whose function takes the run's ``Context`` (the agent passes it to any FunctionTool that
    asks for one), calls the tool and judges its output."""

    @staticmethod
    def wrap(tool: BaseTool, agent: GuardedAgent) -> FunctionTool:
        inner = adapt_to_async_tool(tool)
        inner_ctx = tool.ctx_param_name if isinstance(tool, FunctionTool) and tool.requires_context else None

        async def call(_guardreasoner_ctx: Context, **kwargs: Any) -> ToolOutput:
            if inner_ctx is not None:
                kwargs[inner_ctx] = _guardreasoner_ctx
            output = await inner.acall(**kwargs)
            return await agent._judge_tool_result(_guardreasoner_ctx, output)

        # FunctionTool finds the context parameter by its annotation; set the signature explicitly so that
        # postponed annotations (this module's ``from __future__ import annotations``) do not hide it.
        call.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [
                inspect.Parameter(
                    "_guardreasoner_ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Context
                ),
                inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD),
            ]
        )

        async def as_is(
            output: ToolOutput,
        ) -> ToolOutput:  # FunctionTool returns a callback's ToolOutput as is
            return output

        return FunctionTool(async_fn=call, metadata=tool.metadata, async_callback=as_is)


class _HeldContext:
    """The run's context as the wrapped agent's step sees it: its events are held and its writes to the
    run's state kept aside, until the guard lets them through (:meth:`open`, ``store.commit()``)."""

    def __init__(self, ctx: Context):
        self._ctx = ctx
        self.store = _OverlayStore(ctx.store)
        self._held: list[Any] = []
        self._sink: Any = None
        self._other: Context | None = None

    @property
    def is_running(self) -> bool:
        return True  # it only exists inside a step, where the workflow is always running

    def write_event_to_stream(self, event: Any) -> None:
        if self._sink is None:
            self._held.append(event)
        else:
            self._send(event)

    def open(self, sink: Any, others_to: Context | None = None) -> None:
        """From now on, events go to ``sink``; with ``others_to``, events the sink takes no interest in
        (not streamed text) go straight to that context."""
        self._sink, self._other = sink, others_to
        held, self._held = self._held, []
        for event in held:
            self._send(event)

    def _send(self, event: Any) -> None:
        if self._other is not None and not isinstance(event, AgentStream):
            self._other.write_event_to_stream(event)
        else:
            self._sink(event)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)


class _OverlayStore:
    """``get``/``set`` over the run's state store, the writes kept in an overlay until :meth:`commit`.
    Values read are copied (lists, dicts) so that in-place edits do not reach the run's state either."""

    def __init__(self, store: Any):
        self._store = store
        self._overlay: dict[str, Any] = {}
        self._written: set[str] = set()

    async def get(self, path: str, default: Any = Ellipsis) -> Any:
        if path not in self._overlay:
            value = await self._store.get(path, default=default)
            self._overlay[path] = copy.copy(value) if isinstance(value, (list, dict)) else value
        return self._overlay[path]

    async def set(self, path: str, value: Any) -> None:
        self._overlay[path] = value
        self._written.add(path)

    async def commit(self) -> None:
        for path in sorted(self._written):
            await self._store.set(path, self._overlay[path])
        self._overlay.clear()
        self._written.clear()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


async def _cancel(task: asyncio.Future[Any]) -> None:
    task.cancel()
    with contextlib.suppress(BaseException):
        await task
