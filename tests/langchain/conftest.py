"""Fake chat models that record their input, and a timed one (the scripted guard is in tests/conftest.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage


class RecordingChatModel(GenericFakeChatModel):
    """GenericFakeChatModel that records the messages of each call and accepts tools (for create_agent).

    ``delay`` seconds pass before each answer, and ``token_delay`` before each streamed chunk (the content
    is streamed word by word, spaces as their own chunks, as GenericFakeChatModel does)."""

    seen: list[list[BaseMessage]] = []
    delay: float = 0.0
    token_delay: float = 0.0
    streamed: int = 0
    """Chunks the model produced while streaming (not what reached the consumer)."""

    def __init__(self, replies: list[AIMessage | str], **kwargs: Any):
        super().__init__(messages=iter(replies), seen=[], **kwargs)

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.seen.append(list(messages))
        time.sleep(self.delay)
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)

    async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs):
        self.seen.append(list(messages))
        await asyncio.sleep(self.delay)
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        for chunk in super()._stream(messages, stop=stop, run_manager=run_manager, **kwargs):
            time.sleep(self.token_delay)
            self.streamed += 1
            yield chunk

    def bind_tools(self, tools, **kwargs):
        return self


@pytest.fixture
def chat_model():
    return RecordingChatModel
