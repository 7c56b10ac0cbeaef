"""Fake chat models that record their input (the scripted guard is in tests/conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage


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
