"""The async backend: vLLM's ``AsyncLLM`` on a private event loop in a daemon thread (see the package
docstring for why a private loop)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from typing import Any

from guardreasoner.engines.vllm.outputs import final_only, request_id
from guardreasoner.errors import EngineError


class AsyncBackend:
    """vLLM's ``AsyncLLM`` on a private event loop in a daemon thread."""

    kind = "async"

    def __init__(self) -> None:
        self.engine: Any = None
        self.max_model_len: int | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="guardreasoner-vllm-async", daemon=True
        )
        self._thread.start()

    def start(self, build: Any) -> concurrent.futures.Future:
        async def create() -> None:
            # Built inside the loop, so vLLM binds its output handler and sockets to it.
            self.engine = build()
            self.max_model_len = self.engine.model_config.max_model_len

        return asyncio.run_coroutine_threadsafe(create(), self._loop)

    def generate(
        self, inputs: list, params: Any, *, each: bool = False, timeout: float | None = None
    ) -> list[Any]:
        """As :meth:`OfflineBackend.generate`: ``each`` puts a failed request's exception in its place; past
        ``timeout`` seconds the requests are aborted and :class:`TimeoutError` raised."""
        future = asyncio.run_coroutine_threadsafe(self._generate(inputs, params, each), self._loop)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    async def agenerate(self, inputs: list, params: Any, *, each: bool = False) -> list[Any]:
        return await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(self._generate(inputs, params, each), self._loop)
        )

    def collective_rpc(self, method: str, args: tuple) -> list[Any]:
        """Call ``method`` on every vLLM worker (from the engine's own loop)."""
        return asyncio.run_coroutine_threadsafe(
            self.engine.collective_rpc(method, args=args), self._loop
        ).result()

    async def _generate(self, inputs: list, params: Any, each: bool) -> list[Any]:
        params = final_only(params)
        tasks = [asyncio.ensure_future(self._one(prompt, params)) for prompt in inputs]
        try:
            return list(await asyncio.gather(*tasks, return_exceptions=each))
        except BaseException:
            for task in tasks:  # one failed or the caller gave up: abort the rest too
                task.cancel()
            raise

    async def _one(self, prompt: Any, params: Any) -> Any:
        final = None
        async for output in self.engine.generate(prompt, params, request_id()):
            final = output
        if final is None or not final.finished:
            raise EngineError("vLLM ended a request without a final output.")
        return final

    def close(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None:

            async def shutdown() -> None:
                engine.shutdown()

            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=120)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if threading.current_thread() is self._thread:
            return  # called from the loop itself (a failed build): it stops when this callback returns
        self._thread.join(timeout=30)
        if not self._thread.is_alive():
            self._loop.close()
