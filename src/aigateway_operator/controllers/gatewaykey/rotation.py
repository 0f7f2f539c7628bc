"""Rotation without downtime, and retiring the previous key.

Gateways authenticate by hash, and the name index is unique: the old row is renamed
(``<name>-retiring-<n>``), the new key is inserted under the plain name and written to the
Secret, and the old row is deleted once a gateway has used the new key (its heartbeat) or
``spec.rotation.gracePeriod`` has passed. ``status.rotation`` records the previous key, so a
restart finishes the job.
"""

from __future__ import annotations

from aigateway_operator.api.common import EventReason, Reason
from aigateway_operator.api.gatewaykey import GatewayKeySpec
from aigateway_operator.controllers.gatewaykey.issue import issue
from aigateway_operator.controllers.gatewaykey.state import KeyPass, KeyState, whole_seconds

__all__ = ["retire_previous", "rotate_if_due", "set_retire_after"]


async def rotate_if_due(
    p: KeyPass, spec: GatewayKeySpec, name: str, secret_name: str, state: KeyState
) -> None:
    """Rotate when ``spec.rotation.generation`` was bumped or ``spec.rotation.every`` elapsed."""
    now = p.wiring.clock()
    if state.generation is None:
        state.generation = spec.rotation.generation
    interval = spec.rotation.interval
    by_generation = spec.rotation.generation != state.generation
    by_schedule = (
        interval is not None and state.created_at is not None and now >= state.created_at + interval
    )
    if not (by_generation or by_schedule) or state.key_id is None:
        return
    if state.previous_id is not None:
        # Two rotations in a row: the key before last has had its chance.
        await p.wiring.store.delete_gateway_key(
            state.previous_id, p.ident.owner(p.wiring.settings.instance_id)
        )
        p.note(
            EventReason.KEY_RETIRED,
            f"Deleted the key before last (prefix {state.previous_prefix}) early: "
            "a new rotation started",
        )
        state.clear_previous()
    sec = await p.kube.read_secret(p.ident.namespace, secret_name)
    old_prefix = state.prefix
    await issue(p, spec, name, secret_name, sec, state, Reason.ROTATED, "", replaces=state.key_id)
    why = "spec.rotation.generation was bumped" if by_generation else "spec.rotation.every elapsed"
    p.note(
        EventReason.ROTATED,
        f"Rotated Coder AI Gateway key {name!r} ({why}): new prefix {state.prefix}; the "
        f"previous key (prefix {old_prefix}) keeps working until a gateway uses the new one "
        f"or spec.rotation.gracePeriod ({spec.rotation.grace_period}) passes",
    )


def set_retire_after(p: KeyPass, spec: GatewayKeySpec, state: KeyState) -> None:
    """Start the grace period of the previous key (once, when a rotation begins)."""
    if state.previous_id is not None and state.retire_after is None:
        state.retire_after = whole_seconds(p.wiring.clock() + spec.rotation.grace)


async def retire_previous(p: KeyPass, spec: GatewayKeySpec, state: KeyState) -> None:
    """Delete the previous key once a gateway used the new one or the grace period ended."""
    if state.previous_id is None:
        return
    set_retire_after(p, spec, state)
    previous = await p.wiring.store.get_gateway_key(state.previous_id)
    if previous is None:
        state.clear_previous()
        return
    info = state.info
    heartbeat = info.last_heartbeat_at if info is not None else None
    seen = heartbeat is not None and state.created_at is not None and heartbeat >= state.created_at
    expired = state.retire_after is not None and p.wiring.clock() >= state.retire_after
    if not (seen or expired):
        return
    await p.wiring.store.delete_gateway_key(
        previous.id, p.ident.owner(p.wiring.settings.instance_id)
    )
    why = "a gateway used the new key" if seen else "spec.rotation.gracePeriod passed"
    p.note(
        EventReason.KEY_RETIRED,
        f"Deleted the previous key (prefix {previous.secret_prefix}) from Coder: {why}",
    )
    state.clear_previous()
