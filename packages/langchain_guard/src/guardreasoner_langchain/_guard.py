"""What the LangChain adapters share: their stages and reading LangChain messages as text.

Nothing here judges content: the verdict comes from :class:`guardreasoner.GuardReasoner` and its failure
policy; this module only turns LangChain messages into ``(prompt, response)``. The framework-neutral pieces
(the guard given or built lazily, the block rule, the base error) are in :mod:`guardreasoner.integrations`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from guardreasoner import InvalidInputError
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, convert_to_messages
from langchain_core.prompt_values import PromptValue

Stage = Literal["input", "output", "tool"]


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


def conversation_of(value: Any) -> tuple[str, str | None]:
    """``(prompt, response)`` from a str, a message, a message list, a PromptValue or a mapping.

    - a str or a :class:`HumanMessage`: the prompt alone;
    - a message list (messages, ``("human", "...")`` tuples or role dicts) or a PromptValue: the prompt is the
      last human message; the response is the last AI message after it, if any (system and tool messages
      are not shown to the guard);
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
        return _from_messages(value.to_messages())
    if isinstance(value, Mapping):
        if "prompt" in value:
            prompt = _required(message_text(value["prompt"]), "The 'prompt'")
            return prompt, message_text(value.get("response"))
        if "messages" in value:
            return _from_messages(convert_to_messages(value["messages"]))
        raise InvalidInputError(
            f"A mapping given to the guard needs a 'prompt' key (and optionally 'response') or a 'messages' "
            f"key; got keys {sorted(value)}."
        )
    if isinstance(value, Sequence):
        return _from_messages(convert_to_messages(value))
    raise InvalidInputError(
        f"The guard cannot read a {type(value).__name__}: pass a str, a message list, a PromptValue, or "
        "{'prompt': ..., 'response': ...}."
    )


def _from_messages(messages: Sequence[BaseMessage]) -> tuple[str, str | None]:
    human = last_index(messages, HumanMessage)
    if human is None:
        raise InvalidInputError("The messages hold no human message: the guard needs the user's request.")
    prompt = _required(message_text(messages[human]), "The last human message")
    ai = last_index(messages, AIMessage)
    response = message_text(messages[ai]) if ai is not None and ai > human else None
    return prompt, response


def _required(text: str | None, what: str) -> str:
    if text is None:
        raise InvalidInputError(f"{what} has no text for the guard to classify.")
    return text
