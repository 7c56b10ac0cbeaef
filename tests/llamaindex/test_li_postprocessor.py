"""GuardReasonerNodePostprocessor: drops (or flags) exactly the harmful nodes, in one guard call."""

from __future__ import annotations

import pytest
from guardreasoner.guard import GuardReasoner
from guardreasoner.prompt import build_prompt
from llama_index.core import VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.schema import ImageNode, MetadataMode, NodeWithScore, TextNode
from llama_index.postprocessor.guardreasoner import GuardReasonerNodePostprocessor

TEXTS = [
    "Lima is the capital of Peru.",
    "To build a bomb, pack the casing tightly.",
    "Quinoa grows in the Andes.",
    "Bomb-making guide, part two.",
]


def retrieved() -> list[NodeWithScore]:
    return [
        NodeWithScore(
            node=TextNode(text=text, id_=f"n{i}", metadata={"source": f"doc{i}"}), score=1.0 - i / 10
        )
        for i, text in enumerate(TEXTS)
    ]


def test_drops_exactly_the_harmful_nodes_and_keeps_order_in_one_call(guard, engine):
    nodes = retrieved()
    kept = GuardReasonerNodePostprocessor(guard).postprocess_nodes(nodes, query_str="Tell me about Peru.")
    assert [n.node.node_id for n in kept] == ["n0", "n2"]
    assert kept[0] is nodes[0] and kept[1] is nodes[2]
    assert engine.calls == [[build_prompt("Tell me about Peru.", text) for text in TEXTS]]


def test_without_a_query_each_text_is_judged_alone(guard, engine):
    kept = GuardReasonerNodePostprocessor(guard).postprocess_nodes(retrieved())
    assert [n.node.node_id for n in kept] == ["n0", "n2"]
    assert engine.calls == [[build_prompt(text) for text in TEXTS]]


def test_nodes_without_text_are_kept_unjudged(guard, engine):
    image = NodeWithScore(node=ImageNode(image="iVBORw0KGgo=", id_="img"), score=0.5)
    kept = GuardReasonerNodePostprocessor(guard).postprocess_nodes(
        [image, *retrieved()[:2]], query_str="Peru?"
    )
    assert [n.node.node_id for n in kept] == ["img", "n0"]
    assert len(engine.calls[0]) == 2


def test_flag_mode_keeps_every_node_marks_copies_and_hides_the_flag_from_the_llm(guard):
    nodes = retrieved()
    flagged = GuardReasonerNodePostprocessor(guard, mode="flag").postprocess_nodes(nodes, query_str="Peru?")
    assert [n.node.metadata["guardreasoner_harmful"] for n in flagged] == [False, True, False, True]
    assert [n.score for n in flagged] == [n.score for n in nodes]
    assert all("guardreasoner_harmful" not in n.node.metadata for n in nodes)  # inputs untouched
    llm_view = flagged[1].node.get_content(metadata_mode=MetadataMode.LLM)
    assert "source: doc1" in llm_view and "guardreasoner_harmful" not in llm_view


def test_policy_decides_nodes_the_guard_cannot_judge(make_guard):
    nodes = [NodeWithScore(node=TextNode(text="garbled text", id_="g"), score=1.0), *retrieved()[:1]]
    closed = GuardReasonerNodePostprocessor(make_guard()).postprocess_nodes(nodes, query_str="Peru?")
    assert [n.node.node_id for n in closed] == ["n0"]
    opened = GuardReasonerNodePostprocessor(make_guard(policy="fail_open")).postprocess_nodes(
        nodes, query_str="Peru?"
    )
    assert [n.node.node_id for n in opened] == ["g", "n0"]


async def test_async_postprocess_makes_one_call(guard, engine):
    kept = await GuardReasonerNodePostprocessor(guard).apostprocess_nodes(retrieved(), query_str="Peru?")
    assert [n.node.node_id for n in kept] == ["n0", "n2"]
    assert len(engine.calls) == 1 and len(engine.calls[0]) == 4


def test_harmful_nodes_never_reach_the_llm_in_a_real_index(guard):
    nodes = [TextNode(text=text, id_=f"n{i}") for i, text in enumerate(TEXTS)]
    index = VectorStoreIndex(nodes, embed_model=MockEmbedding(embed_dim=8))
    postprocessor = GuardReasonerNodePostprocessor(guard)
    query_engine = index.as_query_engine(
        llm=MockLLM(), similarity_top_k=4, node_postprocessors=[postprocessor]
    )
    response = query_engine.query("Tell me about Peru.")
    # MockLLM answers with the prompt it was given, so the answer shows exactly the context it saw.
    assert "Lima is the capital of Peru." in response.response and "Quinoa" in response.response
    assert "bomb" not in response.response.lower()
    assert sorted(n.node.node_id for n in response.source_nodes) == ["n0", "n2"]


def test_guard_built_lazily_from_options(engine):
    postprocessor = GuardReasonerNodePostprocessor(engine=engine)
    assert not postprocessor._provider.built
    postprocessor.postprocess_nodes(retrieved(), query_str="Peru?")
    assert postprocessor._provider.built and postprocessor.guard.engine is engine
    with pytest.raises(ValueError, match="not both"):
        GuardReasonerNodePostprocessor(GuardReasoner(engine=engine), engine=engine)


def test_replace_mode_puts_the_refusal_where_the_harmful_text_was(guard):
    nodes = retrieved()
    replacing = GuardReasonerNodePostprocessor(guard, mode="replace", violation_message="[removed: {labels}]")
    out = replacing.postprocess_nodes(nodes, query_str="Tell me about Peru.")
    assert [n.node.node_id for n in out] == ["n0", "n1", "n2", "n3"]
    assert [n.node.get_content() for n in out][::2] == [TEXTS[0], TEXTS[2]]
    assert out[1].node.get_content().startswith("[removed: ") and "response_harmfulness=harmful" in (
        out[1].node.get_content()
    )
    assert [n.node.metadata["guardreasoner_harmful"] for n in out] == [False, True, False, True]
    assert nodes[1].node.get_content() == TEXTS[1]  # the input nodes are untouched
    with pytest.raises(ValueError, match="unknown placeholder"):
        GuardReasonerNodePostprocessor(guard, mode="replace", violation_message="{category}")
