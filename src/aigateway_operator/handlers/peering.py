"""Whether this replica may act, under kopf peering: the gate in front of our work queues.

kopf pauses its own watch streams when a live peer with a higher (or equal) priority shares
the peering object, but it does not tell handlers; our work queues are fed by our own
informers and loops (retries, re-verification, drift), so they need the same answer. The gate
watches the same peering object kopf heartbeats into and applies kopf's rule
(``process_peering_event`` in kopf 1.45): paused while any *other* live peer has a priority
>= ours. It re-evaluates on every change of the object, as kopf does, and every
``lifetime / 4`` seconds (at most 5 s) so that a peer whose heartbeat expired (a SIGKILLed
replica) stops blocking. Without peering (standalone) the gate is always open.

It starts closed, as kopf starts paused under peering, and opens on the first listing of
the peering object. In a brief window the gate and kopf may disagree; the database stays
correct anyway (advisory lock, idempotent writes).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aigateway_operator.kube import Informer

log = logging.getLogger("aigateway_operator")


def paused_by(
    status: Mapping[str, Any] | None, identity: str, priority: int, now: datetime
) -> list[str]:
    """The peers that pause us by kopf's rule: live, not us, priority >= ours."""
    blockers = []
    for peer, info in (status or {}).items():
        if peer == identity or not isinstance(info, Mapping):
            continue
        try:
            seen = datetime.fromisoformat(str(info.get("lastseen")))
            lifetime = timedelta(seconds=int(info.get("lifetime", 60)))
            their = int(info.get("priority", 0))
        except (TypeError, ValueError):
            continue
        if seen.tzinfo is None:
            seen = seen.replace(tzinfo=UTC)
        if seen + lifetime > now and their >= priority:
            blockers.append(peer)
    return sorted(blockers)


class PeeringGate:
    """Open while no live peer outranks us in any peering object we take part in."""

    def __init__(
        self,
        name: str,
        namespaces: Sequence[str],
        identity: str,
        priority: int,
        lifetime_s: float,
    ) -> None:
        self.name = name
        self.namespaces: list[str | None] = list(namespaces) or [None]
        self.identity = identity
        self.priority = priority
        self.interval = max(0.5, min(5.0, lifetime_s / 4))
        self._status: dict[str | None, Mapping[str, Any]] = {}
        self._synced: set[str | None] = set()
        self._open = asyncio.Event()  # closed at start, as kopf starts paused under peering
        self._informers: list[Informer] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    async def wait_open(self) -> None:
        await self._open.wait()

    def observe(self, namespace: str | None, type_: str | None, body: Mapping[str, Any]) -> None:
        """One event of a peering object (listings included): re-evaluate."""
        if body.get("metadata", {}).get("name") == self.name:
            if type_ == "DELETED":
                self._status.pop(namespace, None)
            else:
                self._status[namespace] = dict(body.get("status") or {})
        self.evaluate()

    def listed(self, namespace: str | None) -> None:
        self._synced.add(namespace)
        self.evaluate()

    def evaluate(self) -> None:
        if len(self._synced) < len(self.namespaces):
            return  # not every peering object seen yet: stay as we are
        now = datetime.now(UTC)
        blockers = sorted(
            {
                peer
                for status in self._status.values()
                for peer in paused_by(status, self.identity, self.priority, now)
            }
        )
        if blockers and self._open.is_set():
            log.info("pausing: peers with a higher or equal priority are active: %s", blockers)
            self._open.clear()
        elif not blockers and not self._open.is_set():
            log.info("active: no peer outranks this replica (priority %d)", self.priority)
            self._open.set()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.interval)  # the expiry check period, not synchronisation
            self.evaluate()

    def start(self, api: Any) -> None:
        loop = asyncio.get_running_loop()
        for namespace in self.namespaces:
            plural = "kopfpeerings" if namespace else "clusterkopfpeerings"

            informer = Informer(
                api,
                plural,
                namespace,
                functools.partial(self.observe, namespace),
                loop,
                group="kopf.dev",
                version="v1",
            )
            informer.on_listed = functools.partial(self.listed, namespace)
            self._informers.append(informer)
            informer.start()
        self._task = asyncio.create_task(self._tick(), name="aigw-peering-gate")

    async def stop(self) -> None:
        for informer in self._informers:
            informer.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
