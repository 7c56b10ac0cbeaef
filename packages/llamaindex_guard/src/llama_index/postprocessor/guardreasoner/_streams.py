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
import sys
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import TypeVar

from llama_index.postprocessor.guardreasoner._common import Guarding

from guardreasoner import Verdict
from guardreasoner.integrations import (
    GuardReasonerViolation,
    StreamMode,
    check_stream_chunk_tokens,
    check_stream_mode,
    is_violation,
)
from guardreasoner.integrations.streaming import DEFAULT_STREAM_CHUNK_TOKENS, BufferedStreamModerator

T = TypeVar("T")


class StreamGuard:
    """``stream_mode`` and ``stream_chunk_tokens``, checked at construction, and the guarded streams."""

    def __init__(self, guarding: Guarding, stream_mode: StreamMode, stream_chunk_tokens: int):
        self.guarding = guarding
        self.stream_mode = check_stream_mode(stream_mode)
        self.stream_chunk_tokens = check_stream_chunk_tokens(stream_chunk_tokens)

    def moderator(self, prompt: str, text_of: Callable[[T], str]) -> BufferedStreamModerator[T]:
        """A moderator for ``stream_mode`` ``buffered`` (chunks) or ``whole`` (one check at the end)."""
        chunk = self.stream_chunk_tokens if self.stream_mode == "buffered" else sys.maxsize
        return BufferedStreamModerator(self.guarding.guard, prompt, chunk_tokens=chunk, text_of=text_of)

    def guard(
        self,
        prompt: str,
        stream: Iterable[T],
        *,
        text_of: Callable[[T], str],
        refusal_piece: Callable[[str], T],
        on_violation: Callable[[Verdict, str], None],
    ) -> Iterator[T]:
        """``stream``'s pieces as ``stream_mode`` releases them; the refusal piece last on a violation."""
        try:
            if self.stream_mode == "passthrough":
                text = ""
                for piece in stream:
                    text += text_of(piece) or ""
                    yield piece
                self._judge_whole(self.guarding.guard.classify(prompt, text), text)
            else:
                yield from self.moderator(prompt, text_of).moderate(stream)
        except GuardReasonerViolation as exc:
            self._raise_under_error(exc)
            on_violation(exc.verdict, exc.content)
            yield refusal_piece(self.guarding.refusal(exc.verdict, "output"))

    async def aguard(
        self,
        prompt: str,
        stream: AsyncIterable[T],
        *,
        text_of: Callable[[T], str],
        refusal_piece: Callable[[str], T],
        on_violation: Callable[[Verdict, str], Awaitable[None] | None],
    ) -> AsyncIterator[T]:
        """:meth:`guard` for an async stream (``on_violation`` may be a coroutine function)."""
        try:
            if self.stream_mode == "passthrough":
                text = ""
                async for piece in stream:
                    text += text_of(piece) or ""
                    yield piece
                self._judge_whole(await self.guarding.guard.aclassify(prompt, text), text)
            else:
                async for piece in self.moderator(prompt, text_of).amoderate(stream):
                    yield piece
        except GuardReasonerViolation as exc:
            self._raise_under_error(exc)
            if inspect.isawaitable(told := on_violation(exc.verdict, exc.content)):
                await told
            yield refusal_piece(self.guarding.refusal(exc.verdict, "output"))

    def _judge_whole(self, verdict: Verdict, text: str) -> None:
        if is_violation(verdict, judged_on="response"):
            raise GuardReasonerViolation(verdict=verdict, stage="output", content=text)

    def _raise_under_error(self, exc: GuardReasonerViolation) -> None:
        if self.guarding.exit_behavior == "error":
            raise exc


__all__ = ["DEFAULT_STREAM_CHUNK_TOKENS", "StreamGuard"]
