"""The offline backend: a ``vllm.LLM``. ``LLM.generate`` serves batches; once async callers arrive, a driver
thread owns the ``LLM``'s engine and continuously batches every request (see the package docstring)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from typing import Any

from guardreasoner.engines.vllm.outputs import final_only, outcomes, request_id, settle
from guardreasoner.errors import EngineError


class OfflineBackend:
    """A ``vllm.LLM``: ``LLM.generate`` for batches; a driver thread once async callers arrive."""

    kind = "offline"

    def __init__(self, llm: Any, *, owned: bool):
        self.llm = llm
        self.owned = owned
        self.max_model_len = llm.llm_engine.model_config.max_model_len
        self._lock = threading.Lock()  # held while anything steps the LLM's engine
        self._driver: _Driver | None = None

    def generate(
        self, inputs: list, params: Any, *, each: bool = False, timeout: float | None = None
    ) -> list[Any]:
        """The outputs in order; with ``each``, a failed request's exception in its place instead of raising.
        Past ``timeout`` seconds the requests are aborted and :class:`TimeoutError` raised (a deadline needs
        the driver: one ``LLM.generate`` call cannot be aborted)."""
        driver = self._driver  # once set, never unset: no lock needed to read it
        if driver is None and timeout is None:
            with self._lock:
                if self._driver is None:
                    return self.llm.generate(inputs, params, use_tqdm=False)
        driver = self._driver or self._start_driver()
        ids = [request_id() for _ in inputs]
        params = final_only(params)
        futures = [driver.submit(i, p, params) for i, p in zip(ids, inputs)]
        wait_for = concurrent.futures.ALL_COMPLETED if each else concurrent.futures.FIRST_EXCEPTION
        try:
            _, pending = concurrent.futures.wait(futures, timeout, return_when=wait_for)
            results = outcomes(futures, each=each, pending=pending)
        except BaseException:
            driver.abort(ids)
            raise
        return results

    async def agenerate(self, inputs: list, params: Any, *, each: bool = False) -> list[Any]:
        driver = self._driver or await asyncio.to_thread(self._start_driver)
        ids = [request_id() for _ in inputs]
        params = final_only(params)
        futures = [asyncio.wrap_future(driver.submit(i, p, params)) for i, p in zip(ids, inputs)]
        try:
            return list(await asyncio.gather(*futures, return_exceptions=each))
        except BaseException:
            driver.abort(ids)
            raise

    def collective_rpc(self, method: str, args: tuple) -> list[Any]:
        """Call ``method`` on every vLLM worker, between engine steps."""
        with self._lock:
            return self.llm.collective_rpc(method, args=args)

    def _start_driver(self) -> _Driver:
        with self._lock:  # waits for a running LLM.generate batch to finish
            if self._driver is None:
                self._driver = _Driver(self.llm.llm_engine, self._lock)
            return self._driver

    def close(self) -> None:
        if self._driver is not None:
            self._driver.close()
        if self.owned:
            _shutdown(self.llm.llm_engine)
            self.llm = None


class _Driver:
    """One thread that adds requests to an offline engine and steps it: continuous batching without AsyncLLM."""

    def __init__(self, engine: Any, lock: threading.Lock):
        self._engine = engine
        self._lock = lock
        self._cv = threading.Condition()
        self._pending: list[tuple[str, Any, Any, concurrent.futures.Future]] = []
        self._aborts: list[str] = []
        self._running: dict[str, concurrent.futures.Future] = {}
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="guardreasoner-vllm-driver", daemon=True)
        self._thread.start()

    def submit(self, request_id: str, prompt: Any, params: Any) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._cv:
            if self._error is not None or self._closed:
                raise EngineError(f"The vLLM engine has stopped: {self._error or 'closed'}")
            self._pending.append((request_id, prompt, params, future))
            self._cv.notify()
        return future

    def abort(self, request_ids: list[str]) -> None:
        with self._cv:
            self._aborts.extend(request_ids)
            self._cv.notify()

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        try:
            while True:
                with self._cv:
                    while not (self._pending or self._running or self._aborts or self._closed):
                        self._cv.wait()
                    if self._closed:
                        break
                    new, self._pending = self._pending, []
                    aborts, self._aborts = self._aborts, []
                with self._lock:
                    self._admit(new, aborts)
                    outputs = self._engine.step() if self._running else []
                for output in outputs:
                    if output.finished:
                        future = self._running.pop(output.request_id, None)
                        if future is not None:
                            settle(future, result=output)
        except BaseException as exc:  # the engine died: fail everything waiting
            self._error = exc
        with self._cv:
            error = self._error or EngineError("The vllm engine was closed.")
            waiting = [f for *_, f in self._pending] + list(self._running.values())
            self._pending, self._running = [], {}
        for future in waiting:
            settle(future, error=error)

    def _admit(self, new: list, aborts: list[str]) -> None:
        # A caller that gave up cancels its future (asyncio.wrap_future does) or names its requests.
        aborted = set(aborts)
        dropped = [r for r, f in self._running.items() if r in aborted or f.cancelled()]
        if dropped:
            self._engine.abort_request(dropped)
            for request_id in dropped:
                settle(self._running.pop(request_id), error=concurrent.futures.CancelledError())
        for request_id, prompt, params, future in new:
            if request_id in aborted or future.cancelled():
                settle(future, error=concurrent.futures.CancelledError())
                continue
            try:
                self._engine.add_request(request_id, prompt, params)
            except Exception as exc:
                settle(future, error=exc)
                continue
            self._running[request_id] = future


def _shutdown(llm_engine: Any) -> None:
    core = getattr(llm_engine, "engine_core", None)
    if core is not None and hasattr(core, "shutdown"):
        with contextlib.suppress(Exception):
            core.shutdown()
