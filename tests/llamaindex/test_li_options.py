"""Each guarded LlamaIndex wrapper applies every guard option it is given (none falls back to a default)."""

from __future__ import annotations

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.postprocessor.guardreasoner import GuardedAgent, GuardedChatEngine, GuardedQueryEngine

from tests.adapters import assert_options_applied
from tests.llamaindex.conftest import LightQueryEngine, simple_chat_engine

# Each differs from the wrapper's default, so an option that did not reach the guard would show.
SHARED = {
    "check_input": False,
    "check_output": False,
    "exit_behavior": "replace",
    "violation_message": "No ({stage}).",
    "stream_mode": "whole",
    "stream_chunk_tokens": 7,
}


def wrapped_by(cls: type, llm) -> object:
    """What ``cls`` wraps, on ``llm``: a query engine, a chat engine or an agent."""
    if cls is GuardedQueryEngine:
        return LightQueryEngine(llm=llm)
    if cls is GuardedChatEngine:
        return simple_chat_engine(llm)
    return FunctionAgent(tools=[], llm=llm)


@pytest.mark.parametrize(
    ("cls", "options"),
    [
        (GuardedQueryEngine, {**SHARED, "parallel_input_check": False}),
        (GuardedChatEngine, {**SHARED, "parallel_input_check": True, "history_window": 2}),
        (GuardedAgent, {**SHARED, "parallel_input_check": False, "history_window": 2}),
    ],
    ids=["query_engine", "chat_engine", "agent"],
)
def test_every_option_given_is_applied(guard, tool_llm, cls, options):
    wrapper = cls(wrapped_by(cls, tool_llm("Lima.")), guard=guard, **options)
    assert_options_applied(wrapper, options)
