"""kopf registrations for AIGatewayCoderdKey: thin wrappers around ``reconcile.gatewaykey``.

Triggers, all ending in the same level-triggered pass:
- create / update / resume of the object (spec edits, and the Secret pokes below);
- the key's Secret changing or disappearing: an ``on.event`` watch on v1 Secrets carrying
  our owner label pokes the owning object with an annotation (never on.create/update/resume
  on Secrets: kopf would copy the Secret's data into an annotation on it);
- a timer every ``heartbeat_interval_s``: mirrors the heartbeat, ends grace periods, starts
  scheduled rotations, and notices a key deleted in Coder.

Handlers return nothing and write only the status fields that differ.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from typing import Any

import kopf

from aigateway_operator import metrics
from aigateway_operator.api.aiprovider import API_GROUP, API_VERSION
from aigateway_operator.api.gatewaykey import KIND, PLURAL
from aigateway_operator.config import Settings
from aigateway_operator.handlers.common import (
    ANNOTATION_PREFIX,
    CONDITION_TYPES,
    post_events,
    runtime_of,
)
from aigateway_operator.reconcile import gatewaykey as pipeline
from aigateway_operator.reconcile.gatewaykey import OWNER_LABEL, KeyObject, KeyOutcome

SECRET_POKE = f"{ANNOTATION_PREFIX}/secret-poke"
#: Deletion re-checks this often while it is blocked by a key in use (seconds, at most).
BLOCKED_RETRY_S = 10.0


def _info(meta: Mapping[str, Any], namespace: str | None, name: str | None) -> KeyObject:
    return KeyObject(
        namespace=namespace or "",
        name=name or "",
        uid=str(meta.get("uid", "")),
        generation=int(meta.get("generation") or 0),
        annotations=dict(meta.get("annotations") or {}),
    )


def _written(memo: Any) -> dict[tuple[str, str], str]:
    """Secrets we wrote last, by (namespace, name) -> resourceVersion: not news to the watch."""
    seen: dict[tuple[str, str], str] | None = getattr(memo, "gateway_key_secrets", None)
    if seen is None:
        seen = {}
        memo.gateway_key_secrets = seen
    return seen


def _apply(outcome: KeyOutcome, body: Any, patch: kopf.Patch, memo: Any) -> None:
    meta = body.get("metadata", {})
    metrics.RECONCILES.labels(KIND, "retry" if outcome.retry_after is not None else "ok").inc()
    if outcome.conditions:
        metrics.set_conditions(
            KIND, meta.get("namespace", ""), meta.get("name", ""), outcome.conditions
        )
    for key, value in outcome.status_patch.items():
        patch.status[key] = value
    written = _written(memo)
    for namespace, name, version in outcome.secrets_written:
        written[(namespace, name)] = version
    post_events(body, outcome.events)


async def _pass(
    body: kopf.Body,
    meta: kopf.Meta,
    spec: kopf.Spec,
    status: kopf.Status,
    namespace: str | None,
    name: str,
    patch: kopf.Patch,
    memo: kopf.Memo,
) -> KeyOutcome:
    """One pass, serialised per object, bounded in number, applied to ``patch``."""
    obj = _info(meta, namespace, name)
    async with memo.slots, memo.locks.hold(obj.uid):
        with metrics.RECONCILE_SECONDS.labels(KIND).time():
            outcome = await pipeline.reconcile(runtime_of(memo), memo.kube, obj, spec, status)
    _apply(outcome, body, patch, memo)
    return outcome


async def reconcile_key(
    body: kopf.Body,
    meta: kopf.Meta,
    spec: kopf.Spec,
    status: kopf.Status,
    namespace: str | None,
    name: str,
    patch: kopf.Patch,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    outcome = await _pass(body, meta, spec, status, namespace, name, patch, memo)
    if outcome.retry_after is not None:
        raise kopf.TemporaryError(outcome.retry_message or "retrying", delay=outcome.retry_after)


async def heartbeat_key(
    body: kopf.Body,
    meta: kopf.Meta,
    spec: kopf.Spec,
    status: kopf.Status,
    namespace: str | None,
    name: str,
    patch: kopf.Patch,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """The periodic pass. Never raises PermanentError (a timer that does stops for the life
    of the process); failures are in status and the next tick retries."""
    if not meta.get("deletionTimestamp"):
        await _pass(body, meta, spec, status, namespace, name, patch, memo)


def make_finalizer(settings: Settings) -> Any:
    blocked_retry = min(BLOCKED_RETRY_S, settings.heartbeat_interval_s)

    async def finalize_key(
        body: kopf.Body,
        meta: kopf.Meta,
        spec: kopf.Spec,
        status: kopf.Status,
        namespace: str | None,
        name: str,
        patch: kopf.Patch,
        memo: kopf.Memo,
        **_: Any,
    ) -> None:
        """Delete (or orphan) the key; while it is in use and not forced, the object waits."""
        obj = _info(meta, namespace, name)
        async with memo.locks.hold(obj.uid):
            outcome = await pipeline.finalize(
                runtime_of(memo), memo.kube, obj, spec, status, blocked_retry=blocked_retry
            )
        _apply(outcome, body, patch, memo)
        if outcome.done:
            # The object is going: drop its metric series and lock (they would accumulate).
            metrics.forget_object(KIND, obj.namespace, obj.name, CONDITION_TYPES)
            memo.locks.forget(obj.uid)
        else:
            raise kopf.TemporaryError(outcome.retry_message, delay=outcome.retry_after or 10)

    return finalize_key


def _owner_name(meta: Mapping[str, Any]) -> str | None:
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == KIND and str(ref.get("apiVersion", "")).startswith(API_GROUP + "/"):
            return str(ref.get("name"))
    return None


async def secret_changed(
    type: str,
    namespace: str | None,
    name: str,
    meta: kopf.Meta,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """Poke the AIGatewayCoderdKey owning this Secret so it re-checks it (deleted, edited).

    Only metadata is looked at, never the data. The initial listing (``type is None``) is
    skipped: resume handlers already check every object at start. Our own writes are
    skipped by resourceVersion.
    """
    if not type:
        return
    owner = _owner_name(meta)
    if owner is None:
        return
    rv = str(meta.get("resourceVersion", ""))
    if type != "DELETED" and _written(memo).get((namespace or "", name)) == rv:
        return
    poke = hashlib.sha256(f"{name}\0{rv}\0{type}".encode()).hexdigest()[:16]
    for attempt in range(3):
        try:
            await memo.kube.annotate(PLURAL, namespace or "", owner, {SECRET_POKE: poke})
            return
        except Exception:  # an event handler's errors are only logged: retry here
            if attempt == 2:
                logger.warning("could not notify %s %s of a change to Secret %s", KIND, owner, name)
            await asyncio.sleep(0.5 * (attempt + 1))


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """Register every AIGatewayCoderdKey handler into ``registry``."""
    g, v, p = API_GROUP, API_VERSION, PLURAL
    for on in (kopf.on.resume, kopf.on.create, kopf.on.update):
        on(g, v, p, id="reconcile", registry=registry)(reconcile_key)
    kopf.on.delete(g, v, p, id="finalize", registry=registry)(make_finalizer(settings))
    kopf.timer(
        g,
        v,
        p,
        id="heartbeat",
        interval=settings.heartbeat_interval_s,
        # A restart must be quiet: resume handlers already check every object once.
        initial_delay=settings.heartbeat_interval_s,
        registry=registry,
    )(heartbeat_key)
    kopf.on.event(
        "",
        "v1",
        "secrets",
        id="gateway-key-secret",
        labels={OWNER_LABEL: kopf.PRESENT},
        registry=registry,
    )(secret_changed)
