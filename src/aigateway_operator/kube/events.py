"""Kubernetes Events, aggregated and posted in the background: what kopf cannot do for us.

kopf can post Events (``kopf.event``), but each call creates a new Event object: an object
that reports the same condition on every pass (a missing Secret, a key in use blocking its
deletion) would fill its namespace with identical Events. Kubernetes' own recorder (client-go's
``EventCorrelator``) aggregates instead: the same source, object, type, reason and message
bumps ``count`` and ``lastTimestamp`` of the Event already posted. This recorder does that:

- a pass hands its Events to :meth:`EventRecorder.post` and moves on (Events are best-effort
  telemetry; creating one is among the most expensive requests an API server serves);
- one background task posts them in order: a key seen before (kept in a bounded LRU, as
  client-go keeps its cache) is a PATCH of ``count``/``lastTimestamp`` on that Event; an
  unknown key, or an Event that expired meanwhile (404), is a new Event;
- the queue is bounded; when it is full (the API server is far behind) new Events are
  dropped and counted in ``aigw_events_dropped_total``, never blocking a pass.

Messages are secret-free by construction: every caller builds them from names and reasons.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from aigateway_operator import metrics
from aigateway_operator.kube.client import Kube, KubeError, ObjectRef

__all__ = ["COMPONENT", "EventRecorder"]

log = logging.getLogger("aigateway_operator")

COMPONENT = "aigateway-operator"
QUEUE_SIZE = 10_000
#: Aggregation keys remembered (client-go's default cache size is 4096).
CACHE_SIZE = 4096
DRAIN_ON_STOP_S = 2.0
MAX_MESSAGE = 1024

_Key = tuple[str, str, str, str]


@dataclass(frozen=True)
class _Pending:
    about: ObjectRef
    type: str
    reason: str
    message: str


def _stamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    def __init__(
        self,
        kube: Kube,
        size: int = QUEUE_SIZE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.kube = kube
        self._clock = clock
        self._instance = socket.gethostname()
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=size)
        self._posted: OrderedDict[_Key, tuple[str, int]] = OrderedDict()
        """Aggregation key -> (Event name, count), least recently used first."""
        self._task: asyncio.Task[None] | None = None

    def post(self, about: ObjectRef, type_: str, reason: str, message: str) -> None:
        """Queue an Event about ``about`` (never blocks; dropped and counted when full)."""
        try:
            self._queue.put_nowait(_Pending(about, type_, reason, message[:MAX_MESSAGE]))
        except asyncio.QueueFull:
            metrics.EVENTS_DROPPED.inc()

    def pending(self) -> int:
        return self._queue.qsize()

    async def _send(self, event: _Pending) -> None:
        about = event.about
        key = (about.uid, event.type, event.reason, event.message)
        now = _stamp(self._clock())
        known = self._posted.get(key)
        if known is not None:
            name, count = known
            patched = await self.kube.patch_event(
                about.namespace, name, {"count": count + 1, "lastTimestamp": now}
            )
            if patched is not None:
                self._remember(key, name, count + 1)
                return
            # Expired (Events live for the API server's event TTL): start a new one.
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{about.name}.", "namespace": about.namespace},
            "involvedObject": {
                "apiVersion": about.api_version,
                "kind": about.kind,
                "name": about.name,
                "namespace": about.namespace,
                "uid": about.uid,
            },
            "type": event.type,
            "reason": event.reason,
            "message": event.message,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        created = await self.kube.create_event(about.namespace, body)
        name = str((created.get("metadata") or {}).get("name", ""))
        if name:
            self._remember(key, name, 1)

    def _remember(self, key: _Key, name: str, count: int) -> None:
        self._posted[key] = (name, count)
        self._posted.move_to_end(key)
        while len(self._posted) > CACHE_SIZE:
            self._posted.popitem(last=False)

    def forget(self, uid: str) -> None:
        """The object is gone: its aggregation keys are of no further use."""
        for key in [k for k in self._posted if k[0] == uid]:
            del self._posted[key]

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._send(event)
            except (KubeError, Exception) as exc:  # best effort: a failed Event never stops us
                metrics.EVENTS_DROPPED.inc()
                log.warning(
                    "could not post Event %s about %s/%s: %s",
                    event.reason,
                    event.about.namespace,
                    event.about.name,
                    exc if isinstance(exc, KubeError) else type(exc).__name__,
                )
            finally:
                self._queue.task_done()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="aigw-event-recorder")

    async def stop(self) -> None:
        """Post what is queued (for at most a moment), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), DRAIN_ON_STOP_S)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
