"""Start the guarded call beside the input check and hold its result until the verdict.

A reasoning guard takes about a second per check; in series the user waits for the check and then the
model. Started together, a benign turn costs max(check, model). The model's result is held, never handed
on, until the verdict: released when the input is safe, discarded when it is harmful, so whatever the
adapter does with the result (run its tool calls, stream it, return it) happens only after a safe verdict.

The guarded call itself does run on a harmful input (its cost is spent, and the framework's tracing sees
it); use parallel checks only where that call has no side effect of its own (a model call: yes; a chain
that writes to a database: no). The async form cancels the call on a harmful verdict; the sync form cannot
stop a running thread, so the call finishes in the background and its result is dropped.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Held", "arun_beside_check", "arun_checked", "run_beside_check", "run_checked"]

V = TypeVar("V")
T = TypeVar("T")


@dataclass(frozen=True)
class Held(Generic[V, T]):
    """The check's outcome and, when it did not block, the guarded call's result."""

    verdict: V
    blocked: bool
    result: T | None = None


def run_beside_check(
    check: Callable[[], V], call: Callable[[], T], *, blocks: Callable[[V], bool]
) -> Held[V, T]:
    """Run ``call`` in a new thread (with the caller's context variables) while ``check`` runs here.

    Returns when the verdict blocks (the call's result, or error, is dropped when it comes) or when both
    are done. An error of ``check`` propagates (the call's result is dropped); an error of ``call``
    propagates only after a verdict that does not block.
    """
    future: Future[T] = Future()
    context = contextvars.copy_context()

    def target() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(context.run(call))
        except BaseException as exc:  # handed to the caller through the future
            future.set_exception(exc)

    threading.Thread(target=target, name="guardreasoner-beside-check", daemon=True).start()
    verdict = check()
    if blocks(verdict):
        future.cancel()
        return Held(verdict, True)
    return Held(verdict, False, future.result())


def run_checked(
    check: Callable[[], V], call: Callable[[], T], *, blocks: Callable[[V], bool], beside: bool
) -> Held[V, T]:
    """``call`` after ``check`` when the verdict does not block; with ``beside``, started beside the check
    (:func:`run_beside_check`). The one choice a wrapper's ``parallel_input_check`` makes."""
    if beside:
        return run_beside_check(check, call, blocks=blocks)
    verdict = check()
    if blocks(verdict):
        return Held(verdict, True)
    return Held(verdict, False, call())


async def arun_beside_check(
    check: Awaitable[V], call: Callable[[], Awaitable[T]], *, blocks: Callable[[V], bool]
) -> Held[V, T]:
    """Start ``call()`` as a task while awaiting ``check``; cancel it when the verdict blocks.

    An error of ``check`` cancels the call and propagates; an error of ``call`` propagates only after a
    verdict that does not block.
    """
    task = asyncio.ensure_future(call())
    try:
        verdict = await check
    except BaseException:
        await _discard(task)
        raise
    if blocks(verdict):
        await _discard(task)
        return Held(verdict, True)
    return Held(verdict, False, await task)


async def arun_checked(
    check: Awaitable[V], call: Callable[[], Awaitable[T]], *, blocks: Callable[[V], bool], beside: bool
) -> Held[V, T]:
    """:func:`run_checked` for async calls (with ``beside``: :func:`arun_beside_check`)."""
    if beside:
        return await arun_beside_check(check, call, blocks=blocks)
    verdict = await check
    if blocks(verdict):
        return Held(verdict, True)
    return Held(verdict, False, await call())


async def _discard(task: asyncio.Future[T]) -> None:
    """Cancel the task and wait for it to stop, dropping its result or error (it was not wanted)."""
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as never retrieved
