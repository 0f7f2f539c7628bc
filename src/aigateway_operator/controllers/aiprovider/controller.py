"""The AIProvider controller: its pass, its deletion, its indexes, its event sources and the
garbage collector of its rows, as one object the operator layer's kopf handlers call.

What wakes an AIProvider besides its own watch events:

- a referenced Secret changing (:meth:`secret_changed`, fed by the metadata-only Secret
  watch through the Secret -> objects index);
- its Coder row changed outside the operator (:meth:`watch_drift`: ``LISTEN
  ai_providers_changed``, then one query over every tracked row);
- the provider name it waits for becoming free (the holder's deletion pokes the others).

**Garbage collection** of rows whose object is gone without our finalizer having released
them: :mod:`aigateway_operator.controllers.collector` (at once on the watch's delete event,
and by the sweep after ``AIGW_GC_GRACE_S``), applying the policy recorded with the row.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from aigateway_operator.api.identity import AIPROVIDER
from aigateway_operator.controllers.aiprovider import finalize as finalizing
from aigateway_operator.controllers.aiprovider import reconcile as reconciling
from aigateway_operator.controllers.aiprovider.drift import DriftTracker
from aigateway_operator.controllers.aiprovider.hostnames import HostnameCheck, HostnameWatch
from aigateway_operator.controllers.aiprovider.index import ProviderIndex
from aigateway_operator.controllers.aiprovider.part import ProviderPart
from aigateway_operator.controllers.aiprovider.reading import read_provider
from aigateway_operator.controllers.collector import Collector
from aigateway_operator.controllers.record import ObjectRecord
from aigateway_operator.controllers.runner import Body, Runner
from aigateway_operator.controllers.shared import (
    ObjectIdentity,
    PassOutcome,
    forget_object,
    log_ref,
)
from aigateway_operator.controllers.wiring import Wiring
from aigateway_operator.store import OwnerRef

__all__ = ["AIProviderController"]

log = logging.getLogger("aigateway_operator")


class AIProviderController:
    kind = AIPROVIDER

    def __init__(self, wiring: Wiring, limit: asyncio.Semaphore) -> None:
        self.wiring = wiring
        self.index = ProviderIndex()
        self.runner: Runner[ProviderPart] = Runner(
            self,
            wiring,
            limit,
            resync_s=wiring.settings.resync_interval_s,
            on_stop=lambda record: DriftTracker.unwatch(record.part),
        )
        self.drift = DriftTracker(self.runner.records)
        self.hostnames = HostnameWatch(
            claims=lambda name: [c.uid for c in self.index.claims(name)],
            wake=lambda uids: self.runner.poke(uids),
            part_of=self._part_of,
        )
        self.collector = Collector(
            self.kind,
            wiring,
            collect=self._collect,
            known=self.index.has,
            # Orphan: left in place on purpose; the same identity re-created takes it back.
            skip=lambda r: r.row_table != "ai_providers" or r.deletion_policy == "Orphan",
        )

    def _part_of(self, uid: str) -> ProviderPart | None:
        record = self.runner.records.get(uid)
        return record.part if record is not None else None

    # --- KindPasses -----------------------------------------------------------------------

    def new_part(self) -> ProviderPart:
        return ProviderPart()

    async def reconcile(
        self, body: Body, ident: ObjectIdentity, record: ObjectRecord[ProviderPart]
    ) -> PassOutcome:
        self.collector.maybe_sweep()
        outcome = await reconciling.reconcile(
            self.wiring, ident, body.get("spec"), body.get("status")
        )
        DriftTracker.remember(record.part, outcome.row_id, outcome.row_version)
        if outcome.hostname_checked:
            self.hostnames.seen(record.part, HostnameCheck(ident.name, outcome.hostname_peers))
        return outcome

    async def finalize(
        self, body: Body, ident: ObjectIdentity, record: ObjectRecord[ProviderPart]
    ) -> PassOutcome:
        outcome = await finalizing.finalize(
            self.wiring, ident, body.get("spec"), body.get("status")
        )
        if outcome.done:
            self._released(ident, record.part)
        return outcome

    def observed(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        uid = str(meta.get("uid", ""))
        if not uid:
            return
        if event_type == "DELETED":
            return  # forget() removes it from the index, once the runner dropped the record
        ident = ObjectIdentity.from_body(self.kind, body)
        self.index.update(
            read_provider(ident, body.get("spec")), deleting=bool(meta.get("deletionTimestamp"))
        )

    def forget(self, ident: ObjectIdentity, record: ObjectRecord[ProviderPart] | None) -> None:
        """The object is gone and its record dropped: leave the index, say goodbye to the
        hostname peer, drop its metric series and Event keys, collect its rows if our
        finalizer never released them, then wake whoever waits for its name."""
        name = self.index.provider_name(ident.uid)
        self.index.remove(ident.uid)
        if record is not None:
            self.hostnames.gone(record.part)
        forget_object(self.wiring, ident)

        def wake_waiters() -> None:
            if name is not None:
                self.runner.poke(c.uid for c in self.index.claims(name))

        self.collector.deleted(
            ident.owner(self.wiring.settings.instance_id),
            record.lock if record is not None else None,
            wake_waiters,
        )

    def _released(self, ident: ObjectIdentity, part: ProviderPart) -> None:
        """The object's row is released (the object stays until its ``DELETED`` event drops
        its record): its name claim ends, whoever waits for the name and its hostname's sole
        peer are woken, and its row is no longer watched for drift."""
        DriftTracker.unwatch(part)
        self.hostnames.gone(part)
        name = self.index.provider_name(ident.uid)
        self.index.remove(ident.uid)
        if name is not None:
            self.runner.poke(c.uid for c in self.index.claims(name))

    # --- garbage collection -----------------------------------------------------------------

    async def _collect(self, owner: OwnerRef) -> bool:
        result = await self.wiring.store.collect_provider(owner)
        return result.action != "absent"

    async def sweep(self, listed: set[tuple[str, str]] | None = None) -> int:
        return await self.collector.sweep(listed)

    async def stop(self) -> None:
        await self.collector.stop()

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
        for record in changed:
            log.info(
                "Coder row of AIProvider changed outside the operator",
                extra=log_ref(self.kind, record.namespace, record.name, record.uid),
            )
        return self.runner.poke(record.uid for record in changed)

    async def watch_drift(self) -> None:
        """On every burst of ``ai_providers_changed``: wake objects whose row someone else
        wrote. Runs until cancelled; a failed check is logged (the resync is the backstop)."""
        async for _ in self.wiring.store.watch_changes(self.wiring.settings.drift_debounce_s):
            try:
                await self.check_drift()
            except Exception:
                log.exception("drift check failed; each object's periodic resync will catch up")
