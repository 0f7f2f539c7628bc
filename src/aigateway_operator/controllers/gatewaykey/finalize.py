"""Deleting an AIGatewayCoderdKey: delete its rows in Coder (``Delete``) or leave them and the
Secret in place (``Orphan``), only the rows the ownership records name for this object.

A key a gateway used within the last 3 minutes is not deleted unless the object carries
``aigateway.dev/force-delete: "true"``: the object waits with ``DeletionBlocked`` (the
finalizer stays; kopf retries the delete handler). A database or API outage keeps the
object too, until the rows are released. Ids in the Secret's annotations or the status are
never acted on: a namespace editor can write them.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace

from aigateway_operator.api.common import ConditionType, EventReason, InvalidSpecError, Reason
from aigateway_operator.api.gatewaykey import GatewayKeySpec
from aigateway_operator.api.identity import FORCE_DELETE_ANNOTATION
from aigateway_operator.controllers.actors import DELETED
from aigateway_operator.controllers.gatewaykey.secret import KeySecrets
from aigateway_operator.controllers.gatewaykey.state import KeyPass, owner_policy
from aigateway_operator.controllers.gatewaykey.status import IN_USE_WINDOW, finish, parse_status
from aigateway_operator.controllers.shared import (
    MESSAGE_LIMIT,
    RETRY_DATABASE,
    ObjectIdentity,
    PassOutcome,
)
from aigateway_operator.controllers.wiring import Wiring
from aigateway_operator.kube import KubeError
from aigateway_operator.status.conditions import ConditionState
from aigateway_operator.store import OwnerPolicy, StoreError

__all__ = ["BLOCKED_RETRY_S", "finalize"]

#: Deletion re-checks this often while it is blocked by a key in use (seconds, at most).
BLOCKED_RETRY_S = 10.0


async def finalize(
    wiring: Wiring,
    kube: KeySecrets,
    ident: ObjectIdentity,
    spec_body: object,
    status_body: object,
    *,
    blocked_retry: float = BLOCKED_RETRY_S,
) -> PassOutcome:
    """Delete the key's rows (Delete) or leave them and the Secret in place (Orphan)."""
    rt, obj = wiring, ident
    current = parse_status(status_body if isinstance(status_body, dict) else None)
    p = KeyPass(
        current_conditions=tuple(current.conditions),
        wiring=wiring,
        kube=kube,
        ident=ident,
        current=current,
    )
    policy: OwnerPolicy | None = None
    secret_name = current.secret_name
    with contextlib.suppress(InvalidSpecError):
        spec = GatewayKeySpec.from_body(spec_body if isinstance(spec_body, dict) else None)
        policy = owner_policy(spec)
        secret_name = spec.effective_secret_name(obj.name)
    owner = replace(obj.owner(rt.settings.instance_id), actor=DELETED)
    try:
        own = await rt.store.gateway_key_state(owner)
        policy = policy or own.deletion_policy or "Delete"
        sec = await kube.read_secret(obj.namespace, secret_name) if secret_name else None
        owned = sec if sec is not None and obj.uid in sec.owner_uids else None
        if policy == "Orphan":
            if owned is not None:
                # Keep the plaintext: without this the garbage collector deletes the Secret.
                await kube.disown_secret(obj.namespace, owned.name, owned.uid)
            await rt.store.release_gateway_keys(owner, "Orphan")
            p.note(EventReason.ORPHANED, "Left the Coder AI Gateway key and its Secret in place")
            return PassOutcome(status_patch={}, events=p.events, done=True)
        keys = [k for k in (own.current, own.previous) if k is not None]
        force = obj.annotations.get(FORCE_DELETE_ANNOTATION) == "true"
        now = rt.clock()
        busy = [
            k
            for k in keys
            if k.last_heartbeat_at is not None and now - k.last_heartbeat_at <= IN_USE_WINDOW
        ]
        if busy and not force:
            message = (
                f"Not deleting: key prefix {busy[0].secret_prefix} was used by a gateway within "
                "the last 3 minutes. Stop the gateway, or annotate the object with "
                f'{FORCE_DELETE_ANNOTATION}="true" to delete it anyway'
            )
            p.conditions.append(
                ConditionState.false(ConditionType.READY, Reason.DELETION_BLOCKED, message)
            )
            if p.is_news(ConditionType.READY, Reason.DELETION_BLOCKED):
                p.warn(Reason.DELETION_BLOCKED, message)
            p.retry(blocked_retry, "deletion blocked: the key is in use")
            outcome = finish(p, current)
            outcome.done = False
            return outcome
        released = await rt.store.release_gateway_keys(owner, "Delete")
    except (StoreError, KubeError) as exc:
        message = f"waiting to delete the Coder AI Gateway key: {exc}"[:MESSAGE_LIMIT]
        p.set(ConditionState.false(ConditionType.READY, Reason.DELETING, message))
        p.retry(RETRY_DATABASE, message)
        outcome = finish(p, current)
        outcome.done = False
        return outcome
    keys = list(released.deleted)
    if keys:
        prefixes = ", ".join(sorted(k.secret_prefix for k in keys))
        forced = " (forced while in use)" if busy else ""
        p.note(EventReason.DELETED, f"Deleted the Coder AI Gateway key(s) {prefixes}{forced}")
    return PassOutcome(status_patch={}, events=p.events, done=True)
