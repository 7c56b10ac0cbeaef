"""Buffered moderation of a streamed response: release text only after the guard judged it safe.

NeMo Guardrails checks a stream in chunks and accepts that a chunk reaches the user before its check. Here
nothing does: the moderator holds the stream's pieces, judges the prompt with the response so far every
``chunk_tokens`` tokens, and releases the held pieces only after a safe verdict. On a harmful verdict it
closes the upstream stream (which stops the model's generation where the framework supports it) and raises
:class:`~guardreasoner.integrations.GuardReasonerViolation`; the adapter turns that into its
``exit_behavior`` (raise, or end the stream with the refusal). What was released before stays released:
it was judged safe with everything before it.

The stream is read ahead while the guard judges (in a worker thread or task), so the model is not paused
by the checks; the checks run one at a time, in order. Trade-off: the first text reaches the user after
``chunk_tokens`` tokens and one check; a 500-token answer in 100-token chunks costs five checks, and when
the checks are slower than the model the release falls behind the model by the checks' backlog. Larger
chunks mean fewer checks and a later first token; smaller ones the reverse. ``context_tokens`` bounds what
each check re-reads of the already released text (None: all of it).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import re
import threading
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from guardreasoner.guard import GuardReasoner
from guardreasoner.integrations.options import GuardReasonerViolation, check_stream_chunk_tokens
from guardreasoner.integrations.provider import is_violation
from guardreasoner.verdict import Verdict

__all__ = ["DEFAULT_STREAM_CHUNK_TOKENS", "AReadAhead", "BufferedStreamModerator", "ReadAhead"]

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
        read_ahead: bool = True,
    ):
        check_stream_chunk_tokens(chunk_tokens)
        if context_tokens is not None and context_tokens < 0:
            raise ValueError(f"context_tokens must be >= 0 or None, got {context_tokens}.")
        self.guard = guard
        self.prompt = prompt
        self.chunk_tokens = chunk_tokens
        self.context_tokens = context_tokens
        self.text_of = text_of
        self.stage = stage
        self.read_ahead = read_ahead
        self.checks = 0
        self.released = 0
        self.verdicts: list[Verdict] = []
        self._released_text = ""
        self._held: list[T] = []
        self._held_text = ""

    # -- drivers --------------------------------------------------------------------------------------

    def moderate(self, stream: Iterable[T]) -> Iterator[T]:
        """The pieces of ``stream`` that were judged safe, chunk by chunk; raises on a harmful chunk.

        With ``read_ahead`` (default) the stream is read in a worker thread (:class:`ReadAhead`), so it
        keeps flowing while the guard judges a chunk; a harmful verdict stops it there.
        """
        upstream = stream if isinstance(stream, ReadAhead) or not self.read_ahead else ReadAhead(stream)
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
        """:meth:`moderate` for an async stream (the checks await the guard's ``aclassify``; the read-ahead
        is a task, :class:`AReadAhead`)."""
        upstream = stream if isinstance(stream, AReadAhead) or not self.read_ahead else AReadAhead(stream)
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


_END = object()


def _unpack(entry: tuple[Any, BaseException | None]) -> Any:
    """A read-ahead entry's item (``_END`` when the stream is done), or the stream's error, raised."""
    item, error = entry
    if error is not None:
        raise error
    return item


class ReadAhead(Generic[T]):
    """Reads a stream in a worker thread (with the caller's context variables) into a queue, so the stream
    keeps flowing while its consumer waits (for the guard); iterate it to get the items in order.

    ``source`` is an iterable, or a callable that opens one (called in the worker). :meth:`close` (or an
    early stop of the iteration) stops reading after the current item and closes the source; ``on_stop``
    is called at once (a framework's way to stop the model sooner). The source's error is raised to the
    consumer in its place in the stream.
    """

    def __init__(
        self, source: Iterable[T] | Callable[[], Iterable[T]], *, on_stop: Callable[[], None] | None = None
    ):
        self._queue: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue()
        self._stopped = threading.Event()
        self._on_stop = on_stop
        context = contextvars.copy_context()
        threading.Thread(
            target=context.run, args=(self._pull, source), name="guardreasoner-read-ahead", daemon=True
        ).start()

    def _pull(self, source: Iterable[T] | Callable[[], Iterable[T]]) -> None:
        stream: Iterator[T] | None = None
        try:
            stream = iter(source() if callable(source) else source)
            for item in stream:
                if self._stopped.is_set():
                    break
                self._queue.put((item, None))
        except BaseException as exc:  # handed to the consumer
            self._queue.put((_END, exc))
            return
        finally:
            if stream is not None and self._stopped.is_set():
                with contextlib.suppress(GeneratorExit):
                    getattr(stream, "close", lambda: None)()
        self._queue.put((_END, None))

    def __iter__(self) -> Iterator[T]:
        try:
            while (item := _unpack(self._queue.get())) is not _END:
                yield item
        finally:
            self.close()

    def close(self) -> None:
        if not self._stopped.is_set():
            self._stopped.set()
            if self._on_stop is not None:
                self._on_stop()


class AReadAhead(Generic[T]):
    """:class:`ReadAhead` for an async stream: a task reads it into a queue; :meth:`aclose` cancels the
    task (which stops the stream) after calling ``on_stop``."""

    def __init__(self, source: AsyncIterable[T], *, on_stop: Callable[[], None] | None = None):
        self._queue: asyncio.Queue[tuple[Any, BaseException | None]] = asyncio.Queue()
        self._on_stop = on_stop
        self._closed = False
        self._task = asyncio.ensure_future(self._pull(source))

    async def _pull(self, source: AsyncIterable[T]) -> None:
        stream = aiter(source)
        try:
            async for item in stream:
                self._queue.put_nowait((item, None))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._queue.put_nowait((_END, exc))
            return
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(GeneratorExit, RuntimeError):
                    await aclose()
        self._queue.put_nowait((_END, None))

    async def __aiter__(self) -> AsyncIterator[T]:
        try:
            while (item := _unpack(await self._queue.get())) is not _END:
                yield item
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._on_stop is not None:
            self._on_stop()
        self._task.cancel()
        await asyncio.wait([self._task])
