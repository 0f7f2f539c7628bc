"""Rotation without downtime, and retiring the previous key.

Gateways authenticate by hash, and the name index is unique: a rotating issue keeps the
current row as this object's *previous* key (renamed ``<name>-retiring-<n>`` by the store),
inserts the new key under the plain name and writes it to the Secret; the previous row is
deleted once a gateway has used the new key (its heartbeat) or ``spec.rotation.gracePeriod``
has passed since the rotation. Which row is the previous one, and since when, is in the
ownership records, so a restart finishes the job.
"""

from __future__ import annotations

from aigateway_operator.api.common import EventReason, Reason
from aigateway_operator.api.gatewaykey import GatewayKeySpec
from aigateway_operator.controllers.gatewaykey.issue import issue
from aigateway_operator.controllers.gatewaykey.state import KeyPass, KeyState

__all__ = ["retire_previous", "rotate_if_due"]


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
    if not (by_generation or by_schedule) or state.info is None:
        return
    before_last = state.previous
    sec = await p.kube.read_secret(p.ident.namespace, secret_name)
    old_prefix = state.prefix
    if by_generation:
        await p.as_requester()  # whoever bumped spec.rotation.generation
    else:
        p.as_operator("scheduled rotation")
    await issue(p, spec, name, secret_name, sec, state, Reason.ROTATED, "", rotating=True)
    if before_last is not None:
        # Two rotations in a row: the key before last has had its chance (the store deleted
        # it when the new key went in).
        p.note(
            EventReason.KEY_RETIRED,
            f"Deleted the key before last (prefix {before_last.secret_prefix}) early: "
            "a new rotation started",
        )
    why = "spec.rotation.generation was bumped" if by_generation else "spec.rotation.every elapsed"
    p.note(
        EventReason.ROTATED,
        f"Rotated Coder AI Gateway key {name!r} ({why}): new prefix {state.prefix}; the "
        f"previous key (prefix {old_prefix}) keeps working until a gateway uses the new one "
        f"or spec.rotation.gracePeriod ({spec.rotation.grace_period}) passes",
    )


async def retire_previous(p: KeyPass, state: KeyState) -> None:
    """Delete the previous key once a gateway used the new one or the grace period ended."""
    previous = state.previous
    if previous is None:
        if state.own.previous_recorded_id is not None:
            # Deleted in Coder meanwhile: only the record is left to drop.
            p.as_operator("previous key retired")
            await p.wiring.store.retire_previous(p.owner)
            await p.reload(state)
        return
    info = state.info
    heartbeat = info.last_heartbeat_at if info is not None else None
    seen = heartbeat is not None and state.created_at is not None and heartbeat >= state.created_at
    retire_after = state.retire_after
    expired = retire_after is not None and p.wiring.clock() >= retire_after
    if not (seen or expired):
        return
    p.as_operator("previous key retired")
    retired = await p.wiring.store.retire_previous(p.owner)
    await p.reload(state)
    if retired is None:
        return
    why = "a gateway used the new key" if seen else "spec.rotation.gracePeriod passed"
    p.note(
        EventReason.KEY_RETIRED,
        f"Deleted the previous key (prefix {retired.secret_prefix}) from Coder: {why}",
    )
