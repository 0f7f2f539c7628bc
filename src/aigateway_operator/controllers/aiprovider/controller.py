"""The AIProvider controller: its pass, its deletion, its indexes, its event sources and the
garbage collector of its rows, as one object the operator layer's kopf handlers call.

What wakes an AIProvider besides its own watch events:

- a referenced Secret changing (:meth:`secret_changed`, fed by the metadata-only Secret
  watch through the Secret -> objects index);
- its Coder row changed outside the operator (:meth:`watch_drift`: ``LISTEN
  ai_providers_changed``, then one query over every tracked row);
- the provider name it waits for becoming free (the holder's deletion pokes the others).

**Garbage collection.** A row whose object is gone without our finalizer having released it
(created and deleted before kopf added the finalizer, a finalizer removed by hand, an object
deleted while no operator ran) is released per the deletion policy recorded with it: at once
when kopf reports the object deleted (:meth:`forget`, unless the record was rewritten for a
newer object of the same identity), and by :meth:`sweep`, which compares the records of this
operator install with the objects that exist at start and every resync interval and collects
a record whose object has been missing for ``AIGW_GC_GRACE_S``. Nothing is collected on a
guess: an object not yet seen is looked up first (only a 404 counts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine, Mapping
from typing import Any

from aigateway_operator.api.identity import AIPROVIDER
from aigateway_operator.controllers.aiprovider import finalize as finalizing
from aigateway_operator.controllers.aiprovider import reconcile as reconciling
from aigateway_operator.controllers.aiprovider.drift import DriftTracker
from aigateway_operator.controllers.aiprovider.index import ProviderIndex, effective_name
from aigateway_operator.controllers.runner import Body, Runner
from aigateway_operator.controllers.shared import ObjectIdentity, PassOutcome, forget_object
from aigateway_operator.controllers.wiring import Wiring
from aigateway_operator.kube import KubeError
from aigateway_operator.store import OwnerRef, StoreError

__all__ = ["AIProviderController"]

log = logging.getLogger("aigateway_operator")


class AIProviderController:
    kind = AIPROVIDER

    def __init__(self, wiring: Wiring, limit: asyncio.Semaphore) -> None:
        self.wiring = wiring
        self.index = ProviderIndex()
        self.drift = DriftTracker()
        self.runner = Runner(self, wiring, limit, resync_s=wiring.settings.resync_interval_s)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_sweep = 0.0
        self._missing_since: dict[tuple[str, str, str, str], float] = {}

    # --- KindPasses -----------------------------------------------------------------------

    async def reconcile(self, body: Body) -> PassOutcome:
        self._maybe_sweep()
        ident = ObjectIdentity.from_body(self.kind, body)
        outcome = await reconciling.reconcile(
            self.wiring, ident, body.get("spec"), body.get("status")
        )
        self.drift.remember(ident, outcome.row_id, outcome.row_version)
        return outcome

    async def finalize(self, body: Body) -> PassOutcome:
        ident = ObjectIdentity.from_body(self.kind, body)
        outcome = await finalizing.finalize(
            self.wiring, ident, body.get("spec"), body.get("status")
        )
        if outcome.done:
            self._released(ident, body.get("spec") or {})
        return outcome

    def observed(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        uid = str(meta.get("uid", ""))
        if not uid:
            return
        if event_type == "DELETED":
            self.index.remove(uid)
            return
        self.index.update(
            uid,
            str(meta.get("namespace", "")),
            str(meta.get("name", "")),
            body.get("spec") or {},
            meta,
        )

    def forget(self, ident: ObjectIdentity, lock: asyncio.Lock | None) -> None:
        name = self.index.provider_name(ident.uid)
        self.index.remove(ident.uid)
        self.drift.forget(ident.uid)
        forget_object(ident)
        self._spawn(self._collect(ident.owner(self.wiring.settings.instance_id), lock, name))

    def _released(self, ident: ObjectIdentity, spec: Mapping[str, Any]) -> None:
        """The object's row is released: stop tracking it and wake whoever waits for its name."""
        self.drift.forget(ident.uid)
        forget_object(ident)
        name = effective_name(spec, ident.name)
        self.index.remove(ident.uid)
        self.runner.poke(c.uid for c in self.index.claims(name))

    # --- garbage collection -----------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _collect(self, owner: OwnerRef, lock: asyncio.Lock | None, name: str | None) -> bool:
        """Apply the deletion policy recorded with ``owner``'s row, if a record is left;
        whether anything was collected. Failures are logged: the next sweep retries."""
        try:
            async with lock or contextlib.nullcontext():
                result = await self.wiring.store.collect_provider(owner)
        except StoreError as exc:
            log.warning(
                "[%s/%s] collecting the Coder row failed: %s", owner.namespace, owner.name, exc
            )
            return False
        if result.action == "absent":
            return False
        log.info(
            "[%s/%s] the AIProvider is gone; its Coder row was %s (the recorded policy)",
            owner.namespace,
            owner.name,
            "soft-deleted" if result.action == "deleted" else "released",
        )
        if name is not None:
            self.runner.poke(c.uid for c in self.index.claims(name))
        return True

    def _maybe_sweep(self) -> None:
        """A sweep at most once per resync interval, run from a pass (so only where kopf lets
        passes run)."""
        now = time.monotonic()
        if now - self._last_sweep >= self.wiring.settings.resync_interval_s:
            self._last_sweep = now
            self._spawn(self.sweep())

    async def sweep(self, listed: set[tuple[str, str]] | None = None) -> int:
        """Collect the rows recorded for AIProviders of this install whose object has been
        missing (in the watched namespaces) for ``AIGW_GC_GRACE_S``; how many.

        ``listed``: the ``(namespace, name)`` of every AIProvider, from a listing made before
        any pass could run (at start); without it, an object not seen by the watch is looked
        up in the API server, and only a 404 counts as missing. The grace keeps a cluster
        rebuilt from Git whole while its objects arrive after the operator: a re-applied
        object takes its row back (same identity) and nothing was deleted meanwhile. The
        clock restarts with the process, which only ever delays a collection.
        """
        settings = self.wiring.settings
        watched = set(settings.namespace_list())
        try:
            records = await self.wiring.store.owner_records(settings.instance_id)
        except StoreError as exc:
            log.warning("ownership sweep skipped: %s", exc)
            return 0
        now = time.monotonic()
        missing: dict[tuple[str, str, str, str], float] = {}
        collected = 0
        for record in records:
            owner = record.owner
            if owner.kind != self.kind.kind or record.row_table != "ai_providers":
                continue
            if record.deletion_policy == "Orphan":
                continue  # left in place on purpose; the same object re-created takes it
            if watched and owner.namespace not in watched:
                continue
            if not await self._missing(owner, listed):
                continue
            since = missing[owner.key] = self._missing_since.get(owner.key, now)
            if now - since >= settings.gc_grace_s and await self._collect(owner, None, None):
                collected += 1
                del missing[owner.key]
        self._missing_since = missing
        return collected

    async def _missing(self, owner: OwnerRef, listed: set[tuple[str, str]] | None) -> bool:
        """Whether ``owner``'s object does not exist: absent from ``listed``, or (without a
        listing) unknown to the watch and answered 404 by the API server."""
        if listed is not None:
            return (owner.namespace, owner.name) not in listed
        if self.index.has(owner.namespace, owner.name):
            return False
        try:
            found = await self.wiring.kube.get_object(self.kind.plural, owner.namespace, owner.name)
        except KubeError as exc:
            log.warning("ownership sweep: %s", exc)
            return False
        return found is None

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- other event sources --------------------------------------------------------------

    def secret_changed(self, event_type: str | None, meta: Mapping[str, Any]) -> None:
        """A Secret changed (metadata only): wake every AIProvider that references it.

        Listing items (``event_type`` None) are skipped: every object gets its first pass
        anyway, and a relisting reports a Secret that moved while nobody watched as
        ``MODIFIED``.
        """
        if event_type:
            ns, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
            self.runner.poke(self.index.referencing(ns, name))

    async def check_drift(self) -> int:
        """Wake every object whose row someone else wrote since our last pass; how many."""
        snap = self.drift.snapshot()
        if not snap.rows:
            return 0
        versions = await self.wiring.store.provider_row_versions(snap.row_ids())
        changed = self.drift.changed(snap, versions, self.runner.busy())
        for _uid, tracked in changed:
            log.info(
                "[%s/%s] Coder row of AIProvider changed outside the operator",
                tracked.namespace,
                tracked.name,
            )
        return self.runner.poke(uid for uid, _ in changed)

    async def watch_drift(self) -> None:
        """On every burst of ``ai_providers_changed``: wake objects whose row someone else
        wrote. Runs until cancelled; a failed check is logged (the resync is the backstop)."""
        async for _ in self.wiring.store.watch_changes(self.wiring.settings.drift_debounce_s):
            try:
                await self.check_drift()
            except Exception:
                log.exception("drift check failed; each object's periodic resync will catch up")
