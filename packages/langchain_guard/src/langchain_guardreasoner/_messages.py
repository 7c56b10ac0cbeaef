"""Reading LangChain messages as the guard's ``(prompt, response)``.

Nothing here judges content: the verdict comes from :class:`guardreasoner.GuardReasoner` and its failure
policy. Multi-turn message lists are folded by :func:`guardreasoner.integrations.fold_history`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from guardreasoner import InvalidInputError
from guardreasoner.integrations import DEFAULT_HISTORY_TURNS, fold_history
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, convert_to_messages
from langchain_core.prompt_values import PromptValue

Stage = Literal["input", "output", "tool"]
"""Where a LangChain adapter judged content: the user's request, the AI's response, a tool result."""


def message_text(message: BaseMessage | str | None) -> str | None:
    """A message's text: string content as is, multi-part content as its text parts joined (images and
    other non-text parts are skipped). None when there is no text."""
    if message is None:
        return None
    text = message if isinstance(message, str) else str(message.text)
    return text if text.strip() else None


def last_index(
    messages: Sequence[BaseMessage], kind: type[BaseMessage], before: int | None = None
) -> int | None:
    """Index of the last message of ``kind`` (before index ``before``, when given)."""
    end = len(messages) if before is None else before
    for index in range(end - 1, -1, -1):
        if isinstance(messages[index], kind):
            return index
    return None


def conversation_of(value: Any, *, history_window: int = DEFAULT_HISTORY_TURNS) -> tuple[str, str | None]:
    """``(prompt, response)`` from a str, a message, a message list, a PromptValue or a mapping.

    - a str or a :class:`HumanMessage`: the prompt alone;
    - a message list (messages, ``("human", "...")`` tuples or role dicts) or a PromptValue: the prompt is the
      last human message, with up to ``history_window`` earlier human/AI turns folded in ahead of it
      (:func:`~guardreasoner.integrations.fold_history`); the response is the last AI message after it, if
      any (system and tool messages are not shown to the guard);
    - a mapping: ``{"prompt": ..., "response": ...}`` (each a str or a message) or ``{"messages": [...]}``;
      other keys are ignored (they pass through).
    """
    if isinstance(value, str):
        return value, None
    if isinstance(value, HumanMessage):
        return _required(message_text(value), "The human message"), None
    if isinstance(value, BaseMessage):
        raise InvalidInputError(
            f"A lone {type(value).__name__} has no user request to judge it against: pass a message list "
            "ending with the conversation, or {'prompt': ..., 'response': ...}."
        )
    if isinstance(value, PromptValue):
        return messages_conversation(value.to_messages(), history_window)
    if isinstance(value, Mapping):
        if "prompt" in value:
            prompt = _required(message_text(value["prompt"]), "The 'prompt'")
            return prompt, message_text(value.get("response"))
        if "messages" in value:
            return messages_conversation(convert_to_messages(value["messages"]), history_window)
        raise InvalidInputError(
            f"A mapping given to the guard needs a 'prompt' key (and optionally 'response') or a 'messages' "
            f"key; got keys {sorted(value)}."
        )
    if isinstance(value, Sequence):
        return messages_conversation(convert_to_messages(value), history_window)
    raise InvalidInputError(
        f"The guard cannot read a {type(value).__name__}: pass a str, a message list, a PromptValue, or "
        "{'prompt': ..., 'response': ...}."
    )


def messages_conversation(
    messages: Sequence[BaseMessage], history_window: int = DEFAULT_HISTORY_TURNS
) -> tuple[str, str | None]:
    """``(prompt, response)`` of a message list: its last human message (with ``history_window`` earlier
    turns folded in) and the last AI message after it, if any."""
    human = last_index(messages, HumanMessage)
    if human is None or message_text(messages[human]) is None:
        raise InvalidInputError(
            "The messages hold no human message with text: the guard needs the user's request."
        )
    turns = [
        ("user" if isinstance(message, HumanMessage) else "assistant", message_text(message))
        for message in messages
        if isinstance(message, (HumanMessage, AIMessage))
    ]
    return fold_history(turns, window=history_window)


def _required(text: str | None, what: str) -> str:
    if text is None:
        raise InvalidInputError(f"{what} has no text for the guard to classify.")
    return text
