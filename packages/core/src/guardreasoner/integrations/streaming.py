"""Buffered moderation of a streamed response: release text only after the guard judged it safe.

NeMo Guardrails checks a stream in chunks and accepts that a chunk reaches the user before its check. Here
nothing does: the moderator holds the stream's pieces, judges the prompt with the response so far every
``chunk_tokens`` tokens, and releases the held pieces only after a safe verdict. On a harmful verdict it
closes the upstream stream (which stops the model's generation where the framework supports it) and raises
:class:`~guardreasoner.integrations.GuardReasonerViolation`; the adapter turns that into its
``exit_behavior`` (raise, or end the stream with the refusal). What was released before stays released:
it was judged safe with everything before it.

Trade-off: the first text reaches the user after ``chunk_tokens`` tokens and one check, and each further
check pauses the stream while the guard runs (one check per chunk: a 500-token answer in 100-token chunks
costs five checks). Larger chunks mean fewer checks and a later first token; smaller ones the reverse.
``context_tokens`` bounds what each check re-reads of the already released text (None: all of it).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from guardreasoner.guard import GuardReasoner
from guardreasoner.integrations.options import GuardReasonerViolation
from guardreasoner.integrations.provider import is_violation
from guardreasoner.verdict import Verdict

__all__ = ["DEFAULT_STREAM_CHUNK_TOKENS", "BufferedStreamModerator"]

DEFAULT_STREAM_CHUNK_TOKENS = 64

T = TypeVar("T")


class BufferedStreamModerator(Generic[T]):
    """Holds a stream's pieces, judges ``prompt`` + the response so far every ``chunk_tokens`` tokens, and
    yields the pieces of each chunk once it is judged safe.

    ``text_of`` reads a piece's text (default: the piece is a str). Tokens are counted with the guard
    engine's ``count_tokens`` (its tokenizer) or, when the engine cannot count (None), as whitespace-separated
    words. With ``context_tokens``, each check reads only about that many words of the released text before
    the new chunk (a bounded check on a long answer); None (default) re-reads the whole response so far.
    The last chunk, shorter than ``chunk_tokens``, is judged when the stream ends. Counters: ``checks``,
    ``released`` (pieces), ``verdicts`` (every verdict, in order).
    """

    def __init__(
        self,
        guard: GuardReasoner,
        prompt: str,
        *,
        chunk_tokens: int = DEFAULT_STREAM_CHUNK_TOKENS,
        context_tokens: int | None = None,
        text_of: Callable[[T], str] = str,
        stage: str = "output",
    ):
        if chunk_tokens < 1:
            raise ValueError(f"stream_chunk_tokens must be >= 1, got {chunk_tokens}.")
        if context_tokens is not None and context_tokens < 0:
            raise ValueError(f"context_tokens must be >= 0 or None, got {context_tokens}.")
        self.guard = guard
        self.prompt = prompt
        self.chunk_tokens = chunk_tokens
        self.context_tokens = context_tokens
        self.text_of = text_of
        self.stage = stage
        self.checks = 0
        self.released = 0
        self.verdicts: list[Verdict] = []
        self._released_text = ""
        self._held: list[T] = []
        self._held_text = ""

    # -- drivers --------------------------------------------------------------------------------------

    def moderate(self, stream: Iterable[T]) -> Iterator[T]:
        """The pieces of ``stream`` that were judged safe, chunk by chunk; raises on a harmful chunk."""
        upstream = iter(stream)
        try:
            for piece in upstream:
                if self._hold(piece):
                    self._check(self.guard.classify(*self._conversation()))
                    yield from self._release()
            if self._held_text.strip():
                self._check(self.guard.classify(*self._conversation()))
        finally:
            close = getattr(upstream, "close", None)
            if close is not None:
                close()  # stops the model's generation where the stream supports it
        yield from self._release()  # the last judged chunk, or pieces with no text (metadata) at the end

    async def amoderate(self, stream: AsyncIterable[T]) -> AsyncIterator[T]:
        """:meth:`moderate` for an async stream (the checks await the guard's ``aclassify``)."""
        upstream = aiter(stream)
        try:
            async for piece in upstream:
                if self._hold(piece):
                    self._check(await self.guard.aclassify(*self._conversation()))
                    for released in self._release():
                        yield released
            if self._held_text.strip():
                self._check(await self.guard.aclassify(*self._conversation()))
        finally:
            aclose = getattr(upstream, "aclose", None)
            if aclose is not None:
                await aclose()
        for released in self._release():
            yield released

    # -- the state both drivers share -----------------------------------------------------------------

    def _hold(self, piece: T) -> bool:
        """Hold ``piece``; True when the held text reached a chunk and must be judged now."""
        self._held.append(piece)
        self._held_text += self.text_of(piece) or ""
        return self._tokens(self._held_text) >= self.chunk_tokens

    def _conversation(self) -> tuple[str, str]:
        context = self._released_text
        if self.context_tokens is not None:
            words = re.findall(r"\S+\s*", context)
            context = "".join(words[-self.context_tokens :]) if self.context_tokens else ""
        return self.prompt, context + self._held_text

    def _check(self, verdict: Verdict) -> None:
        self.checks += 1
        self.verdicts.append(verdict)
        if is_violation(verdict, judged_on="response"):
            raise GuardReasonerViolation(
                verdict=verdict, stage=self.stage, content=self._released_text + self._held_text
            )

    def _release(self) -> Iterator[T]:
        held, self._held = self._held, []
        self._released_text += self._held_text
        self._held_text = ""
        self.released += len(held)
        yield from held

    def _tokens(self, text: str) -> int:
        counted = self.guard.engine.count_tokens(text)
        return len(text.split()) if counted is None else counted

    def stats(self) -> dict[str, Any]:
        """What was judged and released so far."""
        return {"checks": self.checks, "released": self.released, "held": len(self._held)}
