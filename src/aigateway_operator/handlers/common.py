"""Shared pieces of the kopf layer: per-object locks, event posting, the runtime in memo."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import kopf

from aigateway_operator.api.common import ConditionType
from aigateway_operator.reconcile.provider import Event
from aigateway_operator.reconcile.runtime import Runtime

ANNOTATION_PREFIX = "aigateway.dev"
#: kopf's own annotations live under a different prefix: annotations under kopf's storage
#: prefix are invisible to its change detection, and our pokes must be seen.
KOPF_PREFIX = "kopf.aigateway.dev"
FINALIZER = "aigateway.dev/finalizer"
#: Every condition type of every kind (metric series to drop when an object goes).
CONDITION_TYPES = [t.value for t in ConditionType]


class KeyedLocks:
    """One asyncio lock per object: timers and change handlers of one object never overlap."""

    def __init__(self) -> None:
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def busy(self) -> set[str]:
        """Keys whose pass is in flight right now."""
        return {key for key, lock in self._locks.items() if lock.locked()}

    def forget(self, key: str) -> None:
        lock = self._locks.get(key)
        if lock is not None and not lock.locked():
            del self._locks[key]

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self._locks[key]
        async with lock:
            yield


def runtime_of(memo: Any) -> Runtime:
    runtime: Runtime = memo.runtime
    return runtime


def post_events(body: Any, events: Iterable[Event]) -> None:
    """Post our own, secret-free Events (kopf no longer turns log lines into Events)."""
    for event in events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message[:1024])
