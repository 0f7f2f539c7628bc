"""One AIGatewayCoderdKey, one pass: records -> Secret -> ``ai_gateway_keys`` -> rotation -> status.

Every trigger (a watch event, the key's Secret changing, a due rotation or grace period, the
heartbeat mirror, a restart) runs the same level-triggered pass. Authority is the operator's
ownership records (``aigateway_operator.owners``: this object's current, previous and pending
keys); the Secret is a delivery target whose value is compared with them:

1. the key's Secret must be ours (owned by this object) or absent;
2. a pending key (an issue a crash interrupted) whose hash the Secret's value matches is
   completed; one the Secret does not hold is discarded (:mod:`.issue`);
3. a current key whose hash the Secret's value matches is in sync; otherwise a fresh key is
   issued: ``SecretLost`` (no Secret), ``KeyRevoked`` (the row was deleted in Coder),
   ``SecretTampered`` (anything else in the Secret, a value someone chose included);
4. a rotation that is due starts, a previous key that no gateway needs any more is retired
   (:mod:`.rotation`);
5. workloads that opted in are restarted onto the key the Secret now holds (:mod:`.restart`);
6. ``Issued``, ``SecretInSync`` and ``InUse`` are reported from the records (:mod:`.status`).

The pass comes back on its own for the next heartbeat mirror (``AIGW_HEARTBEAT_INTERVAL_S``),
the end of a grace period, the moment the previous key's last heartbeat is old enough, or a
scheduled rotation, whichever is first.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from aigateway_operator import metrics
from aigateway_operator.api.common import ConditionType, EventReason, InvalidSpecError, Reason
from aigateway_operator.api.gatewaykey import GatewayKeySpec
from aigateway_operator.api.identity import AIGATEWAYCODERDKEY
from aigateway_operator.controllers.actors import spec_digest
from aigateway_operator.controllers.gatewaykey.issue import complete, issue
from aigateway_operator.controllers.gatewaykey.restart import Restarts, restart_workloads
from aigateway_operator.controllers.gatewaykey.rotation import (
    Retirement,
    retire_previous,
    rotate_if_due,
)
from aigateway_operator.controllers.gatewaykey.secret import KeySecrets, held_from
from aigateway_operator.controllers.gatewaykey.state import (
    KeyPass,
    KeyState,
    StopPass,
    owner_policy,
)
from aigateway_operator.controllers.gatewaykey.status import (
    finish,
    key_status,
    parse_status,
    report,
)
from aigateway_operator.controllers.shared import (
    MESSAGE_LIMIT,
    ObjectIdentity,
    PassOutcome,
    store_failure,
)
from aigateway_operator.controllers.wiring import Wiring
from aigateway_operator.kube import KubeError
from aigateway_operator.status.conditions import ConditionState
from aigateway_operator.store import StoreError, is_own_name

__all__ = ["reconcile"]

KIND = AIGATEWAYCODERDKEY.kind
RETRY_KUBE = 5.0


async def reconcile(
    wiring: Wiring,
    kube: KeySecrets,
    ident: ObjectIdentity,
    spec_body: object,
    status_body: object,
    restarts: Restarts | None = None,
) -> tuple[PassOutcome, list[tuple[str, str, str]]]:
    """Make sure the key exists in Coder, its Secret holds it, and rotation is on schedule;
    with ``restarts``, restart the workloads that opted in once the Secret holds a new key.

    Returns the outcome and the Secrets this pass wrote (namespace, name, resourceVersion).
    """
    # Everything read from the object is read here, once: the status parsed, the spec's
    # digest taken; nothing below looks at the body again.
    current = parse_status(status_body if isinstance(status_body, dict) else None)
    p = KeyPass(
        current_conditions=tuple(current.conditions),
        wiring=wiring,
        kube=kube,
        ident=ident,
        current=current,
        spec_digest=spec_digest(spec_body),
    )
    try:
        spec = GatewayKeySpec.from_body(spec_body if isinstance(spec_body, dict) else None)
        name = spec.effective_key_name(ident.name)
        secret_name = spec.effective_secret_name(ident.name)
    except InvalidSpecError as exc:
        p.set(
            ConditionState.false(
                ConditionType.ISSUED, Reason.INVALID_SPEC, str(exc)[:MESSAGE_LIMIT]
            )
        )
        return finish(p, current), p.written
    try:
        state = KeyState.of(
            await wiring.store.gateway_key_state(p.owner), current, spec.rotation.grace
        )
        # The key's name is what the records' row holds (never status.keyName, which a
        # status writer could set to stall every pass with a false "immutable").
        held_name = state.info.name if state.info is not None else None
        if held_name is not None and not is_own_name(held_name, name):
            message = (
                f"spec.keyName is immutable: this object's key is named {held_name!r} in "
                "Coder; create a new AIGatewayCoderdKey for another name"
            )
            p.set(ConditionState.false(ConditionType.ISSUED, Reason.INVALID_SPEC, message))
            return finish(p, current), p.written
        verdict = await converge(p, spec, name, secret_name, state, restarts)
    except StopPass:
        return finish(p, current), p.written
    except StoreError as exc:
        failure = store_failure(exc, ConditionType.ISSUED)
        p.set(failure.condition)
        p.database_error = failure.database_error
        if failure.event is not None:
            p.events.append(failure.event)
        if failure.retry_after is not None:
            p.retry(failure.retry_after, failure.condition.message)
        return finish(p, current), p.written
    except KubeError as exc:
        message = str(exc)[:MESSAGE_LIMIT]
        p.set(
            ConditionState.false(ConditionType.SECRET_IN_SYNC, Reason.SECRET_WRITE_FAILED, message)
        )
        p.retry(1.0 if exc.status == 409 else RETRY_KUBE, message)
        return finish(p, current), p.written
    outcome = finish(p, key_status(p, name, secret_name, state))
    outcome.db_action = _action(p)
    outcome.next_due = _next_due(wiring, spec, state, verdict)
    outcome.synced_at = wiring.clock()
    return outcome, p.written


def _action(p: KeyPass) -> metrics.WriteAction:
    """What the pass did to Coder's rows, for ``aigw_database_writes_total``."""
    reasons = {e.reason for e in p.events}
    if EventReason.ROTATED in reasons:
        return "rotated"
    if reasons & {
        EventReason.ISSUED,
        Reason.SECRET_LOST,
        Reason.SECRET_TAMPERED,
        Reason.KEY_REVOKED,
    }:
        return "issued"
    if EventReason.KEY_RETIRED in reasons:
        return "retired"
    return "unchanged"


def _next_due(
    wiring: Wiring, spec: GatewayKeySpec, state: KeyState, verdict: Retirement | None
) -> datetime:
    """The heartbeat mirror, the previous key's next verdict or a scheduled rotation: the
    first."""
    now = wiring.clock()
    due = [now + timedelta(seconds=wiring.settings.heartbeat_interval_s)]
    if verdict is not None and verdict.recheck_at is not None:
        # recheck_at is on the database's clock: wait for it as a delay, never a busy loop.
        delay = verdict.recheck_at - (state.own.observed_at or now)
        due.append(now + max(delay, timedelta()) + timedelta(seconds=1))
    interval = spec.rotation.interval
    if interval is not None and state.created_at is not None:
        due.append(state.created_at + interval)
    return min(due)


async def converge(
    p: KeyPass,
    spec: GatewayKeySpec,
    name: str,
    secret_name: str,
    state: KeyState,
    restarts: Restarts | None = None,
) -> Retirement | None:
    """Steps 1-6 of the module docstring; raises :class:`StopPass` when a step says so.
    Returns the verdict on the previous key (None: there is none)."""
    store, obj = p.wiring.store, p.ident
    sec = await p.kube.read_secret(obj.namespace, secret_name)
    if sec is not None and obj.uid not in sec.owner_uids:
        message = (
            f"Secret {secret_name!r} exists and is not owned by this {KIND}; refusing to "
            "overwrite it. Delete that Secret or set another spec.secretName"
        )
        p.conditions.append(
            ConditionState.false(ConditionType.SECRET_IN_SYNC, Reason.SECRET_NOT_OWNED, message)
        )
        if state.info is None:
            p.conditions.append(
                ConditionState.false(
                    ConditionType.ISSUED, Reason.SECRET_NOT_OWNED, "No key issued: " + message
                )
            )
        if p.is_news(ConditionType.SECRET_IN_SYNC, Reason.SECRET_NOT_OWNED):
            p.warn(Reason.SECRET_NOT_OWNED, message)
        raise StopPass

    policy = owner_policy(spec)
    if state.own.recorded and (
        state.own.deletion_policy != policy or (p.owner.uid and state.own.object_uid != p.owner.uid)
    ):
        await store.record_deletion_policy(p.owner, policy)
    held = held_from(sec)
    moved = p.current.secret_name not in (None, secret_name)
    fresh = False
    pending = state.own.pending
    if pending is not None:
        if held.secret is not None and pending.matches(held.secret):
            # The Secret was written and the pass did not get to Coder (crash, outage).
            p.as_operator("completing an interrupted key issue")
            await complete(p, name, pending, held.secret, state)
            state.generation = state.own.current_rotation_generation
            if state.generation is None:  # journaled by an earlier release
                state.generation = held.rotation_generation
            verb = "the rotation of" if pending.rotating else "issuing"
            p.note(
                EventReason.ROTATED if pending.rotating else EventReason.ISSUED,
                f"Completed {verb} Coder AI Gateway key {name!r} (prefix "
                f"{pending.secret_prefix}), interrupted after its Secret was written",
            )
            fresh = True
        else:
            # Never delivered (the pass stopped before the Secret write): nobody has it.
            await store.discard_pending(p.owner)
            await p.reload(state)
    if not fresh and state.own.matches(held.secret):
        if state.generation is None:
            # A key recorded by an earlier release (no rotation generation on its record):
            # the annotation the operator wrote with it, on a Secret that still holds it.
            state.generation = held.rotation_generation
    elif not fresh:
        if sec is None and state.own.current_recorded_id is None:
            reason, why = Reason.ISSUED, ""
        elif sec is None and moved:
            reason, why = Reason.ISSUED, f"spec.secretName changed to {secret_name!r}"
        elif sec is None:
            reason, why = Reason.SECRET_LOST, f"Secret {secret_name!r} was deleted"
        elif state.own.current_revoked:
            reason, why = Reason.KEY_REVOKED, "the key was deleted from Coder outside the operator"
        else:
            reason = Reason.SECRET_TAMPERED
            why = f"Secret {secret_name!r} does not hold the key this operator issued"
        if reason == Reason.ISSUED:
            await p.as_requester()  # a new object, or spec.secretName changed
        else:
            p.as_operator(f"key reissued: {reason}")
        await issue(p, spec, name, secret_name, sec, state, reason, why)
        fresh = True

    if moved and p.current.secret_name:
        await remove_old_secret(p, p.current.secret_name)
    if not fresh:
        await rotate_if_due(p, spec, name, secret_name, state)
    verdict = await retire_previous(p, state)
    if restarts is not None:
        await restart_workloads(p, restarts, state)
    report(p, name, secret_name, state, verdict)
    return verdict


async def remove_old_secret(p: KeyPass, old_name: str) -> None:
    """``spec.secretName`` changed: delete the Secret this object wrote under the old name."""
    old = await p.kube.read_secret(p.ident.namespace, old_name)
    if old is not None and p.ident.uid in old.owner_uids:
        await p.kube.delete_secret(p.ident.namespace, old_name, old.uid)
        p.note(EventReason.SECRET_MOVED, f"Deleted Secret {old_name!r}: spec.secretName changed")
