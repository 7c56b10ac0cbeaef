"""guard_chain and GuardReasonerMiddleware apply every guard option they are given, and check it at once."""

from __future__ import annotations

import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_guardreasoner import GuardReasonerMiddleware, guard_chain

from tests.adapters import assert_options_applied

# Each differs from the wrapper's default, so an option that did not reach the guard would show.
SHARED = {
    "check_input": False,
    "check_output": False,
    "violation_message": "No ({stage}).",
    "history_window": 2,
}


def test_every_option_given_to_guard_chain_is_applied(guard, chat_model):
    options = {
        **SHARED,
        "exit_behavior": "replace",
        "parallel_input_check": True,
        "stream_mode": "whole",
        "stream_chunk_tokens": 7,
    }
    assert_options_applied(guard_chain(chat_model(["Lima."]) | StrOutputParser(), guard, **options), options)


def test_every_option_given_to_the_middleware_is_applied(guard):
    options = {
        **SHARED,
        "exit_behavior": "error",
        "parallel_input_check": False,
        "stream_mode": "passthrough",
        "stream_chunk_tokens": 9,
    }
    assert_options_applied(GuardReasonerMiddleware(guard=guard, **options), options)


def test_a_negative_history_window_is_refused_when_the_wrapper_is_built(guard, chat_model):
    with pytest.raises(ValueError, match="history_window must be >= 0"):
        GuardReasonerMiddleware(guard=guard, history_window=-1)
    with pytest.raises(ValueError, match="history_window must be >= 0"):
        guard_chain(chat_model(["Lima."]), guard, history_window=-1)
