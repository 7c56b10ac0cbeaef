"""What the guard classifies: a user request and, optionally, the AI's response.

Validation happens before any generation, so a bad item in a batch fails the whole call up front with
its index, instead of coming back as a verdict that looks like the model's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from guardreasoner.errors import ContextLengthError, InvalidInputError
from guardreasoner.prompt import EncodedPrompt, build_prompt

TRUNCATION_MARKER = "\n[... truncated ...]\n"


class Conversation(BaseModel):
    model_config = ConfigDict(frozen=True)

    prompt: str
    response: str | None = None


ConversationLike = Conversation | str | tuple | Mapping[str, Any]


def to_conversation(item: ConversationLike, *, index: int | None = None) -> Conversation:
    """Accept a Conversation, a prompt string, a ``(prompt, response)`` pair, or a mapping with those keys."""
    where = "" if index is None else f" (item {index})"
    if isinstance(item, Conversation):
        prompt, response = item.prompt, item.response  # may come unvalidated from model_construct
    elif isinstance(item, str):
        prompt, response = item, None
    elif isinstance(item, tuple):
        if len(item) != 2:
            raise InvalidInputError(
                f"A conversation tuple must be (prompt, response){where}; got {len(item)} items."
            )
        prompt, response = item
    elif isinstance(item, Mapping):
        unknown = set(item) - {"prompt", "response"}
        if "prompt" not in item or unknown:
            raise InvalidInputError(
                f"A conversation mapping needs a 'prompt' key and at most a 'response' key{where}; "
                f"got keys {sorted(item)}."
            )
        prompt, response = item["prompt"], item.get("response")
    else:
        raise InvalidInputError(
            f"Cannot classify a {type(item).__name__}{where}: pass a prompt string, a (prompt, response) tuple, "
            "a {'prompt': ..., 'response': ...} mapping, or a Conversation."
        )
    validate(prompt, response, where=where)
    return Conversation(prompt=prompt, response=response)


def validate(prompt: object, response: object, *, where: str = "") -> None:
    if not isinstance(prompt, str):
        raise InvalidInputError(f"The prompt must be a string{where}, got {type(prompt).__name__}.")
    if not prompt.strip():
        raise InvalidInputError(
            f"The prompt is empty{where}; the guard needs the user's request to classify."
        )
    _check_encodable(prompt, "prompt", where)
    if response is not None:
        if not isinstance(response, str):
            raise InvalidInputError(
                f"The response must be a string or None{where}, got {type(response).__name__}."
            )
        if not response.strip():
            raise InvalidInputError(
                f"The response is empty{where}. Pass response=None to classify the request alone; an empty "
                "string would be shown to the model as an empty AI turn."
            )
        _check_encodable(response, "response", where)


def _check_encodable(text: str, name: str, where: str) -> None:
    """Refuse text no tokenizer or server can take: a lone surrogate (from bad decoding) is not UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"The {name}{where} holds a lone surrogate ({text[exc.start : exc.end]!r} at character "
            f"{exc.start}), which is not valid Unicode text. Decode the source with errors='replace' (or "
            "fix its encoding) before classifying."
        ) from None


def to_conversations(items: Iterable[ConversationLike]) -> list[Conversation]:
    if isinstance(items, (str, bytes, Mapping, Conversation)):
        raise InvalidInputError("classify_batch takes a list of conversations; for one, call classify().")
    if not isinstance(items, Iterable):
        raise InvalidInputError(
            f"classify_batch takes a list of conversations, got {type(items).__name__}: pass e.g. "
            "[('prompt', 'response'), 'another prompt']."
        )
    return [to_conversation(item, index=i) for i, item in enumerate(items)]


def fit_to_context(
    conversation: Conversation,
    *,
    encode: Callable[[str], list[int] | None],
    count_tokens: Callable[[str], int | None],
    budget: int,
    truncate: bool,
) -> tuple[Conversation, str, bool]:
    """Fit the conversation's prompt to ``budget`` tokens, rendering and encoding it once.

    Returns the conversation (cut or not), its prompt, and whether it was cut. The prompt is an
    :class:`~guardreasoner.prompt.EncodedPrompt` carrying its token ids where the engine can ``encode`` (so the
    engine does not encode it again), else the plain text, counted with ``count_tokens``. Cutting keeps the head
    and the tail of the longer text (request or response) and marks the cut; the instruction is never cut. It
    raises :class:`ContextLengthError` when cutting is off or cannot fit.
    """

    def measure(current: Conversation) -> tuple[str, int | None]:
        prompt = build_prompt(current.prompt, current.response)
        ids = encode(prompt)
        if ids is None:
            return prompt, count_tokens(prompt)
        return EncodedPrompt(prompt, ids), len(ids)

    def count(text: str) -> int:
        ids = encode(text)
        return len(ids) if ids is not None else count_tokens(text) or 0

    prompt, used = measure(conversation)
    if used is None or used <= budget:
        return conversation, prompt, False
    if not truncate:
        raise ContextLengthError(
            f"The conversation takes {used} prompt tokens but only {budget} fit (the model's context minus "
            "max_new_tokens). Shorten it, lower max_new_tokens, or pass truncation='head_tail' to keep its head "
            "and tail (the verdict then reports input_truncated=True)."
        )
    current = conversation
    for _ in range(8):
        excess = used - budget
        field = (
            "response"
            if (current.response or "") and len(current.response) > len(current.prompt)
            else "prompt"
        )
        text = getattr(current, field)
        chars_per_token = max(len(text) / max(count(text), 1), 1.0)
        cut = int((excess + len(TRUNCATION_MARKER) // 2 + 8) * chars_per_token * 1.1) + 1
        keep = len(text) - cut
        if keep < 32:
            other = "prompt" if field == "response" else "response"
            sizes = {name: count_tokens(getattr(current, name) or "") or 0 for name in (field, other)}
            raise ContextLengthError(
                f"The conversation cannot be cut to fit {budget} prompt tokens: it takes {used}, {excess} too many. "
                f"Only the longer text is cut, the {field} ({sizes[field]} tokens), and it cannot lose {excess} "
                f"and keep a useful head and tail: the {other} ({sizes[other]} tokens) and the instruction take "
                f"the rest. Shorten the {other}, lower max_new_tokens, or use a model with a longer context."
            )
        head = keep // 2
        current = current.model_copy(
            update={field: text[:head] + TRUNCATION_MARKER + text[len(text) - (keep - head) :]}
        )
        prompt, measured = measure(current)
        used = measured or 0
        if used <= budget:
            return current, prompt, True
    raise ContextLengthError(
        f"Could not cut the conversation to {budget} prompt tokens after 8 tries ({used} left)."
    )
