"""A level-triggered work queue of object keys (uids), in the manner of client-go's.

Every trigger (a watch event, a referenced Secret changing, a drifted row, a due
re-verification, a retry) only *adds a key*; workers take keys and run one pass over the
object's latest state. So:

- a key is queued at most once, however many triggers arrive before a worker takes it;
- a key is never processed by two workers at once: added while in flight, it is marked dirty
  and queued again when that pass finishes (the pass that follows sees the newest state);
- ``add_after`` schedules a key for later (retries, re-verification); an earlier schedule
  wins over a later one, and an immediate ``add`` makes the key due now.

No I/O and no Kubernetes here: the queue is plain asyncio bookkeeping, tested on its own.
"""

from __future__ import annotations

import asyncio
from collections import deque


class WorkQueue:
    def __init__(self) -> None:
        self._order: deque[str] = deque()
        self._queued: set[str] = set()
        self._processing: set[str] = set()
        self._dirty: set[str] = set()
        self._timers: dict[str, tuple[float, asyncio.TimerHandle]] = {}
        self._wakeup = asyncio.Event()
        self._failures: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._order)

    def add(self, key: str) -> None:
        """Make ``key`` due now (a no-op when it is already queued)."""
        self._cancel_timer(key)
        if key in self._processing:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._order.append(key)
            self._wakeup.set()

    def add_after(self, key: str, delay: float) -> None:
        """Make ``key`` due in ``delay`` seconds, unless it is due sooner already."""
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        current = self._timers.get(key)
        if current is not None and current[0] <= when:
            return
        self._cancel_timer(key)
        self._timers[key] = (when, loop.call_at(when, self._fire, key))

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def _cancel_timer(self, key: str) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer[1].cancel()

    async def get(self) -> str:
        """The next due key; it stays *processing* until :meth:`done` is called for it."""
        while not self._order:
            self._wakeup.clear()
            await self._wakeup.wait()
        key = self._order.popleft()
        self._queued.discard(key)
        self._processing.add(key)
        if self._order:
            self._wakeup.set()  # more work: let another waiting worker through
        return key

    def done(self, key: str) -> None:
        """The pass over ``key`` finished; queue it again if it was added meanwhile."""
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def forget(self, key: str) -> None:
        """The object is gone: drop its schedule and its failure count."""
        self._cancel_timer(key)
        self._failures.pop(key, None)

    def busy(self) -> frozenset[str]:
        """Keys whose pass is in flight right now."""
        return frozenset(self._processing)

    def scheduled(self, key: str) -> bool:
        return key in self._timers

    def backoff(self, key: str, base: float, cap: float = 300.0) -> float:
        """Exponential backoff for consecutive failures of ``key``: base, 2x base, ... cap."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        return float(min(cap, base * 2 ** min(failures, 10)))

    def succeeded(self, key: str) -> None:
        """Reset the backoff of ``key`` after a pass that needs no retry."""
        self._failures.pop(key, None)
