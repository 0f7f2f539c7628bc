"""Garbage collection of the rows whose object is gone, for either kind.

A row outlives its object when our finalizer never ran for it: the object was created and
deleted before kopf added the finalizer, someone removed the finalizer by hand, or the object
was deleted while no operator ran. kopf has no notion of "external state whose owner
vanished" (its finalizers are the only deletion hook), so this module is ours.

Two paths, both applying the deletion policy recorded with the rows:

- **at once** when the watch reports the object ``DELETED`` (:meth:`Collector.deleted`),
  under the object's lock (after any pass still running), and only if the records still
  name that object's uid (a re-created object of the same identity keeps them);
- **by the sweep** (:meth:`Collector.sweep`), at start and about once per resync interval:
  a record whose object has been *missing* (not seen by the watch and answered 404 by the API
  server, or absent from the start listing) for ``AIGW_GC_GRACE_S`` is collected. The grace
  keeps a cluster rebuilt from Git whole while its objects arrive after the operator (a
  re-applied object takes its rows back: the identity is the same). The clock restarts with
  the process, which only ever delays a collection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import Any

from aigateway_operator.api.identity import Kind
from aigateway_operator.controllers.actors import GARBAGE_COLLECTION
from aigateway_operator.controllers.shared import log_ref
from aigateway_operator.controllers.wiring import Wiring
from aigateway_operator.kube import KubeError
from aigateway_operator.store import OwnerRecord, OwnerRef, StoreError

__all__ = ["Collector"]

log = logging.getLogger("aigateway_operator")

#: Collect ``owner``'s rows; whether anything was collected. Raises StoreError on failure.
CollectRows = Callable[[OwnerRef], Awaitable[bool]]


class Collector:
    """The garbage collector of one kind's rows (see the module docs)."""

    def __init__(
        self,
        kind: Kind,
        wiring: Wiring,
        *,
        collect: CollectRows,
        known: Callable[[str, str], bool],
        skip: Callable[[OwnerRecord], bool] = lambda _record: False,
    ) -> None:
        self.kind = kind
        self.wiring = wiring
        self._collect = collect
        self._known = known
        self._skip = skip
        self._missing_since: dict[tuple[str, str, str, str], float] = {}
        self._last_sweep = 0.0
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- the two paths ----------------------------------------------------------------------

    def deleted(
        self,
        owner: OwnerRef,
        lock: asyncio.Lock | None,
        then: Callable[[], None] | None = None,
    ) -> None:
        """The watch reported the object deleted: collect its rows in the background (after
        any pass still holding ``lock``); ``then`` runs if anything was collected."""
        self._spawn(self._collect_logged(owner, lock, then))

    def maybe_sweep(self) -> None:
        """A sweep at most once per resync interval (called from passes, so only where kopf
        lets passes run: the active replica)."""
        now = time.monotonic()
        if now - self._last_sweep >= self.wiring.settings.resync_interval_s:
            self._last_sweep = now
            self._spawn(self.sweep())

    async def sweep(self, listed: set[tuple[str, str]] | None = None) -> int:
        """Collect the records of this kind whose object has been missing for the grace;
        how many. ``listed``: the ``(namespace, name)`` of every object from a listing made
        before any pass could run (at start); without it, an object unknown to the watch is
        looked up, and only a 404 counts as missing."""
        settings = self.wiring.settings
        watched = set(settings.namespace_list())
        try:
            records = await self.wiring.store.owner_records(settings.instance_id)
        except StoreError as exc:
            log.warning("ownership sweep skipped: %s", exc)
            return 0
        owners: dict[tuple[str, str, str, str], OwnerRef] = {}
        for record in records:
            owner = record.owner
            if owner.kind != self.kind.kind or self._skip(record):
                continue
            if watched and owner.namespace not in watched:
                continue
            # No uid: the sweep proved the identity's object missing, whichever uid wrote
            # the records (the uid check is for the delete-event path).
            owners.setdefault(owner.key, replace(owner, uid=""))
        now = time.monotonic()
        missing: dict[tuple[str, str, str, str], float] = {}
        collected = 0
        for key, owner in owners.items():
            if not await self._missing(owner, listed):
                continue
            since = missing[key] = self._missing_since.get(key, now)
            if now - since < settings.gc_grace_s:
                continue
            if await self._collect_logged(owner, None, None):
                collected += 1
                del missing[key]
        self._missing_since = missing
        return collected

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- helpers ----------------------------------------------------------------------------

    async def _missing(self, owner: OwnerRef, listed: set[tuple[str, str]] | None) -> bool:
        if listed is not None:
            return (owner.namespace, owner.name) not in listed
        if self._known(owner.namespace, owner.name):
            return False
        try:
            found = await self.wiring.kube.get_object(self.kind.plural, owner.namespace, owner.name)
        except KubeError as exc:
            log.warning("ownership sweep: %s", exc)
            return False
        return found is None

    async def _collect_logged(
        self, owner: OwnerRef, lock: asyncio.Lock | None, then: Callable[[], None] | None
    ) -> bool:
        try:
            async with lock or contextlib.nullcontext():
                done = await self._collect(replace(owner, actor=GARBAGE_COLLECTION))
        except StoreError as exc:
            log.warning(
                "collecting the %s's rows failed: %s; the sweep retries",
                self.kind.kind,
                exc,
                extra=log_ref(self.kind, owner.namespace, owner.name, owner.uid),
            )
            return False
        if done:
            log.info(
                "the %s is gone; its Coder rows were collected (the recorded policy)",
                self.kind.kind,
                extra=log_ref(self.kind, owner.namespace, owner.name, owner.uid),
            )
            if then is not None:
                then()
        return done

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
