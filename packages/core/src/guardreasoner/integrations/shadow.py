"""Shadow mode: judge live traffic off the request path, record every verdict, block nothing.

Teams roll a guard out in shadow before they let it block: the framework's observation hook (a LangChain
callback handler, a LlamaIndex instrumentation event handler) hands each model call's input and output to a
:class:`ShadowRecorder`, which queues it and returns at once; worker threads judge what is queued (in
batches, so a batching engine keeps up) and write one record per check to the sink. The app never waits for
the guard. When the queue is full the check is dropped, counted in :attr:`ShadowRecorder.dropped` and logged
(once, with the count so far); nothing is lost silently. :meth:`ShadowRecorder.close` drains the queue.
With OpenTelemetry (extra ``otel``), each judged batch is a ``guardreasoner.shadow`` span linked to the spans
its checks were submitted from, and drops are counted in the ``guardreasoner.shadow.dropped`` metric.

``enforce=True`` turns shadow into enforcement for users who want one hook everywhere: :meth:`check` /
:meth:`acheck` then judge in the caller and raise :class:`GuardReasonerViolation` on a harmful verdict (the
record is still written). It can only raise where the hook runs inside the request (each adapter documents
where that is); :meth:`submit` never raises and never blocks.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from guardreasoner.guard import GuardReasoner
from guardreasoner.integrations.options import GuardReasonerViolation
from guardreasoner.integrations.provider import is_violation
from guardreasoner.integrations.trace import NO_TRACE, Check, CheckTracer, aclassify_checks, classify_checks
from guardreasoner.telemetry.jobs import count_shadow_drop, shadow_span
from guardreasoner.telemetry.otel import current_span_context
from guardreasoner.verdict import Verdict

__all__ = ["ShadowRecord", "ShadowRecorder", "ShadowSink"]

logger = logging.getLogger("guardreasoner.shadow")

ShadowRecord = dict[str, Any]
"""One check: ``stage``, ``prompt``, ``response``, ``harmful`` (the block rule applied to the verdict),
``verdict`` (the full verdict as JSON data, or None when the check failed), ``error`` (the exception's
text when the guard raised), ``queued_s``/``judged_s`` (time waiting in the queue, time being judged),
``time`` (Unix seconds when submitted) and the ``metadata`` the hook gave (run or span ids, model...)."""

ShadowSink = Literal["log"] | str | os.PathLike[str] | Callable[[ShadowRecord], None]
"""``"log"`` (one INFO line of JSON per record on the ``guardreasoner.shadow`` logger), a path (JSON lines
appended to that file), or a callable that receives each record (from a worker thread)."""


class _Check:
    __slots__ = ("enqueued", "metadata", "prompt", "response", "span_context", "stage", "submitted")

    def __init__(self, prompt: str, response: str | None, stage: str, metadata: dict[str, Any]):
        self.prompt = prompt
        self.response = response
        self.stage = stage
        self.metadata = metadata
        self.submitted = time.time()
        self.enqueued = time.monotonic()
        self.span_context = current_span_context()  # the submitter's span, which the judging span links to


class ShadowRecorder:
    """Judges checks handed to it on a bounded queue, in worker threads, and records each verdict.

    ``max_queue`` bounds what waits (a burst beyond it is dropped and counted, never queued without
    limit); ``workers`` threads each take up to ``batch_size`` queued checks per guard call. ``sink``: see
    :data:`ShadowSink`. Counters: ``submitted``, ``recorded``, ``dropped`` (queue full or recorder closed),
    ``failed`` (the guard raised; a record with ``error`` is still written), ``sink_errors`` (the sink
    raised; logged once). :meth:`flush` waits for the queue to drain; :meth:`close` (also at ``with``
    exit) drains it and stops the workers.
    """

    def __init__(
        self,
        guard: GuardReasoner,
        *,
        sink: ShadowSink = "log",
        max_queue: int = 1000,
        workers: int = 1,
        batch_size: int = 16,
        enforce: bool = False,
    ):
        if max_queue < 1 or workers < 1 or batch_size < 1:
            raise ValueError(
                f"max_queue, workers and batch_size must be positive, got {max_queue}, {workers}, {batch_size}."
            )
        self.guard = guard
        self.enforce = enforce
        self.batch_size = batch_size
        self._write = _sink_writer(sink)
        self._queue: queue.Queue[_Check | None] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self._closed = False
        self._warned: set[str] = set()
        self.submitted = self.recorded = self.dropped = self.failed = self.sink_errors = 0
        self._workers = [
            threading.Thread(target=self._work, name=f"guardreasoner-shadow-{i}", daemon=True)
            for i in range(workers)
        ]
        for worker in self._workers:
            worker.start()

    # -- the hooks' side ------------------------------------------------------------------------------

    def submit(
        self, prompt: str, response: str | None = None, *, stage: str, metadata: dict[str, Any] | None = None
    ) -> bool:
        """Queue a check and return at once: True when queued, False when dropped (queue full or closed)."""
        check = _Check(prompt, response, stage, dict(metadata or {}))
        with self._lock:
            self.submitted += 1
            reason = "closed"
            if not self._closed:
                try:
                    self._queue.put_nowait(check)
                    return True
                except queue.Full:
                    reason = "queue_full"
            self.dropped += 1
            dropped = self.dropped
        count_shadow_drop(reason)
        self._warn_once(
            "dropped",
            "GuardReasoner shadow mode dropped a check (%d so far): the queue (max_queue=%d) is full or the "
            "recorder is closed. Raise max_queue or workers, or use a faster guard; ShadowRecorder.dropped "
            "keeps the count.",
            dropped,
            self._queue.maxsize,
        )
        return False

    def check(
        self,
        prompt: str,
        response: str | None = None,
        *,
        stage: str,
        metadata: dict[str, Any] | None = None,
        tracer: CheckTracer = NO_TRACE,
    ) -> Verdict | None:
        """What a hook calls: without ``enforce``, :meth:`submit` (returns None); with it, judge now (recorded
        by ``tracer`` in the framework's traces), record, and raise :class:`GuardReasonerViolation` when the
        verdict blocks (else return the verdict)."""
        if (check := self._enforced(prompt, response, stage, metadata)) is None:
            return None
        return self._enforce(check, classify_checks(tracer, self.guard, [Check(stage, prompt, response)])[0])

    async def acheck(
        self,
        prompt: str,
        response: str | None = None,
        *,
        stage: str,
        metadata: dict[str, Any] | None = None,
        tracer: CheckTracer = NO_TRACE,
    ) -> Verdict | None:
        """:meth:`check` for async hooks (the enforcing check awaits the guard's ``aclassify``)."""
        if (check := self._enforced(prompt, response, stage, metadata)) is None:
            return None
        verdicts = await aclassify_checks(tracer, self.guard, [Check(stage, prompt, response)])
        return self._enforce(check, verdicts[0])

    def _enforced(
        self, prompt: str, response: str | None, stage: str, metadata: dict[str, Any] | None
    ) -> _Check | None:
        """Without ``enforce``: queue the check and None; with it: the check to judge in the caller."""
        if not self.enforce:
            self.submit(prompt, response, stage=stage, metadata=metadata)
            return None
        with self._lock:
            self.submitted += 1
        return _Check(prompt, response, stage, dict(metadata or {}))

    def _enforce(self, check: _Check, verdict: Verdict) -> Verdict:
        record = self._record(check, verdict, None, queued_s=0.0, judged_s=time.monotonic() - check.enqueued)
        self._emit(record)
        if record["harmful"]:
            raise GuardReasonerViolation(
                verdict=verdict, stage=check.stage, content=check.response or check.prompt
            )
        return verdict

    # -- lifecycle ------------------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """The counters, and how many checks wait in the queue now."""
        with self._lock:
            return {
                "submitted": self.submitted,
                "recorded": self.recorded,
                "dropped": self.dropped,
                "failed": self.failed,
                "sink_errors": self.sink_errors,
                "queued": self._queue.unfinished_tasks,
            }

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued check is recorded; False when ``timeout`` (seconds) passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def close(self, timeout: float | None = None) -> None:
        """Stop taking checks, record what is queued, stop the workers; log the counters if any were lost."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.flush(timeout)
        for _ in self._workers:
            self._queue.put(None)
        for worker in self._workers:
            worker.join(timeout)
        stats = self.stats()
        if stats["dropped"] or stats["failed"] or stats["sink_errors"]:
            logger.warning("GuardReasoner shadow mode closed: %s", stats)

    def __enter__(self) -> ShadowRecorder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- workers --------------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                self._queue.task_done()
                return
            batch = [first]
            while len(batch) < self.batch_size:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:  # a stop marker: put it back for this or another worker's next turn
                    self._queue.task_done()
                    self._queue.put(None)
                    break
                batch.append(item)
            try:
                self._judge(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _judge(self, batch: list[_Check]) -> None:
        started = time.monotonic()
        try:
            with shadow_span([check.span_context for check in batch], len(batch)):
                verdicts: list[Verdict | None] = list(
                    self.guard.classify_batch([(check.prompt, check.response) for check in batch])
                )
            error = None
        except Exception as exc:  # the guard's policy covers engine failures; anything else is recorded
            verdicts, error = [None] * len(batch), f"{type(exc).__name__}: {exc}"
            with self._lock:
                self.failed += len(batch)
            self._warn_once("failed", "GuardReasoner shadow mode: the guard raised (%s).", error)
        judged_s = time.monotonic() - started
        for check, verdict in zip(batch, verdicts):
            self._emit(
                self._record(check, verdict, error, queued_s=started - check.enqueued, judged_s=judged_s)
            )

    @staticmethod
    def _record(
        check: _Check, verdict: Verdict | None, error: str | None, *, queued_s: float, judged_s: float
    ) -> ShadowRecord:
        judged_on = "request" if check.response is None else "response"
        return {
            "time": check.submitted,
            "stage": check.stage,
            "prompt": check.prompt,
            "response": check.response,
            "harmful": None if verdict is None else is_violation(verdict, judged_on=judged_on),
            "verdict": None if verdict is None else verdict.model_dump(mode="json"),
            "error": error,
            "queued_s": round(max(queued_s, 0.0), 6),
            "judged_s": round(judged_s, 6),
            "metadata": check.metadata,
        }

    def _emit(self, record: ShadowRecord) -> None:
        try:
            self._write(record)
        except Exception as exc:
            with self._lock:
                self.sink_errors += 1
            self._warn_once(
                "sink", "GuardReasoner shadow mode: the sink raised (%s: %s).", type(exc).__name__, exc
            )
            return
        with self._lock:
            self.recorded += 1

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        logger.warning(message, *args)


def _sink_writer(sink: ShadowSink) -> Callable[[ShadowRecord], None]:
    if callable(sink):
        return sink
    if sink == "log":
        return lambda record: logger.info("%s", json.dumps(record, default=str))
    if isinstance(sink, (str, os.PathLike)):
        path = Path(sink)
        if not path.parent.is_dir():
            raise ValueError(f"The shadow sink's folder {path.parent} does not exist; create it first.")
        lock = threading.Lock()

        def append(record: ShadowRecord) -> None:
            line = json.dumps(record, default=str) + "\n"
            with lock, path.open("a", encoding="utf-8") as handle:
                handle.write(line)

        return append
    raise ValueError(f"sink must be 'log', a path or a callable, got {sink!r}.")
