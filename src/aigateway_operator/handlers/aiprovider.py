"""kopf registrations for AIProvider: thin wrappers around ``reconcile.provider``.

Triggers, all ending in the same level-triggered reconcile:
- create / update / resume of the object (spec edits, and annotation pokes below);
- a referenced Secret changing: the Secret watch pokes the referencing objects with an
  annotation, so kopf runs the update handler, serialised per object, with its retries;
- an outside change to the Coder row: the drift watcher (``handlers.drift``) pokes the same way;
- one operator-wide resync loop (``handlers.lifecycle``) poking objects that are due: an STS
  verdict to refresh, a blocked object to retry, a row edited without a notify. No
  per-object timer: that would be an asyncio task per object.

Handlers return nothing (kopf would store return values in ``status``) and write only the
status fields that differ, so an object in sync costs no API write.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from typing import Any

import kopf

from aigateway_operator import metrics
from aigateway_operator.api.aiprovider import API_GROUP, API_VERSION, KIND, PLURAL, AIProviderSpec
from aigateway_operator.config import Settings
from aigateway_operator.handlers.common import (
    ANNOTATION_PREFIX,
    CONDITION_TYPES,
    post_events,
    runtime_of,
)
from aigateway_operator.reconcile import provider as pipeline
from aigateway_operator.reconcile.index import effective_name
from aigateway_operator.reconcile.provider import ObjectInfo, Outcome

SECRET_POKE = f"{ANNOTATION_PREFIX}/secrets-poke"
DRIFT_POKE = f"{ANNOTATION_PREFIX}/drift-poke"
CLAIMS_POKE = f"{ANNOTATION_PREFIX}/claims-poke"


def _info(meta: Mapping[str, Any], namespace: str | None, name: str | None) -> ObjectInfo:
    return ObjectInfo(
        namespace=namespace or "",
        name=name or "",
        uid=str(meta.get("uid", "")),
        generation=int(meta.get("generation") or 0),
        created=str(meta.get("creationTimestamp", "")),
    )


async def track_provider(
    type: str,
    namespace: str | None,
    name: str,
    uid: str,
    spec: kopf.Spec,
    meta: kopf.Meta,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """Keep the in-memory index current from every event (the initial listing included)."""
    if type == "DELETED":
        memo.index.remove(uid)
    else:
        memo.index.update(uid, namespace or "", name, spec, meta)


# --- reconcile ------------------------------------------------------------------------------


def _record(outcome: Outcome, body: Any) -> None:
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


def _apply(
    outcome: Outcome,
    body: Any,
    patch: kopf.Patch,
    memo: Any,
    uid: str,
    logger: Any,
    retry: int = 0,
) -> None:
    _record(outcome, body)
    if outcome.status_patch:
        # Field names only: status never holds a secret, but logs stay terse anyway.
        logger.info("status updated: %s", ", ".join(sorted(outcome.status_patch)))
    for key, value in outcome.status_patch.items():
        patch.status[key] = value
    post_events(body, outcome.events)
    memo.drift.remember(uid, outcome.provider_id, outcome.row_version, outcome.next_due)
    if outcome.retry_after is not None:
        # Exponential backoff from the outcome's base delay (kopf's own is a fixed delay).
        delay = min(300.0, outcome.retry_after * 2 ** min(retry, 5))
        raise kopf.TemporaryError(outcome.retry_message or "retrying", delay=delay)


async def _reconcile(
    body: Any,
    meta: Mapping[str, Any],
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    namespace: str | None,
    name: str,
    patch: kopf.Patch,
    memo: Any,
    logger: Any,
    retry: int = 0,
) -> None:
    obj = _info(meta, namespace, name)
    claims = memo.index.claims(effective_name(spec, obj.name))
    async with memo.slots, memo.locks.hold(obj.uid):
        with metrics.RECONCILE_SECONDS.labels(KIND).time():
            outcome = await pipeline.reconcile(runtime_of(memo), obj, spec, status, claims)
    memo.drift.track(obj.uid, namespace or "", name or "")
    _apply(outcome, body, patch, memo, obj.uid, logger, retry)


async def reconcile_provider(
    body: kopf.Body,
    meta: kopf.Meta,
    spec: kopf.Spec,
    status: kopf.Status,
    namespace: str | None,
    name: str,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: kopf.Logger,
    retry: int,
    **_: Any,
) -> None:
    await _reconcile(body, meta, spec, status, namespace, name, patch, memo, logger, retry)


async def finalize_provider(
    body: kopf.Body,
    meta: kopf.Meta,
    spec: kopf.Spec,
    status: kopf.Status,
    namespace: str | None,
    name: str,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """Soft-delete or orphan the row; while the database is down the object waits."""
    obj = _info(meta, namespace, name)
    async with memo.locks.hold(obj.uid):
        outcome = await pipeline.finalize(runtime_of(memo), obj, spec, status)
    if outcome.done:
        memo.drift.forget(obj.uid)
        memo.locks.forget(obj.uid)
        metrics.RECONCILES.labels(KIND, "deleted").inc()
        metrics.forget_object(KIND, obj.namespace, obj.name, CONDITION_TYPES)
        await _poke_other_claimants(memo, obj, spec)
    for key, value in outcome.status_patch.items():
        patch.status[key] = value
    post_events(body, outcome.events)
    if not outcome.done:
        raise kopf.TemporaryError(outcome.retry_message, delay=outcome.retry_after or 10)


async def _poke_other_claimants(memo: kopf.Memo, obj: ObjectInfo, spec: Mapping[str, Any]) -> None:
    """The name this object held is free: let the next-oldest claimant take it now."""
    kube = memo.kube
    for claim in memo.index.claims(effective_name(spec, obj.name)):
        if claim.uid != obj.uid:
            await kube.annotate(
                PLURAL, claim.namespace, claim.name, {CLAIMS_POKE: obj.uid[:8] + "-released"}
            )


# --- Secret changes -------------------------------------------------------------------------


def _referenced(namespace: str | None, name: str | None, memo: Any, **_: Any) -> bool:
    index = getattr(memo, "index", None)
    return index is not None and index.references(namespace or "", name or "")


async def secret_changed(
    type: str,
    namespace: str | None,
    name: str,
    meta: kopf.Meta,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """Poke every AIProvider that references this Secret (names only; data is never read
    here). The initial listing at start (``type is None``) is skipped: a restart must not
    poke every object, that is what resume handlers are for."""
    if not type:  # None (or "") for the initial listing
        return
    rv = str(meta.get("resourceVersion", ""))
    poke = hashlib.sha256(f"{name}\0{rv}\0{type}".encode()).hexdigest()[:16]
    targets = memo.index.referencing(namespace or "", name)
    for target in targets:
        for attempt in range(3):
            try:
                await memo.kube.annotate(PLURAL, namespace or "", target, {SECRET_POKE: poke})
                break
            except Exception:  # an event handler's errors are only logged: retry here
                if attempt == 2:
                    logger.warning(
                        "could not notify AIProvider %s of a change to Secret %s", target, name
                    )
                await asyncio.sleep(0.5 * (attempt + 1))


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """Register every AIProvider handler into ``registry``."""
    g, v, p = API_GROUP, API_VERSION, PLURAL
    kopf.on.event(g, v, p, id="index", registry=registry)(track_provider)
    for on in (kopf.on.resume, kopf.on.create, kopf.on.update):
        on(g, v, p, id="reconcile", registry=registry)(reconcile_provider)
    kopf.on.delete(g, v, p, id="finalize", registry=registry)(finalize_provider)
    kopf.on.event("", "v1", "secrets", when=_referenced, registry=registry)(secret_changed)


def spec_is_valid(spec: Mapping[str, Any]) -> bool:
    """Used by tests and tools: whether a spec body parses."""
    try:
        AIProviderSpec.from_body(spec)
    except ValueError:
        return False
    return True
