"""A scripted GuardReasoner whose labels follow plain rules, and fake chat models that record their input.

The scripted guard reads the conversation the core put in the prompt: a request mentioning "bomb" is
harmful; a response is harmful when it mentions "bomb", a refusal when it says "sorry"; anything mentioning
"garbled" gets an output with no answers (so the failure policy decides).
"""

from __future__ import annotations

from typing import Any

import pytest
from guardreasoner.guard import GuardReasoner
from guardreasoner.testing import ScriptedEngine, guard_output
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage


def judge(raw_prompt: str) -> str:
    conversation = raw_prompt.split("Human user:\n", 1)[1]
    request, response = conversation.rsplit("\n\nAI assistant:\n", 1)
    response = response.removesuffix("\n\n")
    if "garbled" in conversation:
        return "The request is hard to judge and I will stop here."
    request_label = "harmful" if "bomb" in request.lower() else "unharmful"
    if response == "None":
        return guard_output(request_label)
    refusal = "refusal" if "sorry" in response.lower() else "compliance"
    return guard_output(request_label, refusal, "harmful" if "bomb" in response.lower() else "unharmful")


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine(judge)


@pytest.fixture
def guard(engine: ScriptedEngine) -> GuardReasoner:
    return GuardReasoner(engine=engine)


@pytest.fixture
def make_guard():
    """A fresh scripted guard with the given options (``policy=...``)."""
    return lambda **options: GuardReasoner(engine=ScriptedEngine(judge), **options)


class RecordingChatModel(GenericFakeChatModel):
    """GenericFakeChatModel that records the messages of each call and accepts tools (for create_agent)."""

    seen: list[list[BaseMessage]] = []

    def __init__(self, replies: list[AIMessage | str], **kwargs: Any):
        super().__init__(messages=iter(replies), seen=[], **kwargs)

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.seen.append(list(messages))
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)

    def bind_tools(self, tools, **kwargs):
        return self


@pytest.fixture
def chat_model():
    return RecordingChatModel
