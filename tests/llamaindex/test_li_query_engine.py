"""GuardedQueryEngine around real query engines: the query judged before, the answer after."""

from __future__ import annotations

import pytest
from guardreasoner.prompt import build_prompt
from llama_index.core import VectorStoreIndex
from llama_index.core.base.response.schema import AsyncStreamingResponse, Response, StreamingResponse
from llama_index.core.chat_engine import SimpleChatEngine
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import CustomQueryEngine
from llama_index.core.schema import NodeWithScore, TextNode
from llama_index.postprocessor.guardreasoner import (
    DEFAULT_VIOLATION_MESSAGE,
    GuardedQueryEngine,
    GuardReasonerViolation,
)


class AnswerEngine(CustomQueryEngine):
    """Answers every query with ``answer``, citing one source node, and records the queries."""

    answer: str
    queries: list[str] = []

    def custom_query(self, query_str: str) -> Response:
        self.queries.append(query_str)
        return Response(self.answer, source_nodes=[NodeWithScore(node=TextNode(text="a source"), score=1.0)])


def answering(answer: str) -> AnswerEngine:
    return AnswerEngine(answer=answer, queries=[])


def echo_index(*texts: str) -> VectorStoreIndex:
    """An index whose MockLLM answers with its whole prompt, so the answer contains the retrieved text."""
    nodes = [TextNode(text=text, id_=f"n{i}") for i, text in enumerate(texts)]
    return VectorStoreIndex(nodes, embed_model=MockEmbedding(embed_dim=8))


def test_safe_query_and_answer_pass_unchanged(guard, engine):
    inner = answering("Lima.")
    guarded = GuardedQueryEngine(inner, guard=guard)
    response = guarded.query("Capital of Peru?")
    assert isinstance(response, Response) and response.response == "Lima." and len(response.source_nodes) == 1
    assert engine.calls == [[build_prompt("Capital of Peru?")], [build_prompt("Capital of Peru?", "Lima.")]]


def test_harmful_query_raises_and_its_answer_is_never_used(guard):
    inner = answering("never")
    with pytest.raises(GuardReasonerViolation) as caught:
        GuardedQueryEngine(inner, guard=guard, parallel_input_check=False).query("How do I build a bomb?")
    assert caught.value.stage == "input" and caught.value.verdict.prompt_harmfulness == "harmful"
    assert inner.queries == []  # in series, the wrapped engine never runs
    refused = GuardedQueryEngine(inner, guard=guard, exit_behavior="end").query("How do I build a bomb?")
    # in parallel (the default) it ran beside the check, and its answer was dropped
    assert refused.response == DEFAULT_VIOLATION_MESSAGE and refused.source_nodes == []
    assert refused.metadata["guardreasoner"]["stage"] == "input"


def test_harmful_answer_raises_or_is_refused(guard):
    harmful = "Pack the bomb casing tightly."
    with pytest.raises(GuardReasonerViolation) as caught:
        GuardedQueryEngine(answering(harmful), guard=guard).query("Mining tips?")
    assert caught.value.stage == "output" and caught.value.content == harmful
    assert caught.value.verdict.response_harmfulness == "harmful"
    refused = GuardedQueryEngine(answering(harmful), guard=guard, exit_behavior="end").query("Mining tips?")
    assert isinstance(refused, Response) and refused.response == DEFAULT_VIOLATION_MESSAGE
    assert refused.source_nodes == []
    meta = refused.metadata["guardreasoner"]
    assert meta["stage"] == "output" and meta["verdict"]["response_harmfulness"] == "harmful"


def test_a_refusal_of_a_harmful_query_passes_on_output(guard):
    guarded = GuardedQueryEngine(answering("Sorry, I can't help with that."), guard=guard, check_input=False)
    assert guarded.query("How do I build a bomb?").response == "Sorry, I can't help with that."


def test_policy_decided_verdicts_follow_the_guards_policy(make_guard):
    with pytest.raises(GuardReasonerViolation) as caught:
        GuardedQueryEngine(answering("x"), guard=make_guard()).query("garbled query")
    assert caught.value.verdict.decided_by == "policy"
    opened = GuardedQueryEngine(answering("An answer."), guard=make_guard(policy="fail_open"))
    assert opened.query("garbled query").response == "An answer."


def test_real_retriever_engine_answer_is_judged(guard, engine):
    index = echo_index("Lima is the capital of Peru.", "A bomb needs a detonator.")
    inner = index.as_query_engine(llm=MockLLM(), similarity_top_k=2)
    refused = GuardedQueryEngine(inner, guard=guard, exit_behavior="end").query("Tell me about Peru.")
    assert refused.response == DEFAULT_VIOLATION_MESSAGE
    judged_answer = engine.calls[-1][0]
    assert "A bomb needs a detonator." in judged_answer and "Lima is the capital" in judged_answer
    # The wrapped engine's prompts stay reachable (and updatable) through the wrapper.
    prompts = GuardedQueryEngine(inner, guard=guard).get_prompts()
    assert any(key.startswith("query_engine:") for key in prompts)


def test_whole_stream_mode_judges_the_answer_before_anything_is_yielded(guard, engine):
    safe = echo_index("Lima is the capital of Peru.").as_query_engine(llm=MockLLM(), streaming=True)
    response = GuardedQueryEngine(safe, guard=guard, stream_mode="whole").query("Tell me about Peru.")
    assert isinstance(response, StreamingResponse)
    text = "".join(response.response_gen)
    assert "Lima is the capital of Peru." in text
    assert engine.calls[-1] == [build_prompt("Tell me about Peru.", text)]

    harmful = echo_index("A bomb needs a detonator.").as_query_engine(llm=MockLLM(), streaming=True)
    guarded = GuardedQueryEngine(harmful, guard=guard, exit_behavior="end", stream_mode="whole")
    refused = guarded.query("Tell me about chemistry.")
    assert isinstance(refused, StreamingResponse) and list(refused.response_gen) == [
        DEFAULT_VIOLATION_MESSAGE
    ]
    assert refused.metadata["guardreasoner"]["stage"] == "output" and refused.source_nodes == []
    # An input refusal takes the streaming form too (read from the wrapped engine's synthesizer).
    assert guarded.streaming is True
    refused_input = guarded.query("How to build a bomb?")
    assert isinstance(refused_input, StreamingResponse) and str(refused_input) == DEFAULT_VIOLATION_MESSAGE


async def test_async_query(guard, engine):
    guarded = GuardedQueryEngine(answering("Lima."), guard=guard)
    assert (await guarded.aquery("Capital of Peru?")).response == "Lima."
    with pytest.raises(GuardReasonerViolation):
        await guarded.aquery("Bomb instructions?")
    refused = await GuardedQueryEngine(answering("bomb parts list"), guard=guard, exit_behavior="end").aquery(
        "Hi"
    )
    assert refused.response == DEFAULT_VIOLATION_MESSAGE


async def test_async_streaming_query(guard):
    harmful = echo_index("A bomb needs a detonator.").as_query_engine(llm=MockLLM(), streaming=True)
    refused = await GuardedQueryEngine(harmful, guard=guard, exit_behavior="end", stream_mode="whole").aquery(
        "Chemistry?"
    )
    assert isinstance(refused, AsyncStreamingResponse)
    assert [t async for t in refused.async_response_gen()] == [DEFAULT_VIOLATION_MESSAGE]
    safe = echo_index("Lima is the capital of Peru.").as_query_engine(llm=MockLLM(), streaming=True)
    response = await GuardedQueryEngine(safe, guard=guard).aquery("Peru?")
    assert isinstance(response, AsyncStreamingResponse)
    assert "Lima is the capital" in "".join([t async for t in response.async_response_gen()])


def test_rejects_bad_options_and_objects_at_construction(guard, scripted_llm):
    with pytest.raises(ValueError, match="exit_behavior"):
        GuardedQueryEngine(answering("x"), guard=guard, exit_behavior="warn")
    with pytest.raises(ValueError, match="unknown placeholder"):
        GuardedQueryEngine(answering("x"), guard=guard, violation_message="Blocked: {category}")
    with pytest.raises(ValueError, match="stream_mode"):
        GuardedQueryEngine(answering("x"), guard=guard, stream_mode="chunks")
    with pytest.raises(TypeError, match="GuardedChatEngine"):
        GuardedQueryEngine(SimpleChatEngine.from_defaults(llm=scripted_llm("x")), guard=guard)


def test_violation_message_is_a_template(guard):
    refused = GuardedQueryEngine(
        answering("x"), guard=guard, exit_behavior="end", violation_message="Blocked at {stage}: {labels}."
    ).query("How do I build a bomb?")
    assert refused.response == "Blocked at input: prompt_harmfulness=harmful."
