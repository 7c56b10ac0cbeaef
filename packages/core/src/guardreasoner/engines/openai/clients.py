"""The openai engine's HTTP clients: one async client per endpoint and event loop, and the private loop that
runs the engine's one request loop for synchronous callers."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class LoopClients:
    """What one event loop needs: its own async clients (httpx connections belong to one loop), keyed by
    endpoint and shard, and its own concurrency limit. Injected clients are never stored here."""

    semaphore: asyncio.Semaphore
    clients: dict[tuple[str, int], Any] = field(default_factory=dict)
    turn: itertools.count = field(default_factory=itertools.count)

    async def aclose(self) -> None:
        clients, self.clients = list(self.clients.values()), {}
        for client in clients:
            await client.close()


def client_options(injected: Any) -> dict[str, Any]:
    """Settings to carry from a client the caller built (headers, query, organization) to the engine's own."""
    if injected is None:
        return {}
    options: dict[str, Any] = {}
    for name, attribute in (("organization", "organization"), ("project", "project")):
        value = getattr(injected, attribute, None)
        if value:
            options[name] = value
    headers = getattr(injected, "_custom_headers", None)
    if headers:
        options["default_headers"] = dict(headers)
    query = getattr(injected, "_custom_query", None)
    if query:
        options["default_query"] = dict(query)
    return options


class BackgroundLoop:
    """An event loop in a daemon thread, so synchronous calls run the async request loop (also from inside a
    running loop, such as a notebook cell)."""

    def __init__(self, name: str):
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._started()).result()

    def _started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=loop.run_forever, name=self._name, daemon=True)
                self._thread.start()
                self._loop = loop
            return self._loop

    def stop(self, last: Coroutine[Any, Any, Any] | None = None) -> None:
        """Run ``last`` (closing the loop's clients) on the loop, then stop it."""
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None:
            if last is not None:
                last.close()
            return
        if last is not None:
            asyncio.run_coroutine_threadsafe(last, loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        if not loop.is_running():
            loop.close()
