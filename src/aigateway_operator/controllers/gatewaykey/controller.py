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
from aigateway_operator.controllers.gatewaykey.restart import Restarts
from aigateway_operator.controllers.runner import Body, Runner
from aigateway_operator.controllers.shared import ObjectIdentity, PassOutcome, forget_object
from aigateway_operator.controllers.wiring import Wiring
from aigateway_operator.store import OwnerRef

__all__ = ["GatewayKeyController"]


class GatewayKeyController:
    kind = AIGATEWAYCODERDKEY

    def __init__(self, wiring: Wiring, limit: asyncio.Semaphore) -> None:
        self.wiring = wiring
        self.runner = Runner(self, wiring, limit, resync_s=wiring.settings.resync_interval_s)
        self._written: dict[tuple[str, str], str] = {}
        """Secrets our passes wrote last: (namespace, name) -> resourceVersion."""
        self._blocked_retry = min(BLOCKED_RETRY_S, wiring.settings.heartbeat_interval_s)
        self._restarts: Restarts | None = None
        """Which key each object's opted-in workloads were last found stamped for (made at
        the first pass: the client exists once the operator has started)."""
        self._objects: dict[str, tuple[str, str]] = {}
        """uid -> (namespace, name) of every object the watch has shown."""
        self.collector = Collector(
            self.kind,
            wiring,
            collect=self._collect,
            known=lambda ns, name: (ns, name) in self._objects.values(),
            skip=lambda r: r.row_table != "ai_gateway_keys",
        )

    # --- KindPasses -----------------------------------------------------------------------

    async def reconcile(self, body: Body, ident: ObjectIdentity) -> PassOutcome:
        self.collector.maybe_sweep()
        if self._restarts is None:
            rescan = timedelta(seconds=self.wiring.settings.resync_interval_s)
            self._restarts = Restarts(self.wiring.kube, rescan)
        outcome, written = await reconciling.reconcile(
            self.wiring,
            self.wiring.kube,
            ident,
            body.get("spec"),
            body.get("status"),
            restarts=self._restarts,
        )
        self._remember(written)
        return outcome

    async def finalize(self, body: Body, ident: ObjectIdentity) -> PassOutcome:
        outcome = await finalizing.finalize(
            self.wiring,
            self.wiring.kube,
            ident,
            body.get("spec"),
            body.get("status"),
            blocked_retry=self._blocked_retry,
        )
        if outcome.done:
            forget_object(ident)
        return outcome

    def observed(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        uid = str(meta.get("uid", ""))
        if not uid:
            return
        if event_type == "DELETED":
            self._objects.pop(uid, None)
        else:
            self._objects[uid] = (str(meta.get("namespace", "")), str(meta.get("name", "")))

    def forget(self, ident: ObjectIdentity, lock: asyncio.Lock | None) -> None:
        forget_object(ident)
        self._objects.pop(ident.uid, None)
        if self._restarts is not None:
            self._restarts.forget(ident.uid)
        self.collector.deleted(ident.owner(self.wiring.settings.instance_id), lock)

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

    def _remember(self, written: list[tuple[str, str, str]]) -> None:
        for namespace, secret, version in written:
            self._written[(namespace, secret)] = version

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
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        if event_type == "DELETED":
            self._written.pop(key, None)
        elif self._written.get(key) == str(meta.get("resourceVersion", "")):
            return
        self.runner.poke([owner])


def _owner_uid(meta: Mapping[str, Any]) -> str | None:
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == AIGATEWAYCODERDKEY.kind and str(ref.get("apiVersion", "")).startswith(
            AIGATEWAYCODERDKEY.group + "/"
        ):
            return str(ref.get("uid"))
    return None
