"""Kubernetes Events, posted in the background by one poster task (as kopf's own are).

A pass queues its Events and moves on: Events are best-effort telemetry, and creating one is
among the most expensive requests an API server serves (each gets an etcd lease for its TTL),
so a burst of passes must not wait on them. One poster keeps them in order. The queue is
bounded; when it is full (the API server is far behind) new Events are dropped and counted in
``aigw_events_dropped_total``, never blocking a pass. Messages are secret-free by
construction (every caller builds them from names and reasons).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from aigateway_operator import metrics
from aigateway_operator.kube import Kube, ObjectRef

log = logging.getLogger("aigateway_operator")

QUEUE_SIZE = 10_000
DRAIN_ON_STOP_S = 2.0


@dataclass(frozen=True)
class PendingEvent:
    about: ObjectRef
    type: str
    reason: str
    message: str


class EventPoster:
    def __init__(self, kube: Kube, size: int = QUEUE_SIZE) -> None:
        self.kube = kube
        self._queue: asyncio.Queue[PendingEvent] = asyncio.Queue(maxsize=size)
        self._task: asyncio.Task[None] | None = None

    def post(self, about: ObjectRef, type_: str, reason: str, message: str) -> None:
        try:
            self._queue.put_nowait(PendingEvent(about, type_, reason, message[:1024]))
        except asyncio.QueueFull:
            metrics.EVENTS_DROPPED.inc()

    def pending(self) -> int:
        return self._queue.qsize()

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                posted = await self.kube.post_event(
                    event.about, event.type, event.reason, event.message
                )
                if not posted:
                    metrics.EVENTS_DROPPED.inc()
            except Exception:  # best effort: a failed Event never stops the poster
                metrics.EVENTS_DROPPED.inc()
                log.warning("could not post Event %s about %s", event.reason, event.about.name)
            finally:
                self._queue.task_done()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="aigw-event-poster")

    async def stop(self) -> None:
        """Post what is queued (for at most a moment), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), DRAIN_ON_STOP_S)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
