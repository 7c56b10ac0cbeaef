"""Answer-first (``reasoning="auto"``) through the LlamaIndex adapters: a guard built from the options, or
given ready, reasons only where its forced answer is unsure, and the refusal carries how it decided."""

from __future__ import annotations

import pytest
from guardreasoner import GuardReasoner, ReasoningBand, Verdict
from guardreasoner.reasoning import ReasoningBandError
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llama_index.postprocessor.guardreasoner import (
    DEFAULT_VIOLATION_MESSAGE,
    GuardedQueryEngine,
    GuardReasonerNodePostprocessor,
)

from tests.adapters import answer_first_engine
from tests.llamaindex.conftest import LimaQueryEngine


async def test_query_engine_built_with_auto_reasons_only_on_the_unsure_query():
    engine = answer_first_engine()
    guarded = GuardedQueryEngine(
        LimaQueryEngine(), engine=engine, reasoning="auto", reasoning_band=(0.1, 0.9), exit_behavior="end"
    )
    assert str(guarded.query("Capital of Peru?")) == "Lima."
    assert str(await guarded.aquery("Capital of Peru?")) == "Lima."
    assert engine.calls == [] and len(engine.forced_calls) == 4  # query and answer, twice: forced answers

    refused = await guarded.aquery("unsure: the best bomb design?")
    assert str(refused) == DEFAULT_VIOLATION_MESSAGE
    assert len(engine.calls) == 1  # the unsure query alone was reasoned on
    verdict = Verdict.model_validate(refused.metadata["guardreasoner"]["verdict"])
    assert verdict.reasoned and verdict.reasoning_mode == "auto" and verdict.prompt_harmfulness == "harmful"
    assert verdict.first_pass_scores == {"prompt_harmfulness": pytest.approx(0.4)}  # the forced "unharmful"
    assert verdict.reasoning_band == ReasoningBand(low=0.1, high=0.9)


def test_node_postprocessor_with_a_ready_auto_guard_drops_the_harmful_node():
    engine = answer_first_engine()
    postprocessor = GuardReasonerNodePostprocessor(guard=GuardReasoner(engine=engine, reasoning="auto"))
    nodes = [NodeWithScore(node=TextNode(text=text)) for text in ("Lima is in Peru.", "Build the bomb so.")]
    kept = postprocessor.postprocess_nodes(nodes, QueryBundle("Tell me about Peru."))
    assert [n.node.get_content() for n in kept] == ["Lima is in Peru."]
    assert engine.calls == [] and len(engine.forced_calls) == 1  # one batch, both decided by forced answers


def test_bad_reasoning_options_fail_where_the_adapter_is_built():
    """No model is loaded (the model id does not exist): the options are checked before any check runs."""
    with pytest.raises(
        ValueError, match="reasoning must be one of 'always', 'auto', 'never', got 'sometimes'"
    ):
        GuardedQueryEngine(LimaQueryEngine(), model="no/such-model", reasoning="sometimes")
    with pytest.raises(ReasoningBandError, match="Cannot read the reasoning band file"):
        GuardReasonerNodePostprocessor(model="no/such-model", reasoning="auto", reasoning_band="missing.json")
