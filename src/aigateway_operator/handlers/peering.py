"""Whether this replica may act, under kopf peering: the gate in front of our work queues.

kopf pauses its own watch streams when a live peer with a higher (or equal) priority shares
the peering object, but it does not tell handlers; our work queues are fed by our own loops
too (retries, re-verification, drift), so they need the same answer. The gate reads the same
peering object kopf heartbeats into and applies kopf's rule (``process_peering_event`` in
kopf 1.45): paused while any *other* live peer has a priority >= ours. Without peering
(standalone) the gate is always open.

kopf keeps its heartbeat well inside the lifetime, so polling every ``lifetime / 4`` seconds
(at most 5 s) notices a failover about as fast as kopf itself does. A read that fails keeps
the last answer. In a brief window the two may disagree; the database stays correct anyway
(advisory lock, idempotent writes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aigateway_operator.kube import Kube

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
        kube: Kube,
        name: str,
        namespaces: Sequence[str | None],
        identity: str,
        priority: int,
        lifetime_s: float,
    ) -> None:
        self.kube = kube
        self.name = name
        self.namespaces = list(namespaces) or [None]
        self.identity = identity
        self.priority = priority
        self.interval = max(0.5, min(5.0, lifetime_s / 4))
        self._open = asyncio.Event()  # closed at start, as kopf starts paused under peering
        self._task: asyncio.Task[None] | None = None

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    async def wait_open(self) -> None:
        await self._open.wait()

    async def check(self) -> None:
        blockers: list[str] = []
        for namespace in self.namespaces:
            body = await self.kube.read_peering(self.name, namespace)
            status = body.get("status") if body else None
            blockers += paused_by(status, self.identity, self.priority, datetime.now(UTC))
        if blockers and self._open.is_set():
            log.info("pausing: peers with a higher or equal priority are active: %s", blockers)
            self._open.clear()
        elif not blockers and not self._open.is_set():
            log.info("active: no peer outranks this replica (priority %d)", self.priority)
            self._open.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception as exc:  # keep the last answer; the next poll tries again
                log.warning("could not read the peering object %s: %s", self.name, exc)
            await asyncio.sleep(self.interval)  # poll period, not synchronisation

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="aigw-peering-gate")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
