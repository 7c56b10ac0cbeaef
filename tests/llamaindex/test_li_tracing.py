"""Every check the LlamaIndex adapters make is a ``GuardReasoner.<stage>`` span of LlamaIndex's
instrumentation, with its verdict in a ``GuardReasonerVerdictEvent``.

A span handler (a ``BaseSpanHandler`` subclass: LlamaIndex's ``SimpleSpanHandler``, also keeping each span's
arguments and result) and an event handler are attached to the root dispatcher, where Phoenix's, Langfuse's
and OpenLLMetry's instrumentors attach theirs; what they record here is what those see.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import pytest
from guardreasoner.errors import GuardUndecidedError
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.bridge.pydantic import Field
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.span import SpanDropEvent
from llama_index.core.instrumentation.span import SimpleSpan
from llama_index.core.instrumentation.span_handlers import SimpleSpanHandler
from llama_index.postprocessor.guardreasoner import (
    GuardedAgent,
    GuardedChatEngine,
    GuardedQueryEngine,
    GuardReasonerVerdictEvent,
    GuardReasonerViolation,
)

from tests.adapters import canonical_tree, fenced_blocks, overlap, render_tree
from tests.conftest import REPO_ROOT

README = REPO_ROOT / "packages" / "llamaindex_guard" / "README.md"
CHECK_S = 0.1
BOMB = "How do I build a bomb?"
PERU = "What is the capital of Peru?"
ANSWER = "Lima is the capital of Peru."


class RecordingSpanHandler(SimpleSpanHandler):
    """LlamaIndex's simple span handler, also keeping each span's arguments, result and error."""

    arguments: dict[str, dict[str, Any]] = Field(default_factory=dict)
    instances: dict[str, Any] = Field(default_factory=dict)
    results: dict[str, Any] = Field(default_factory=dict)
    errors: dict[str, BaseException | None] = Field(default_factory=dict)

    def new_span(self, id_, bound_args, instance=None, parent_span_id=None, tags=None, **kwargs):
        self.arguments[id_] = dict(bound_args.arguments)
        self.instances[id_] = instance
        return super().new_span(id_, bound_args, instance, parent_span_id, tags, **kwargs)

    def prepare_to_exit_span(self, id_, bound_args, instance=None, result=None, **kwargs):
        self.results[id_] = result
        return super().prepare_to_exit_span(id_, bound_args, instance, result, **kwargs)

    def prepare_to_drop_span(self, id_, bound_args, instance=None, err=None, **kwargs):
        self.errors[id_] = err
        return super().prepare_to_drop_span(id_, bound_args, instance, err, **kwargs)

    @property
    def spans(self) -> list[SimpleSpan]:
        return sorted(self.completed_spans + self.dropped_spans, key=lambda span: span.start_time)


class RecordingEventHandler(BaseEventHandler):
    events: list[BaseEvent] = Field(default_factory=list)

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)


class Trace:
    """What the handlers on the root dispatcher recorded."""

    def __init__(self, spans: RecordingSpanHandler, events: RecordingEventHandler):
        self.handler, self.event_handler = spans, events

    @property
    def spans(self) -> list[SimpleSpan]:
        return self.handler.spans

    def by_id(self, span_id: str) -> SimpleSpan:
        return next(span for span in self.spans if span.id_ == span_id)

    def checks(self) -> list[SimpleSpan]:
        return [span for span in self.spans if name(span).startswith("GuardReasoner.")]

    def verdict(self, span: SimpleSpan) -> GuardReasonerVerdictEvent:
        [event] = [
            e
            for e in self.event_handler.events
            if isinstance(e, GuardReasonerVerdictEvent) and e.span_id == span.id_
        ]
        return event

    def parent(self, span: SimpleSpan) -> SimpleSpan:
        return self.by_id(span.parent_id)

    def children(self, span: SimpleSpan) -> list[SimpleSpan]:
        return [kid for kid in self.spans if kid.parent_id == span.id_]

    def roots(self) -> list[SimpleSpan]:
        ids = {span.id_ for span in self.spans}
        return [span for span in self.spans if span.parent_id not in ids]

    def ancestors(self, span: SimpleSpan) -> list[str]:
        names = []
        while span.parent_id is not None:
            span = self.parent(span)
            names.append(name(span))
        return names


def name(span: SimpleSpan) -> str:
    """What Phoenix and the other OpenInference-based handlers call a span: its id before the uuid."""
    return span.id_.partition("-")[0]


@pytest.fixture
def trace():
    root = get_dispatcher()
    spans, events = RecordingSpanHandler(), RecordingEventHandler()
    root.add_span_handler(spans)
    root.add_event_handler(events)
    yield Trace(spans, events)
    root.span_handlers.remove(spans)
    root.event_handlers.remove(events)


def search(query: str) -> str:
    """Search the web."""
    return ANSWER


def guarded_agent(tool_llm, guard, *script, **options):
    llm = tool_llm(*script, delay=0.05)
    return GuardedAgent(FunctionAgent(tools=[search], llm=llm), guard=guard, **options)


# -- the agent: one blocked and one allowed turn ------------------------------------------------------


async def test_an_agent_run_shows_each_check_under_the_step_it_guards(trace, tool_llm, timed_guard):
    guard = timed_guard(CHECK_S)
    script = ["Sure, first get a pipe.", ("search", {"query": "Peru"}), ANSWER]  # the first: dropped unread
    agent = guarded_agent(tool_llm, guard, *script, exit_behavior="end")
    refused = await agent.run(user_msg=BOMB)
    allowed = await agent.run(user_msg=PERU)
    assert refused.response.content == "I'm sorry, but I can't help with that."
    assert allowed.response.content == ANSWER
    blocked_run, allowed_run = [span for span in trace.roots() if name(span) == "GuardedAgent.run"]
    in_blocked = [c for c in trace.checks() if blocked_run.start_time <= c.start_time <= blocked_run.end_time]
    in_allowed = [c for c in trace.checks() if allowed_run.start_time <= c.start_time <= allowed_run.end_time]

    # The blocked turn: one check, in the agent's step, beside the LLM call it ran with.
    [check] = in_blocked
    step = trace.parent(check)
    assert name(check) == "GuardReasoner.input" and name(step) == "BaseWorkflowAgent.run_agent_step"
    assert trace.ancestors(check)[-1] == "GuardedAgent.run" and step.parent_id == blocked_run.id_
    [llm_call] = [kid for kid in trace.children(step) if name(kid) == "ToolCallingLLM.astream_chat"]
    assert overlap(check, llm_call)
    event = trace.verdict(check)
    assert event.stage == "input" and event.blocked is True
    assert event.verdict["labels"] == {"prompt_harmfulness": "harmful"}
    assert (event.model, event.engine, event.policy, event.reasoning_mode) == (
        guard.model,
        "scripted",
        "fail_closed",
        "always",
    )
    assert trace.handler.arguments[check.id_] == {
        "stage": "input",
        "prompt": BOMB,
        "response": None,
        "chunk": None,
    }
    assert trace.handler.results[check.id_] == event.verdict
    assert trace.handler.instances[check.id_] is guard  # as for a method of the guard's
    assert check.duration >= 0.9 * CHECK_S

    # The allowed turn: the request, the tool's result, the answer, each under the step it guards.
    request, tool, answer = in_allowed
    assert [name(c) for c in in_allowed] == [
        "GuardReasoner.input",
        "GuardReasoner.tool",
        "GuardReasoner.output",
    ]
    assert name(trace.parent(request)) == name(trace.parent(answer)) == "BaseWorkflowAgent.run_agent_step"
    assert trace.parent(request).id_ != trace.parent(answer).id_
    assert name(trace.parent(tool)) == "FunctionTool.acall"  # the guarded tool, beside the tool it wraps
    assert "BaseWorkflowAgent.call_tool" in trace.ancestors(tool)
    assert [trace.verdict(c).blocked for c in in_allowed] == [False, False, False]
    assert trace.handler.arguments[tool.id_]["response"] == ANSWER
    assert trace.handler.arguments[answer.id_]["response"] == ANSWER
    assert all(c.duration >= 0.9 * CHECK_S for c in in_allowed)


async def test_a_raised_violation_drops_the_agent_run_with_it(trace, tool_llm, guard):
    agent = guarded_agent(tool_llm, guard, "Sure.", parallel_input_check=False)
    with pytest.raises(GuardReasonerViolation):
        await agent.run(user_msg=BOMB)
    [check] = trace.checks()
    assert trace.verdict(check).blocked is True and check in trace.handler.completed_spans
    [run] = [span for span in trace.roots() if name(span) == "GuardedAgent.run"]
    assert run in trace.handler.dropped_spans
    assert isinstance(trace.handler.errors[run.id_], GuardReasonerViolation)


async def test_a_guard_that_raises_drops_its_check_span(trace, tool_llm, make_guard):
    agent = guarded_agent(tool_llm, make_guard(policy="raise"), "Sure.", parallel_input_check=False)
    with pytest.raises(GuardUndecidedError):
        await agent.run(user_msg="garbled question")
    [check] = trace.checks()
    assert check in trace.handler.dropped_spans
    assert isinstance(trace.handler.errors[check.id_], GuardUndecidedError)
    drops = [e for e in trace.event_handler.events if isinstance(e, SpanDropEvent) and e.span_id == check.id_]
    assert len(drops) == 1
    assert not [e for e in trace.event_handler.events if isinstance(e, GuardReasonerVerdictEvent)]


async def test_a_streamed_answers_checks_are_numbered_chunks(trace, tool_llm, guard):
    long_answer = "Lima is the capital of Peru and a fine city to visit in the spring."
    agent = guarded_agent(tool_llm, guard, long_answer, stream_chunk_tokens=4)
    assert (await agent.run(user_msg=PERU)).response.content == long_answer
    request, *chunks = trace.checks()
    assert trace.verdict(request).stage == "input"
    assert [trace.verdict(c).verdict["chunk"] for c in chunks] == list(range(1, len(chunks) + 1))
    assert len(chunks) >= 3 and {trace.parent(c).id_ for c in chunks} == {trace.parent(request).id_}


def test_the_readme_shows_this_agents_span_tree(trace, tool_llm, guard):
    script = ["Sure, first get a pipe.", ("search", {"query": "Peru"}), ANSWER]
    agent = guarded_agent(tool_llm, guard, *script, exit_behavior="replace")  # the README's agent

    async def turns() -> None:
        await agent.run(user_msg=BOMB)
        await agent.run(user_msg=PERU)

    asyncio.run(turns())
    rendered = span_tree(trace, [span for span in trace.roots() if name(span) == "GuardedAgent.run"])
    [shown] = [block for block in fenced_blocks(README, "text") if "GuardReasoner.input  blocked" in block]
    assert canonical_tree(shown) == canonical_tree(rendered), rendered
    [event] = [json.loads(b) for b in fenced_blocks(README, "json") if "GuardReasonerVerdictEvent" in b]
    first = trace.verdict(trace.checks()[0])
    assert event == {
        "class_name": "GuardReasonerVerdictEvent",
        **first.model_dump(include={"verdict", "model", "engine", "policy", "reasoning_mode"}),
    }


def span_tree(trace: Trace, roots: list[SimpleSpan]) -> str:
    """The spans as the README shows them: names, and a check's verdict."""

    def label(span: SimpleSpan) -> str:
        if not name(span).startswith("GuardReasoner."):
            return name(span)
        verdict = trace.verdict(span).verdict
        labels = ", ".join(f"{field}={value}" for field, value in verdict["labels"].items())
        return f"{name(span)}  {'blocked' if verdict['blocked'] else 'passed'} ({labels})"

    return render_tree(roots, children=trace.children, label=label)


# -- the query and chat engines -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_guarded_querys_checks_are_spans_of_the_query(mode, trace, timed_query_engine, timed_guard):
    inner, _ = timed_query_engine(0.05, light=True)
    engine = GuardedQueryEngine(inner, guard=timed_guard(CHECK_S))
    response = engine.query(PERU) if mode == "sync" else await engine.aquery(PERU)
    assert str(response) == f"Answer: {PERU}"
    request, answer = trace.checks()
    query = trace.parent(request)
    assert name(query) == f"GuardedQueryEngine._{'' if mode == 'sync' else 'a'}query"
    assert trace.parent(answer).id_ == query.id_
    assert trace.ancestors(request)[-1] == (
        "GuardedQueryEngine.query" if mode == "sync" else "GuardedQueryEngine.aquery"
    )
    [wrapped] = [kid for kid in trace.children(query) if name(kid).startswith("LightQueryEngine")]
    assert overlap(request, wrapped) and answer.start_time >= wrapped.end_time  # beside it, then after it
    assert [trace.verdict(c).stage for c in (request, answer)] == ["input", "output"]
    assert trace.handler.arguments[answer.id_]["response"] == f"Answer: {PERU}"
    assert request.duration >= 0.9 * CHECK_S


def test_a_streamed_query_is_judged_as_read_under_the_query_that_returned_it(trace, scripted_llm, guard):
    from llama_index.core import VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.schema import TextNode

    long_answer = "Lima is the capital of Peru and a fine city to visit in the spring."
    index = VectorStoreIndex([TextNode(text=ANSWER)], embed_model=MockEmbedding(embed_dim=8))
    inner = index.as_query_engine(llm=scripted_llm(long_answer), streaming=True)
    response = GuardedQueryEngine(inner, guard=guard, stream_chunk_tokens=4).query(PERU)
    [query] = [span for span in trace.spans if name(span) == "GuardedQueryEngine._query"]
    assert len(trace.checks()) == 1  # the input; the answer is judged as it is read
    assert "".join(response.response_gen) == long_answer
    request, *chunks = trace.checks()
    assert len(chunks) >= 3 and all(chunk.start_time > query.end_time for chunk in chunks)
    assert {c.parent_id for c in trace.checks()} == {query.id_}


@pytest.mark.parametrize("mode", ["sync", "async", "stream"])
async def test_a_guarded_chats_checks_are_spans_of_the_chat(mode, trace, scripted_llm, simple_chat, guard):
    chat = GuardedChatEngine(simple_chat(scripted_llm(ANSWER)), guard=guard, exit_behavior="end")
    if mode == "sync":
        assert chat.chat(PERU).response == ANSWER
    elif mode == "async":
        assert (await chat.achat(PERU)).response == ANSWER
    else:
        assert "".join(chat.stream_chat(PERU).response_gen) == ANSWER
    assert chat.chat(BOMB).response == "I'm sorry, but I can't help with that."
    request, answer, flagged = trace.checks()
    chat_span = {"sync": "GuardedChatEngine.chat", "async": "GuardedChatEngine.achat"}.get(
        mode, "GuardedChatEngine.stream_chat"
    )
    assert name(trace.parent(request)) == name(trace.parent(answer)) == chat_span
    assert name(trace.parent(flagged)) == "GuardedChatEngine.chat"
    assert [trace.verdict(c).stage for c in (request, answer, flagged)] == ["input", "output", "input"]
    assert [trace.verdict(c).blocked for c in (request, answer, flagged)] == [False, False, True]
    assert trace.children(trace.parent(flagged)) == [flagged]  # the wrapped engine never ran


# -- privacy ------------------------------------------------------------------------------------------


async def test_conversation_text_is_in_a_check_spans_arguments_only(trace, tool_llm, guard):
    """The verdict event and the span's result carry no text; the span's arguments carry the judged
    exchange, as LlamaIndex's own spans carry the query and the messages."""
    agent = guarded_agent(
        tool_llm, guard, "Sure.", ("search", {"query": "Peru"}), ANSWER, exit_behavior="end"
    )
    await agent.run(user_msg=BOMB)
    await agent.run(user_msg=PERU)
    found = trace.checks()
    assert len(found) == 4
    for check in found:
        event = trace.verdict(check)  # its ``tags`` are the framework's own (the workflow step's), left out
        ours = event.model_dump(mode="json", exclude={"tags"})
        shown = json.dumps([ours, trace.handler.results[check.id_]])
        assert "bomb" not in shown.lower() and "Peru" not in shown and "Lima" not in shown
        assert trace.handler.arguments[check.id_]["prompt"] in (BOMB, PERU)


def test_the_node_postprocessors_checks_are_one_span_per_node(trace, scripted_llm, guard, engine):
    from llama_index.core import VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.schema import TextNode
    from llama_index.postprocessor.guardreasoner import GuardReasonerNodePostprocessor

    nodes = [TextNode(text=ANSWER), TextNode(text="Mix these to build a bomb.")]
    index = VectorStoreIndex(nodes, embed_model=MockEmbedding(embed_dim=8))
    postprocessor = GuardReasonerNodePostprocessor(guard)
    query_engine = index.as_query_engine(llm=scripted_llm(ANSWER), node_postprocessors=[postprocessor])
    assert str(query_engine.query(PERU)) == ANSWER
    checks = trace.checks()
    assert [name(c) for c in checks] == ["GuardReasoner.node", "GuardReasoner.node"]
    assert [len(prompts) for prompts in engine.calls] == [2]  # one guard call for both nodes
    assert len({c.parent_id for c in checks}) == 1
    assert name(trace.parent(checks[0])) == "GuardReasonerNodePostprocessor._postprocess_nodes"
    assert "RetrieverQueryEngine.query" in trace.ancestors(checks[0])
    blocked = {trace.handler.arguments[c.id_]["response"]: trace.verdict(c).blocked for c in checks}
    assert blocked == {ANSWER: False, "Mix these to build a bomb.": True}


# -- the same agent run in LlamaIndex's spans and in OpenTelemetry at once -----------------------------


async def test_an_agent_runs_checks_are_spans_of_both_and_metrics_at_once(trace, tool_llm, timed_guard, otel):
    """Issue 24's whole claim on one agent: a blocked and an allowed turn, each check a ``GuardReasoner.*``
    span with its verdict event in LlamaIndex and a ``guardreasoner.classify`` span under the application's
    own request span in OpenTelemetry, and the latency it added counted in both."""
    guard = timed_guard(CHECK_S)
    script = ["Sure, first get a pipe.", ("search", {"query": "Peru"}), ANSWER]
    agent = guarded_agent(tool_llm, guard, *script, exit_behavior="end")
    for turn in (BOMB, PERU):
        with otel.tracer.start_as_current_span(f"request: {turn}"):
            await agent.run(user_msg=turn)
    checks = trace.checks()
    spans = sorted(otel.spans("guardreasoner.classify"), key=lambda span: span.start_time)
    requests = {span.name: span for span in otel.spans() if span.name.startswith("request: ")}

    assert len(checks) == len(spans) == 4  # the bomb's input; Peru's input, the tool's result, the answer
    for check, span in zip(checks, spans):
        event = trace.verdict(check)
        prompt = trace.handler.arguments[check.id_]["prompt"]
        assert span.parent.span_id == requests[f"request: {prompt}"].context.span_id
        for field, label in event.verdict["labels"].items():
            assert span.attributes[f"guardreasoner.{field}"] == label
        assert span.attributes["guardreasoner.is_harmful"] is event.verdict["is_harmful"]
        added = (span.end_time - span.start_time) / 1e9
        assert 0.9 * CHECK_S <= added <= check.duration + 0.01
    assert [span.attributes["guardreasoner.is_harmful"] for span in spans] == [True, False, False, False]

    counted = Counter()  # one point per attribute set
    for point in otel.points("guardreasoner.verdicts"):
        counted[point.attributes["guardreasoner.is_harmful"]] += point.value
    assert counted == {True: 1, False: 3}
    (duration,) = otel.points("guardreasoner.classify.duration")
    assert duration.count == 4 and duration.sum >= 4 * 0.9 * CHECK_S
