"""What the guard sees of a multi-turn chat.

GuardReasoner was trained on one exchange: ``Human user:`` then ``AI assistant:``. A chat hands it many. The
adapters fold a bounded window of earlier turns into the prompt text, in the same ``Human user:`` /
``AI assistant:`` lines the model was trained on, so that a request split over turns ("tell me about pipe
bombs" ... "now the steps") is judged as one, while the cost of a check stays bounded however long the chat.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

from guardreasoner.errors import InvalidInputError

__all__ = ["DEFAULT_HISTORY_CHARS", "DEFAULT_HISTORY_TURNS", "Turn", "fold_history"]

Turn = tuple[str, str | None]
"""``(role, text)``: role ``"user"``/``"human"`` or ``"assistant"``/``"ai"`` (case-insensitive); other roles
(system, tool, function) are not shown to the guard; a turn with no text is skipped."""

DEFAULT_HISTORY_TURNS = 3
"""Earlier turns folded in by default: the last three (e.g. user, assistant, user before the last request)."""

DEFAULT_HISTORY_CHARS = 4000
"""The folded earlier turns' bound in characters: older turns are left out whole until the rest fits."""

_ROLES: dict[str, Literal["user", "assistant"]] = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
}
_LABELS = {"user": "Human user:", "assistant": "AI assistant:"}


def fold_history(
    turns: Iterable[Turn],
    *,
    window: int = DEFAULT_HISTORY_TURNS,
    max_chars: int = DEFAULT_HISTORY_CHARS,
) -> tuple[str, str | None]:
    """``(prompt, response)`` for the guard from a chat's turns, oldest first.

    - The request is the last user turn. The response is the last assistant turn after it, or None when
      the chat ends with the user (judging the request alone).
    - Up to ``window`` user/assistant turns before the request are folded into the prompt text ahead of it,
      as ``AI assistant:``/``Human user:`` lines, so the guard reads ``Human user: <earlier> AI assistant:
      <earlier reply> Human user: <request> AI assistant: <response>``. The window starts on a user turn
      (an assistant reply whose request fell outside the window is left out with it), and older turns are
      left out whole until the folded ones fit in ``max_chars``; the request itself is never cut.
    - ``window=0`` gives the last user turn alone, as a single-turn guard sees it.

    Raises :class:`~guardreasoner.InvalidInputError` when there is no user turn, and :class:`ValueError` for
    a negative window or bound.
    """
    if window < 0 or max_chars < 0:
        raise ValueError(f"window and max_chars must be >= 0, got {window} and {max_chars}.")
    chat = list(_normalised(turns))
    users = [index for index, (role, _) in enumerate(chat) if role == "user"]
    if not users:
        raise InvalidInputError("The chat has no user turn: the guard needs the user's request.")
    last = users[-1]
    request = chat[last][1]
    replies = [text for role, text in chat[last + 1 :] if role == "assistant"]
    response = replies[-1] if replies else None

    earlier = _window(chat[:last], window, max_chars)
    if not earlier:
        return request, response
    lines = [earlier[0][1]]  # the core's prompt format puts "Human user:" before the first line
    lines += [f"{_LABELS[role]}\n{text}" for role, text in earlier[1:]]
    lines.append(f"{_LABELS['user']}\n{request}")
    return "\n\n".join(lines), response


def _normalised(turns: Iterable[Turn]) -> Iterable[tuple[Literal["user", "assistant"], str]]:
    for item in turns:
        if not (isinstance(item, Sequence) and len(item) == 2 and isinstance(item[0], str)):
            raise InvalidInputError(f"A chat turn must be a (role, text) pair, got {item!r}.")
        role, text = item
        kind = _ROLES.get(role.lower())
        if kind is not None and isinstance(text, str) and text.strip():
            yield kind, text


def _window(
    earlier: list[tuple[Literal["user", "assistant"], str]], window: int, max_chars: int
) -> list[tuple[Literal["user", "assistant"], str]]:
    kept = earlier[-window:] if window else []
    while kept and (kept[0][0] != "user" or sum(len(text) for _, text in kept) > max_chars):
        kept = kept[1:]
    return kept
