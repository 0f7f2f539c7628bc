"""AIProvider: kopf watch events in, passes of ``reconcile.provider`` out (thin).

Triggers, all ending in the same level-triggered pass of :mod:`handlers.controller`:
- the object's own events: created, spec edited (generation), deletion requested, our
  finalizer removed by hand, an ``aigateway.dev/*`` annotation set (to force a pass:
  ``kubectl annotate aiprovider NAME aigateway.dev/reconcile="$(date +%s)" --overwrite``);
  every object once when the operator starts (the initial listing);
- a referenced Secret changing (``secret_event``, fed by the metadata-only Secret watch);
- the Coder row changed outside the operator (``handlers.lifecycle``'s drift watcher);
- an STS verdict to refresh or a blocked object to retry (one operator-wide resync loop).

None of these writes to the object to wake it up; a pass writes only the status fields that
differ, so an object in sync costs no API write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aigateway_operator import metrics
from aigateway_operator.api.aiprovider import KIND, PLURAL, AIProviderSpec
from aigateway_operator.handlers.common import (
    CONDITION_TYPES,
    slim,
)
from aigateway_operator.handlers.controller import Body, Controller, Hooks
from aigateway_operator.reconcile import provider as pipeline
from aigateway_operator.reconcile.index import effective_name
from aigateway_operator.reconcile.provider import ObjectInfo, Outcome


def _info(meta: Mapping[str, Any]) -> ObjectInfo:
    return ObjectInfo(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        generation=int(meta.get("generation") or 0),
        created=str(meta.get("creationTimestamp", "")),
    )


def _record(outcome: Outcome, body: Mapping[str, Any]) -> None:
    """Metrics for one pass (kind, result, reasons: never values)."""
    meta = body.get("metadata", {})
    if outcome.db_action is not None and outcome.db_action != "unchanged":
        metrics.DB_WRITES.labels(KIND, outcome.db_action).inc()
    if outcome.notified:
        metrics.NOTIFIES.inc()
    if outcome.sts_reason is not None:
        metrics.STS_VERIFICATIONS.labels(outcome.sts_reason).inc()
    if outcome.drift_reverted:
        metrics.DRIFT_REVERTED.labels(KIND).inc()
    if outcome.retry_after is not None:
        result = "retry"
    elif outcome.db_action is None:
        result = "blocked"  # stopped before the database: Secrets, name claim, spec
    else:
        result = "unchanged" if outcome.db_action == "unchanged" else "synced"
    metrics.RECONCILES.labels(KIND, result).inc()
    if outcome.conditions:
        metrics.set_conditions(
            KIND, meta.get("namespace", ""), meta.get("name", ""), outcome.conditions
        )


def make_controller(memo: Any) -> Controller[Outcome]:
    """The AIProvider controller, its hooks bound to the runtime in ``memo``."""

    async def reconcile(body: Body) -> Outcome:
        meta, spec = body.get("metadata", {}), body.get("spec") or {}
        obj = _info(meta)
        claims = memo.index.claims(effective_name(spec, obj.name))
        memo.drift.track(obj.uid, obj.namespace, obj.name)
        with metrics.RECONCILE_SECONDS.labels(KIND).time():
            return await pipeline.reconcile(memo.runtime, obj, spec, body.get("status"), claims)

    async def finalize(body: Body) -> Outcome:
        meta, spec = body.get("metadata", {}), body.get("spec") or {}
        return await pipeline.finalize(memo.runtime, _info(meta), spec, body.get("status"))

    def after_pass(body: Body, outcome: Outcome) -> None:
        meta = body.get("metadata", {})
        uid = str(meta.get("uid", ""))
        if meta.get("deletionTimestamp"):
            if outcome.done:
                memo.drift.forget(uid)
                metrics.RECONCILES.labels(KIND, "deleted").inc()
                metrics.forget_object(
                    KIND, meta.get("namespace", ""), meta.get("name", ""), CONDITION_TYPES
                )
                # The name this object held is free: the next-oldest claimant takes it now.
                spec = body.get("spec") or {}
                name = effective_name(spec, str(meta.get("name", "")))
                memo.index.remove(uid)
                memo.providers.poke(c.uid for c in memo.index.claims(name))
            return
        _record(outcome, body)
        memo.drift.remember(uid, outcome.provider_id, outcome.row_version, outcome.next_due)

    def gone(uid: str, body: Body) -> None:
        memo.index.remove(uid)
        memo.drift.forget(uid)

    hooks = Hooks(
        kind=KIND,
        plural=PLURAL,
        reconcile=reconcile,
        finalize=finalize,
        after_pass=after_pass,
        gone=gone,
    )
    return Controller(hooks, memo.kube, memo.gate, memo.events)


def deliver(memo: Any) -> Callable[[str | None, dict[str, Any]], None]:
    """What the AIProvider informer calls for every watch event (the listings included):
    keep the index current, then let the controller decide whether a pass is needed."""

    def on_event(type_: str | None, raw: dict[str, Any]) -> None:
        body = slim(raw)
        meta = body.get("metadata", {})
        uid = str(meta.get("uid", ""))
        if type_ == "DELETED":
            memo.index.remove(uid)
        else:
            namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
            memo.index.update(uid, namespace, name, body.get("spec") or {}, meta)
        memo.providers.observe(type_, body)

    return on_event


def secret_event(memo: Any, type_: str | None, meta: Mapping[str, Any]) -> None:
    """A Secret changed (its metadata only: the Secret watch never receives data): queue
    every AIProvider that references it; the pass re-reads the Secret. Listing items
    (``type_`` None) are skipped: every object gets its start-up pass anyway, and a relisting
    reports a Secret that moved while nobody watched as ``MODIFIED``."""
    if type_:
        ns, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        memo.providers.poke(memo.index.referencing(ns, name))


def spec_is_valid(spec: Mapping[str, Any]) -> bool:
    """Used by tests and tools: whether a spec body parses."""
    try:
        AIProviderSpec.from_body(spec)
    except ValueError:
        return False
    return True
