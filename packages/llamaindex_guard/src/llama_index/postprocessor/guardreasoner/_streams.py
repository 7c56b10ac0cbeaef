"""Guarding a streamed answer: the three ``stream_mode``s over any stream of pieces (text, chat deltas).

``buffered`` (default) holds the pieces and releases each chunk of ``stream_chunk_tokens`` tokens once the
guard judged the answer so far safe (:class:`~guardreasoner.integrations.streaming.BufferedStreamModerator`);
``whole`` holds everything until the whole answer is judged; ``passthrough`` yields pieces as they come and
judges the whole answer at the end (the consumer may already have read text the guard then blocks). On a
violation the upstream stream is closed; ``exit_behavior="error"`` raises
:class:`~guardreasoner.integrations.GuardReasonerViolation` from the consumer's loop, ``"end"``/``"replace"``
end the stream with the refusal (and ``on_violation`` is told, so the adapter can mark the response).

In ``buffered`` and ``whole`` modes the moderator reads the upstream ahead while a chunk is being judged, so
the model goes on generating instead of waiting for each check.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import TypeVar

from guardreasoner import Verdict
from guardreasoner.integrations import GuardReasonerViolation, is_violation
from guardreasoner.integrations.guarding import Guarding

T = TypeVar("T")


def guard_stream(
    guarding: Guarding,
    prompt: str,
    stream: Iterable[T],
    *,
    text_of: Callable[[T], str],
    refusal_piece: Callable[[str], T],
    on_violation: Callable[[Verdict, str], None],
) -> Iterator[T]:
    """``stream``'s pieces as ``guarding.stream_mode`` releases them; the refusal piece last on a violation."""
    try:
        if guarding.stream_mode == "passthrough":
            text = ""
            for piece in stream:
                text += text_of(piece) or ""
                yield piece
            _judge_whole(guarding.classify("output", prompt, text), text)
        else:
            yield from guarding.moderator(prompt, text_of).moderate(stream)
    except GuardReasonerViolation as exc:
        _raise_under_error(guarding, exc)
        on_violation(exc.verdict, exc.content)
        yield refusal_piece(guarding.refusal(exc.verdict, "output"))


async def aguard_stream(
    guarding: Guarding,
    prompt: str,
    stream: AsyncIterable[T],
    *,
    text_of: Callable[[T], str],
    refusal_piece: Callable[[str], T],
    on_violation: Callable[[Verdict, str], Awaitable[None] | None],
) -> AsyncIterator[T]:
    """:func:`guard_stream` for an async stream (``on_violation`` may be a coroutine function)."""
    try:
        if guarding.stream_mode == "passthrough":
            text = ""
            async for piece in stream:
                text += text_of(piece) or ""
                yield piece
            _judge_whole(await guarding.aclassify("output", prompt, text), text)
        else:
            async for piece in guarding.moderator(prompt, text_of).amoderate(stream):
                yield piece
    except GuardReasonerViolation as exc:
        _raise_under_error(guarding, exc)
        if inspect.isawaitable(told := on_violation(exc.verdict, exc.content)):
            await told
        yield refusal_piece(guarding.refusal(exc.verdict, "output"))


def _judge_whole(verdict: Verdict, text: str) -> None:
    if is_violation(verdict, judged_on="response"):
        raise GuardReasonerViolation(verdict=verdict, stage="output", content=text)


def _raise_under_error(guarding: Guarding, exc: GuardReasonerViolation) -> None:
    if guarding.exit_behavior == "error":
        raise exc
