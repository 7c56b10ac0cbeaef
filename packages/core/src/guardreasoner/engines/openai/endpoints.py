"""An endpoint pool: several servers behind one engine, with a circuit breaker per server.

Each request goes to the healthy endpoint with the fewest requests in flight (ties taken in turn). An
endpoint that fails ``eject_after`` times in a row (unreachable, timing out, answering 5xx or garbage) is
ejected for ``cooldown`` seconds; after that it gets requests again, and one more failure ejects it at
once, while a success restores it fully. A retry goes to another endpoint when there is one. When every
endpoint is ejected, the one due back soonest is tried rather than failing without asking.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

logger = logging.getLogger("guardreasoner")


@dataclass
class Endpoint:
    base_url: str
    in_flight: int = 0
    consecutive_failures: int = 0
    ejected_until: float = 0.0
    ejections: int = 0
    requests: int = 0


class EndpointPool:
    def __init__(
        self,
        base_urls: Sequence[str],
        *,
        eject_after: int = 3,
        cooldown: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not base_urls:
            raise ValueError("The endpoint pool needs at least one base URL.")
        if len(set(base_urls)) != len(base_urls):
            raise ValueError(f"The base URLs repeat one another: {list(base_urls)}.")
        if eject_after < 1:
            raise ValueError(f"eject_after must be at least 1, not {eject_after}.")
        if cooldown < 0:
            raise ValueError(f"cooldown must be 0 or more seconds, not {cooldown}.")
        self.endpoints = [Endpoint(url) for url in base_urls]
        self.eject_after = eject_after
        self.cooldown = cooldown
        self._clock = clock
        self._turn = itertools.count()
        self._lock = threading.Lock()

    def acquire(self, avoid: Endpoint | None = None) -> Endpoint:
        """The endpoint for the next attempt (not ``avoid``, the one that just failed, if another is healthy)."""
        with self._lock:
            now = self._clock()
            healthy = [e for e in self.endpoints if e.ejected_until <= now]
            candidates = [e for e in healthy if e is not avoid] or healthy
            if candidates:
                start = next(self._turn) % len(candidates)
                rotated = candidates[start:] + candidates[:start]
                chosen = min(rotated, key=lambda e: e.in_flight)
            else:
                chosen = min(self.endpoints, key=lambda e: e.ejected_until)
            chosen.in_flight += 1
            chosen.requests += 1
            return chosen

    def release(self, endpoint: Endpoint, *, ok: bool, fault: BaseException | None = None) -> None:
        """Record the attempt's outcome: ``ok``, a fault of the endpoint (``fault``), or neither (a 4xx)."""
        with self._lock:
            endpoint.in_flight -= 1
            if ok:
                if endpoint.ejections and endpoint.consecutive_failures >= self.eject_after:
                    logger.info(
                        "GuardReasoner endpoint %s answers again; back in the pool.", endpoint.base_url
                    )
                endpoint.consecutive_failures = 0
                return
            if fault is None:
                return
            endpoint.consecutive_failures += 1
            now = self._clock()
            if endpoint.consecutive_failures >= self.eject_after and endpoint.ejected_until <= now:
                endpoint.ejected_until = now + self.cooldown
                endpoint.ejections += 1
                if len(self.endpoints) > 1:
                    logger.warning(
                        "GuardReasoner ejected endpoint %s for %g s after %d failures in a row (last: %s).",
                        endpoint.base_url,
                        self.cooldown,
                        endpoint.consecutive_failures,
                        fault,
                    )
