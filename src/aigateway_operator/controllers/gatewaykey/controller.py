"""The AIGatewayCoderdKey controller: its pass, its deletion and its Secret events, as one
object the operator layer's kopf handlers call.

What wakes a gateway key besides its own watch events: its Secret changing or disappearing
(:meth:`secret_changed`, fed by the metadata-only Secret watch; only Secrets carrying our
owner label count, and our own writes are recognised by resourceVersion), and the pass's own
``next_due`` (heartbeat mirror, grace period, scheduled rotation).

Keys whose object is gone without our finalizer having released them are collected by
:mod:`aigateway_operator.controllers.collector` per the policy recorded with them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from aigateway_operator.api.identity import AIGATEWAYCODERDKEY, GATEWAY_KEY_OWNER_LABEL
from aigateway_operator.controllers.collector import Collector
from aigateway_operator.controllers.gatewaykey import finalize as finalizing
from aigateway_operator.controllers.gatewaykey import reconcile as reconciling
from aigateway_operator.controllers.gatewaykey.finalize import BLOCKED_RETRY_S
from aigateway_operator.controllers.gatewaykey.part import KeyPart
from aigateway_operator.controllers.gatewaykey.restart import Restarts
from aigateway_operator.controllers.record import ObjectRecord
from aigateway_operator.controllers.runner import Body, Runner
from aigateway_operator.controllers.shared import ObjectIdentity, PassOutcome, forget_object
from aigateway_operator.controllers.wiring import Wiring
from aigateway_operator.store import OwnerRef

__all__ = ["GatewayKeyController"]


class GatewayKeyController:
    kind = AIGATEWAYCODERDKEY

    def __init__(self, wiring: Wiring, limit: asyncio.Semaphore) -> None:
        self.wiring = wiring
        self.runner: Runner[KeyPart] = Runner(
            self, wiring, limit, resync_s=wiring.settings.resync_interval_s
        )
        self._blocked_retry = min(BLOCKED_RETRY_S, wiring.settings.heartbeat_interval_s)
        self._rescan = timedelta(seconds=wiring.settings.resync_interval_s)
        self.collector = Collector(
            self.kind,
            wiring,
            collect=self._collect,
            known=self._known,
            skip=lambda r: r.row_table != "ai_gateway_keys",
        )

    def _known(self, namespace: str, name: str) -> bool:
        """Whether the watch shows an object ``namespace/name`` (it has a record)."""
        return any(
            r.namespace == namespace and r.name == name for r in self.runner.records.values()
        )

    # --- KindPasses -----------------------------------------------------------------------

    def new_part(self) -> KeyPart:
        return KeyPart()

    async def reconcile(
        self, body: Body, ident: ObjectIdentity, record: ObjectRecord[KeyPart]
    ) -> PassOutcome:
        self.collector.maybe_sweep()
        restarts = Restarts(self.wiring.kube, self._rescan, record.part.scanned)
        outcome, written = await reconciling.reconcile(
            self.wiring,
            self.wiring.kube,
            ident,
            body.get("spec"),
            body.get("status"),
            restarts=restarts,
        )
        record.part.scanned = restarts.last
        remember_written(record.part, ident.namespace, written)
        return outcome

    async def finalize(
        self, body: Body, ident: ObjectIdentity, record: ObjectRecord[KeyPart]
    ) -> PassOutcome:
        return await finalizing.finalize(
            self.wiring,
            self.wiring.kube,
            ident,
            body.get("spec"),
            body.get("status"),
            blocked_retry=self._blocked_retry,
        )

    def observed(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        return None  # the runner's records are all this kind keeps

    def forget(self, ident: ObjectIdentity, record: ObjectRecord[KeyPart] | None) -> None:
        """The object is gone and its record dropped: drop its metric series and Event keys,
        and collect its key rows if our finalizer never released them."""
        forget_object(self.wiring, ident)
        self.collector.deleted(
            ident.owner(self.wiring.settings.instance_id),
            record.lock if record is not None else None,
        )

    # --- garbage collection -----------------------------------------------------------------

    async def _collect(self, owner: OwnerRef) -> bool:
        if not self.wiring.store.capabilities.has_gateway_keys:
            return False
        result = await self.wiring.store.collect_gateway_keys(owner)
        return bool(result.records)

    async def sweep(self, listed: set[tuple[str, str]] | None = None) -> int:
        return await self.collector.sweep(listed)

    async def stop(self) -> None:
        await self.collector.stop()

    # --- other event sources --------------------------------------------------------------

    def secret_changed(self, event_type: str | None, meta: Mapping[str, Any]) -> None:
        """Wake the AIGatewayCoderdKey owning this Secret so it re-checks it (deleted, edited).

        Only Secrets carrying our owner label count. Listing items (``event_type`` None) are
        skipped: every object gets its first pass anyway, and a relisting reports what moved
        as ``MODIFIED``. Our own writes are skipped by resourceVersion.
        """
        if not event_type or GATEWAY_KEY_OWNER_LABEL not in (meta.get("labels") or {}):
            return
        owner = _owner_uid(meta)
        if owner is None:
            return
        record = self.runner.records.get(owner)
        if record is None:
            return  # not an object the watch shows (yet): its first pass reads the Secret
        name = str(meta.get("name", ""))
        ours = record.part.secret
        if event_type == "DELETED":
            if ours is not None and ours[0] == name:
                record.part.secret = None
        elif ours == (name, str(meta.get("resourceVersion", ""))) and (
            str(meta.get("namespace", "")) == record.namespace
        ):
            return
        self.runner.poke([owner])


def remember_written(part: KeyPart, namespace: str, written: list[tuple[str, str, str]]) -> None:
    """Keep the last Secret a pass wrote in the object's namespace (its watch echo is ours)."""
    for ns, secret, version in written:
        if ns == namespace:
            part.secret = (secret, version)


def _owner_uid(meta: Mapping[str, Any]) -> str | None:
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == AIGATEWAYCODERDKEY.kind and str(ref.get("apiVersion", "")).startswith(
            AIGATEWAYCODERDKEY.group + "/"
        ):
            return str(ref.get("uid"))
    return None
