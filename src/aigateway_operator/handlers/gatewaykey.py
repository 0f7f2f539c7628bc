"""AIGatewayCoderdKey: kopf watch events in, passes of ``reconcile.gatewaykey`` out (thin).

Triggers, all ending in the same level-triggered pass of :mod:`handlers.controller`:
- the object's own events: created, spec edited, deletion requested, an ``aigateway.dev/*``
  annotation set (``force-delete``, or any other to force a pass); every object once at start;
- the key's Secret changing or disappearing: ``secret_event``, fed by the metadata-only
  Secret watch, queues the owning object of a Secret carrying our owner label;
- one operator-wide heartbeat every ``heartbeat_interval_s`` (``handlers.lifecycle``): mirrors
  the heartbeat, ends grace periods, starts scheduled rotations, notices a key deleted in Coder.

A pass writes only the status fields that differ.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aigateway_operator import metrics
from aigateway_operator.api.aiprovider import API_GROUP
from aigateway_operator.api.gatewaykey import KIND, PLURAL
from aigateway_operator.config import Settings
from aigateway_operator.handlers.common import CONDITION_TYPES, slim
from aigateway_operator.handlers.controller import Body, Controller, Hooks
from aigateway_operator.reconcile import gatewaykey as pipeline
from aigateway_operator.reconcile.gatewaykey import OWNER_LABEL, KeyObject, KeyOutcome

#: Deletion re-checks this often while it is blocked by a key in use (seconds, at most).
BLOCKED_RETRY_S = 10.0


def _info(meta: Mapping[str, Any]) -> KeyObject:
    return KeyObject(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        generation=int(meta.get("generation") or 0),
        annotations=dict(meta.get("annotations") or {}),
    )


def make_controller(memo: Any, settings: Settings) -> Controller[KeyOutcome]:
    """The AIGatewayCoderdKey controller, its hooks bound to the runtime in ``memo``."""
    blocked_retry = min(BLOCKED_RETRY_S, settings.heartbeat_interval_s)
    written: dict[tuple[str, str], str] = memo.gateway_key_secrets

    async def reconcile(body: Body) -> KeyOutcome:
        obj = _info(body.get("metadata", {}))
        with metrics.RECONCILE_SECONDS.labels(KIND).time():
            return await pipeline.reconcile(
                memo.runtime, memo.kube, obj, body.get("spec"), body.get("status")
            )

    async def finalize(body: Body) -> KeyOutcome:
        obj = _info(body.get("metadata", {}))
        return await pipeline.finalize(
            memo.runtime,
            memo.kube,
            obj,
            body.get("spec"),
            body.get("status"),
            blocked_retry=blocked_retry,
        )

    def after_pass(body: Body, outcome: KeyOutcome) -> None:
        meta = body.get("metadata", {})
        ns, name = meta.get("namespace", ""), meta.get("name", "")
        for namespace, secret, version in outcome.secrets_written:
            written[(namespace, secret)] = version
        if meta.get("deletionTimestamp") and outcome.done:
            # The object is going: drop its metric series (they would accumulate).
            metrics.forget_object(KIND, ns, name, CONDITION_TYPES)
            return
        result = "retry" if outcome.retry_after is not None else "ok"
        metrics.RECONCILES.labels(KIND, result).inc()
        if outcome.conditions:
            metrics.set_conditions(KIND, ns, name, outcome.conditions)

    hooks = Hooks(
        kind=KIND,
        plural=PLURAL,
        reconcile=reconcile,
        finalize=finalize,
        after_pass=after_pass,
    )
    return Controller(hooks, memo.kube, memo.gate, memo.events)


def deliver(memo: Any) -> Callable[[str | None, dict[str, Any]], None]:
    """What the AIGatewayCoderdKey informer calls for every watch event."""

    def on_event(type_: str | None, raw: dict[str, Any]) -> None:
        memo.gateway_keys.observe(type_, slim(raw))

    return on_event


def _owner_uid(meta: Mapping[str, Any]) -> str | None:
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == KIND and str(ref.get("apiVersion", "")).startswith(API_GROUP + "/"):
            return str(ref.get("uid"))
    return None


def secret_event(memo: Any, type_: str | None, meta: Mapping[str, Any]) -> None:
    """Queue the AIGatewayCoderdKey owning this Secret so it re-checks it (deleted, edited).

    Only Secrets carrying our owner label count, and only their metadata is ever seen (the
    Secret watch is metadata only). Listing items (``type_`` None) are skipped: every object
    gets its start-up pass anyway, and a relisting reports what moved as ``MODIFIED``. Our
    own writes are skipped by resourceVersion.
    """
    if not type_ or OWNER_LABEL not in (meta.get("labels") or {}):
        return
    owner = _owner_uid(meta)
    if owner is None:
        return
    key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
    rv = str(meta.get("resourceVersion", ""))
    if type_ != "DELETED" and memo.gateway_key_secrets.get(key) == rv:
        return
    memo.gateway_keys.poke([owner])
