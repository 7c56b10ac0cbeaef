"""What a LangChain refusal looks like: a message saying the refusal text (raising, or the text, is
:meth:`guardreasoner.integrations.Guarding.refuse`'s), with the stage and the full verdict under
``response_metadata["guardreasoner"]``.
"""

from __future__ import annotations

from typing import Any

from guardreasoner import Verdict
from guardreasoner.integrations import violation_metadata
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage

from langchain_guardreasoner._messages import Stage


def with_refusal(
    message: BaseMessage, text: str, verdict: Verdict, stage: Stage, **update: Any
) -> BaseMessage:
    """A copy of ``message`` saying ``text``, the verdict in its metadata (``response_metadata`` for AI
    messages, ``additional_kwargs`` for others, which have no response metadata)."""
    key = "response_metadata" if isinstance(message, AIMessage) else "additional_kwargs"
    metadata = {**getattr(message, key), "guardreasoner": violation_metadata(verdict, stage)}
    return message.model_copy(update={"content": text, key: metadata, **update})


def refusal_message(text: str, verdict: Verdict, stage: Stage, **fields: Any) -> AIMessage:
    """A new AI message saying ``text``, with the stage and the full verdict in its response metadata
    (``fields``: more of the message's fields, such as its ``id``)."""
    metadata = {"guardreasoner": violation_metadata(verdict, stage)}
    return AIMessage(content=text, response_metadata=metadata, **fields)


def refusal_chunk(text: str, verdict: Verdict, stage: Stage, **fields: Any) -> AIMessageChunk:
    """:func:`refusal_message` as a streamed chunk (the end of a guarded stream)."""
    metadata = {"guardreasoner": violation_metadata(verdict, stage)}
    return AIMessageChunk(content=text, response_metadata=metadata, **fields)
