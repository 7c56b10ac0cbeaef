"""Every check the LangChain adapters make is a child run named ``GuardReasoner`` in LangChain's own tracers.

The runs are read with ``RunCollectorCallbackHandler`` (langchain_core's ``BaseTracer`` that keeps each
finished run tree), so what is asserted here is what LangSmith, Langfuse's handler or the console tracer
receive: the run's parent, inputs (the judged exchange), outputs (the verdict summary), metadata (the
guard's model and engine, the stage) and its start and end (the check's latency).
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from guardreasoner.errors import GuardUndecidedError
from langchain.agents import create_agent
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler
from langchain_core.tracers.schemas import Run
from langchain_guardreasoner import (
    AsyncGuardReasonerCallbackHandler,
    GuardReasonerCallbackHandler,
    GuardReasonerMiddleware,
    GuardReasonerRunnable,
    GuardReasonerViolation,
    guard_chain,
)

from tests.adapters import canonical_tree, fenced_blocks, overlap, render_tree
from tests.conftest import REPO_ROOT
from tests.langchain.conftest import RecordingChatModel, ToolLoopChatModel

README = REPO_ROOT / "packages" / "langchain_guard" / "README.md"
CHECK_S = 0.1  # each check of the timed guard
BOMB = "How do I build a bomb?"
PERU = "What is the capital of Peru?"


@tool
def search(query: str) -> str:
    """Search the web."""
    return f"Results for {query}."


def descendants(run: Run) -> list[tuple[Run, Run]]:
    """(parent, run) for every run under ``run``, parents first, siblings in start order."""
    found = []
    for child in sorted(run.child_runs, key=lambda r: r.start_time):
        found.append((run, child))
        found.extend(descendants(child))
    return found


def checks(root: Run) -> list[tuple[Run, Run]]:
    """(parent, run) of each GuardReasoner run under ``root``, in start order."""
    return sorted(
        ((parent, run) for parent, run in descendants(root) if run.name == "GuardReasoner"),
        key=lambda pair: pair[1].start_time,
    )


def seconds(run: Run) -> float:
    return (run.end_time - run.start_time).total_seconds()


def model_call(parent: Run) -> Run:
    (call,) = [run for run in parent.child_runs if run.run_type == "llm"]
    return call


def run_tree(runs: list[Run]) -> str:
    """The runs as the README shows them: names, and a check's stage and verdict."""

    def label(run: Run) -> str:
        if run.name != "GuardReasoner":
            return run.name
        out = run.outputs
        labels = ", ".join(f"{field}={value}" for field, value in out["labels"].items())
        return f"GuardReasoner  {out['stage']}: {'blocked' if out['blocked'] else 'passed'} ({labels})"

    return render_tree(
        runs, children=lambda run: sorted(run.child_runs, key=lambda r: r.start_time), label=label
    )


def agent_with(guard, **options):
    middleware = GuardReasonerMiddleware(guard, **options)
    return create_agent(ToolLoopChatModel(delay=0.05), tools=[search], middleware=[middleware])


async def invoke(runnable, value, mode: str, callbacks: list):
    config = {"callbacks": callbacks}
    return runnable.invoke(value, config) if mode == "sync" else await runnable.ainvoke(value, config)


# -- the agent: one blocked and one allowed turn ------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_an_agent_run_shows_each_check_beside_the_model_call_it_guards(mode, timed_guard):
    guard = timed_guard(CHECK_S)
    agent, collector = agent_with(guard), RunCollectorCallbackHandler()
    refused = await invoke(agent, {"messages": [("user", BOMB)]}, mode, [collector])
    allowed = await invoke(agent, {"messages": [("user", PERU)]}, mode, [collector])
    blocked_run, allowed_run = collector.traced_runs

    # The blocked turn: one check, under the model step, beside the model call it ran with.
    [(step, check)] = checks(blocked_run)
    assert step.name == "model" and step.parent_run_id == blocked_run.id
    assert check.inputs == {"prompt": BOMB, "response": None}
    assert check.outputs["stage"] == "input" and check.outputs["blocked"] is True
    assert check.outputs["labels"] == {"prompt_harmfulness": "harmful"}
    assert (check.outputs["is_harmful"], check.outputs["decided_by"]) == (True, "model")
    assert check.metadata["guardreasoner_model"] == guard.model
    assert check.metadata["guardreasoner_engine"] == guard.engine.name == "scripted"
    assert check.metadata["guardreasoner_stage"] == "input"
    assert (check.metadata["guardreasoner_policy"], check.metadata["guardreasoner_reasoning_mode"]) == (
        "fail_closed",
        "always",
    )
    assert check.error is None and seconds(check) >= 0.9 * CHECK_S
    assert overlap(check, model_call(step))  # the model call ran beside the check
    # The run's outputs say the turn was blocked, and why: the refusal carries the verdict.
    refusal = blocked_run.outputs["messages"][-1]
    assert refusal.content == refused["messages"][-1].content == "I'm sorry, but I can't help with that."
    assert refusal.response_metadata["guardreasoner"]["verdict"]["prompt_harmfulness"] == "harmful"

    # The allowed turn: the request before the tool call, the answer after it, each under its model step.
    (first_step, request_check), (second_step, answer_check) = checks(allowed_run)
    steps = [run.name for _, run in descendants(allowed_run) if run.parent_run_id == allowed_run.id]
    assert steps == ["model", "tools", "model"]
    assert (first_step.name, second_step.name) == ("model", "model") and first_step.id != second_step.id
    assert request_check.outputs["stage"] == "input" and request_check.outputs["blocked"] is False
    assert answer_check.inputs == {"prompt": PERU, "response": "Here is what I found."}
    assert answer_check.outputs["stage"] == "output" and answer_check.outputs["blocked"] is False
    assert answer_check.outputs["labels"]["response_harmfulness"] == "unharmful"
    assert answer_check.start_time >= model_call(second_step).end_time  # judged once the model answered
    assert overlap(request_check, model_call(first_step))
    for check in (request_check, answer_check):
        assert seconds(check) >= 0.9 * CHECK_S
    # Beside the model call, the input check added max(check, model), not their sum, to its step.
    assert seconds(first_step) < seconds(request_check) + seconds(model_call(first_step))
    assert allowed["messages"][-1].content == "Here is what I found."


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_raised_violation_makes_the_guarded_step_an_error_run(mode, guard):
    collector = RunCollectorCallbackHandler()
    with pytest.raises(GuardReasonerViolation):
        await invoke(
            agent_with(guard, exit_behavior="error"), {"messages": [("user", BOMB)]}, mode, [collector]
        )
    [root] = collector.traced_runs
    [(step, check)] = checks(root)
    assert "GuardReasoner blocked the input" in step.error and "GuardReasoner blocked the input" in root.error
    assert check.error is None and check.outputs["blocked"] is True  # the check itself succeeded


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_guard_that_raises_ends_its_check_run_with_the_error(mode, make_guard):
    collector = RunCollectorCallbackHandler()
    agent = agent_with(make_guard(policy="raise"), parallel_input_check=False)
    with pytest.raises(GuardUndecidedError):
        await invoke(agent, {"messages": [("user", "garbled question")]}, mode, [collector])
    [(_, check)] = checks(collector.traced_runs[0])
    assert not check.outputs and "GuardUndecidedError" in check.error


def test_checks_in_one_guard_call_are_one_run_each(guard, engine):
    """With tool results judged, a step's tool results and request go to the guard in one call; each is
    its own run, with its own verdict."""
    agent = create_agent(
        ToolLoopChatModel(),
        tools=[search],
        middleware=[GuardReasonerMiddleware(guard, check_tool_results=True, parallel_input_check=False)],
    )
    collector = RunCollectorCallbackHandler()
    agent.invoke({"messages": [("user", PERU)]}, {"callbacks": [collector]})
    stages = [run.outputs["stage"] for _, run in checks(collector.traced_runs[0])]
    assert stages == ["input", "tool", "output"]
    [(_, tool_check)] = [(p, r) for p, r in checks(collector.traced_runs[0]) if r.outputs["stage"] == "tool"]
    assert tool_check.inputs == {"prompt": PERU, "response": f"Results for {PERU}."}


def test_the_readme_shows_this_agents_run_tree(guard):
    agent, collector = agent_with(guard), RunCollectorCallbackHandler()
    agent.invoke({"messages": [("user", BOMB)]}, {"callbacks": [collector]})
    agent.invoke({"messages": [("user", PERU)]}, {"callbacks": [collector]})
    rendered = run_tree(collector.traced_runs)
    [shown] = [block for block in fenced_blocks(README, "text") if "GuardReasoner  input: blocked" in block]
    assert canonical_tree(shown) == canonical_tree(rendered), rendered
    [(_, blocked)] = checks(collector.traced_runs[0])
    [outputs] = [json.loads(b) for b in fenced_blocks(README, "json") if '"stage": "input"' in b]
    assert outputs == blocked.outputs


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("parallel", [True, False])
async def test_a_streamed_agent_answers_checks_are_numbered_runs_of_its_model_step(
    mode, parallel, guard, streaming_model
):
    """``stream_mode="messages"`` (the middleware's buffered streaming): the request's check and each judged
    chunk's are runs under the model step, as for an answer judged whole."""
    answer = " ".join(f"word{i}" for i in range(40))
    middleware = GuardReasonerMiddleware(guard, stream_chunk_tokens=16, parallel_input_check=parallel)
    agent = create_agent(streaming_model(answer), tools=[], middleware=[middleware])
    collector = RunCollectorCallbackHandler()
    request, config = {"messages": [("user", PERU)]}, {"callbacks": [collector]}
    if mode == "sync":
        streamed = [chunk for chunk, _ in agent.stream(request, config, stream_mode="messages")]
    else:
        streamed = [chunk async for chunk, _ in agent.astream(request, config, stream_mode="messages")]
    assert "".join(str(chunk.content) for chunk in streamed) == answer
    found = checks(collector.traced_runs[0])
    assert {step.name for step, _ in found} == {"model"}
    outputs = [run.outputs for _, run in found]
    assert [(out["stage"], out.get("chunk")) for out in outputs] == [("input", None)] + [
        ("output", n)
        for n in (1, 2, 3)  # 16 + 16 words, then the last 8
    ]
    assert found[-1][1].inputs == {"prompt": PERU, "response": answer}


# -- guard_chain --------------------------------------------------------------------------------------


def _chain(model):
    return ChatPromptTemplate.from_messages([("human", "{question}")]) | model | StrOutputParser()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_guard_chain_checks_are_children_of_the_guarded_run_beside_the_chain(mode, timed_guard):
    model = RecordingChatModel(["Lima is the capital of Peru."], delay=0.05)
    guarded = guard_chain(_chain(model), timed_guard(CHECK_S), parallel_input_check=True)
    collector = RunCollectorCallbackHandler()
    assert await invoke(guarded, {"question": PERU}, mode, [collector]) == "Lima is the capital of Peru."
    [root] = collector.traced_runs
    assert root.name == "GuardedRunnableSequence"
    children = sorted(root.child_runs, key=lambda r: r.start_time)
    [inner] = [run for run in children if run.name == "RunnableSequence"]
    (parent_in, request), (parent_out, answer) = checks(root)
    assert parent_in.id == parent_out.id == root.id
    assert (request.outputs["stage"], answer.outputs["stage"]) == ("input", "output")
    assert overlap(request, inner) and answer.start_time >= inner.end_time
    assert answer.inputs == {"prompt": PERU, "response": "Lima is the capital of Peru."}
    assert seconds(request) >= 0.9 * CHECK_S


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_guard_chain_stream_checks_are_numbered_chunks(mode, guard):
    answer = "Lima is the capital of Peru and a fine city to visit."
    guarded = guard_chain(_chain(RecordingChatModel([answer])), guard, stream_chunk_tokens=4)
    collector = RunCollectorCallbackHandler()
    config = {"callbacks": [collector]}
    if mode == "sync":
        streamed = "".join(guarded.stream({"question": PERU}, config))
    else:
        streamed = "".join([chunk async for chunk in guarded.astream({"question": PERU}, config)])
    assert streamed == answer
    found = checks(collector.traced_runs[0])
    assert {parent.id for parent, _ in found} == {collector.traced_runs[0].id}
    assert found[0][1].outputs["stage"] == "input" and "chunk" not in found[0][1].outputs
    chunks = [run.outputs for _, run in found[1:]]
    assert [out["chunk"] for out in chunks] == list(range(1, len(chunks) + 1)) and len(chunks) >= 3
    assert {out["stage"] for out in chunks} == {"output"}
    assert found[-1][1].inputs["response"] == answer  # the last check read the whole answer


def test_guard_chain_blocked_input_is_a_check_run_and_an_error_run(guard):
    collector = RunCollectorCallbackHandler()
    with pytest.raises(GuardReasonerViolation):
        guard_chain(_chain(RecordingChatModel(["unused"])), guard).invoke(
            {"question": BOMB}, {"callbacks": [collector]}
        )
    [root] = collector.traced_runs
    [(parent, check)] = checks(root)
    assert parent.id == root.id and check.outputs["blocked"] is True
    assert "GuardReasoner blocked the input" in root.error
    assert [run.name for run in root.child_runs] == ["GuardReasoner"]  # the chain never ran


# -- GuardReasonerRunnable ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_the_guard_step_shows_its_verdict_as_a_child_run(mode, guard):
    prompt = ChatPromptTemplate.from_messages([("human", "{question}")])
    chain = prompt | GuardReasonerRunnable(guard) | RecordingChatModel(["Lima."])
    collector = RunCollectorCallbackHandler()
    await invoke(chain, {"question": PERU}, mode, [collector])
    with pytest.raises(GuardReasonerViolation):
        await invoke(chain, {"question": BOMB}, mode, [collector])
    allowed, blocked = collector.traced_runs
    [(step, passed)] = checks(allowed)
    assert step.name == "GuardReasonerRunnable" and step.error is None
    assert passed.outputs["blocked"] is False and passed.inputs["prompt"] == PERU
    [(step, flagged)] = checks(blocked)
    assert step.name == "GuardReasonerRunnable" and "GuardReasoner blocked the input" in step.error
    assert flagged.outputs["blocked"] is True and flagged.outputs["labels"]["prompt_harmfulness"] == "harmful"


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_batch_is_one_guard_call_and_one_check_run_under_each_inputs_run(mode, guard, engine):
    step = GuardReasonerRunnable(guard, return_verdict=True)
    collector = RunCollectorCallbackHandler()
    values = [PERU, BOMB, "Name a river."]
    config = {"callbacks": [collector]}
    verdicts = step.batch(values, config) if mode == "sync" else await step.abatch(values, config)
    assert [len(prompts) for prompts in engine.calls] == [3]  # one guard call for the batch
    roots = {root.inputs["input"]: root for root in collector.traced_runs}
    assert sorted(roots) == sorted(values)
    for value, verdict in zip(values, verdicts):
        [(parent, check)] = checks(roots[value])
        assert parent.id == roots[value].id and check.inputs["prompt"] == value
        assert check.outputs["blocked"] is (not verdict.is_safe) is (value == BOMB)


# -- the enforcing callback handler -------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_the_enforcing_handlers_checks_are_runs_beside_the_model_call(mode, guard):
    handler_class = GuardReasonerCallbackHandler if mode == "sync" else AsyncGuardReasonerCallbackHandler
    handler = handler_class(guard, enforce=True, sink=lambda record: None)
    chain = _chain(RecordingChatModel(["Lima is the capital of Peru.", "unused"]))
    collector = RunCollectorCallbackHandler()
    await invoke(chain, {"question": PERU}, mode, [collector, handler])
    with pytest.raises(GuardReasonerViolation):
        await invoke(chain, {"question": BOMB}, mode, [collector, handler])
    handler.close()
    allowed, blocked = collector.traced_runs
    (parent_in, request), (parent_out, answer) = checks(allowed)
    assert parent_in.id == parent_out.id == allowed.id  # the sequence: the step that called the model
    model = model_call(allowed)
    assert request.start_time <= model.start_time or overlap(request, model)
    assert (request.outputs["stage"], answer.outputs["stage"]) == ("input", "output")
    assert answer.inputs == {"prompt": PERU, "response": "Lima is the capital of Peru."}
    [(_, flagged)] = checks(blocked)
    assert flagged.outputs["blocked"] is True and "GuardReasoner blocked the input" in blocked.error


def test_a_model_called_on_its_own_has_no_step_to_show_the_check_in(guard):
    handler = GuardReasonerCallbackHandler(guard, enforce=True, sink=lambda record: None)
    collector = RunCollectorCallbackHandler()
    message = RecordingChatModel(["Lima."]).invoke(PERU, {"callbacks": [collector, handler]})
    handler.close()
    assert [run.name for run in collector.traced_runs] == ["RecordingChatModel"]
    assert checks(collector.traced_runs[0]) == []
    assert message.response_metadata["guardreasoner"]["verdict"]["response_harmfulness"] == "unharmful"


# -- privacy ------------------------------------------------------------------------------------------


def test_conversation_text_is_in_a_checks_inputs_only(guard):
    agent, collector = agent_with(guard), RunCollectorCallbackHandler()
    agent.invoke({"messages": [("user", BOMB)]}, {"callbacks": [collector]})
    agent.invoke({"messages": [("user", PERU)]}, {"callbacks": [collector]})
    found = [run for root in collector.traced_runs for _, run in checks(root)]
    assert len(found) == 3
    for run in found:
        shown = json.dumps([run.outputs, run.metadata, run.extra], default=str)
        assert "bomb" not in shown.lower() and "Peru" not in shown and "found" not in shown
        assert run.inputs["prompt"] in (BOMB, PERU)


# -- the same agent run in LangChain's run tree and in OpenTelemetry at once ---------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_an_agent_runs_checks_are_runs_spans_and_metrics_at_once(mode, timed_guard, otel):
    """Issue 24's whole claim on one agent: a blocked and an allowed turn, each check a GuardReasoner run in
    LangChain's tracer and a ``guardreasoner.classify`` span under the application's own request span (the
    caller's context crosses LangGraph's threads), with the verdict, and the latency it added counted."""
    guard = timed_guard(CHECK_S)
    agent, collector = agent_with(guard), RunCollectorCallbackHandler()
    for turn in (BOMB, PERU):
        with otel.tracer.start_as_current_span(f"request: {turn}"):
            await invoke(agent, {"messages": [("user", turn)]}, mode, [collector])
    runs = [check for root in collector.traced_runs for _, check in checks(root)]
    spans = sorted(otel.spans("guardreasoner.classify"), key=lambda span: span.start_time)
    requests = {span.name: span for span in otel.spans() if span.name.startswith("request: ")}

    assert len(runs) == len(spans) == 3  # the bomb's input; Peru's input and its answer
    for run, span in zip(runs, spans):
        prompt = run.inputs["prompt"]
        assert span.parent.span_id == requests[f"request: {prompt}"].context.span_id
        for field, label in run.outputs["labels"].items():
            assert span.attributes[f"guardreasoner.{field}"] == label
        assert span.attributes["guardreasoner.is_harmful"] is run.outputs["is_harmful"]
        added = (span.end_time - span.start_time) / 1e9  # what the check added, as the span measured it
        assert 0.9 * CHECK_S <= added <= seconds(run) + 0.01
    assert [span.attributes["guardreasoner.is_harmful"] for span in spans] == [True, False, False]

    counted = Counter()  # one point per attribute set: a request alone, or a request with its answer
    for point in otel.points("guardreasoner.verdicts"):
        counted[point.attributes["guardreasoner.is_harmful"]] += point.value
    assert counted == {True: 1, False: 2}
    (duration,) = otel.points("guardreasoner.classify.duration")
    assert duration.count == 3 and duration.sum >= 3 * 0.9 * CHECK_S
