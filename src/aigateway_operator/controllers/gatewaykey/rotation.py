"""Rotation without downtime, and retiring the previous key.

Gateways authenticate by hash, and the name index is unique: a rotating issue keeps the
current row as this object's *previous* key (renamed ``<name>-retiring-<n>`` by the store),
inserts the new key under the plain name and writes it to the Secret. Coder's standalone
gateway reads its key file once, at start: a gateway nobody restarted keeps authenticating
with the previous key, so the previous row goes only when :func:`retirement` says so:

- never before ``spec.rotation.gracePeriod`` has passed since the rotation (the earliest);
- then only once the previous key is no longer used (its last heartbeat older than
  :data:`IDLE_PERIODS` of coderd's heartbeat periods), and either the new key has been seen
  in use (a heartbeat after it was issued) or nobody used the previous key since the
  rotation (no gateway to switch over);
- or at once when the object is annotated ``aigateway.dev/force-retire: <previous prefix>``.

While it waits past the grace period, ``Issued`` says ``RotationWaiting`` and what it waits
for. Which row is the previous one, and since when, is in the ownership records, so a
restart finishes the job; heartbeats are compared on the database's clock, and the store
checks the previous key's heartbeat again under its lock before deleting it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from aigateway_operator.api.common import EventReason, Reason
from aigateway_operator.api.gatewaykey import GatewayKeySpec
from aigateway_operator.api.identity import FORCE_RETIRE_ANNOTATION
from aigateway_operator.controllers.gatewaykey.issue import issue
from aigateway_operator.controllers.gatewaykey.state import KeyPass, KeyState

__all__ = [
    "IDLE_PERIODS",
    "Retirement",
    "age_text",
    "retire_previous",
    "retirement",
    "rotate_if_due",
]

#: The previous key counts as used while its last heartbeat is younger than this many
#: heartbeat periods: one period, and half of one more for a late beat.
IDLE_PERIODS = 1.5


@dataclass(frozen=True)
class Retirement:
    """The verdict on the previous key at one moment."""

    retire: bool
    why: str
    """Retiring: why (for the Event). Kept: what it waits for (for the condition)."""
    waiting: bool = False
    """Kept past the grace period (``RotationWaiting``), not merely within it."""
    recheck_at: datetime | None = None
    """When the verdict changes without a new heartbeat (the grace period's end, or the
    previous key's last heartbeat growing old enough); None: only a heartbeat changes it."""


def age_text(age: timedelta) -> str:
    """``20s``, ``5m``, ``3h``, ``2d``: an age as people read it."""
    seconds = max(0, int(age.total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 2 * 3600:
        return f"{seconds // 60}m"
    if seconds < 2 * 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def retirement(
    *,
    now: datetime,
    rotated_at: datetime,
    grace: timedelta,
    heartbeat_period: timedelta,
    previous_heartbeat: datetime | None,
    current_created_at: datetime | None,
    current_heartbeat: datetime | None,
    forced: bool = False,
) -> Retirement:
    """Whether the previous key may go now (the rule of the module docstring); pure."""
    if forced:
        return Retirement(True, f"forced by the annotation {FORCE_RETIRE_ANNOTATION}")
    earliest = rotated_at + grace
    if now < earliest:
        return Retirement(
            False,
            f"kept at least until {earliest.isoformat()} (spec.rotation.gracePeriod)",
            recheck_at=earliest,
        )
    idle_after = heartbeat_period * IDLE_PERIODS
    new_seen = (
        current_heartbeat is not None
        and current_created_at is not None
        and current_heartbeat >= current_created_at
    )
    if previous_heartbeat is None or previous_heartbeat <= rotated_at - idle_after:
        return Retirement(
            True, "spec.rotation.gracePeriod passed and no gateway used it since the rotation"
        )
    age = now - previous_heartbeat
    in_use = age <= idle_after
    if not in_use and new_seen:
        return Retirement(
            True,
            f"spec.rotation.gracePeriod passed, a gateway uses the new key and the previous "
            f"key was last used {age_text(age)} ago",
        )
    used = f"previous key last used {age_text(age)} ago"
    if in_use and new_seen:
        wait = (
            "the new key is in use; waiting until the previous key is unused for "
            f"{age_text(idle_after)}"
        )
    elif in_use:
        wait = (
            f"waiting for the new key to be used and the previous key to be unused for "
            f"{age_text(idle_after)}"
        )
    else:
        wait = "waiting for the new key to be used"
    return Retirement(
        False,
        f"{used}; {wait}",
        waiting=True,
        recheck_at=previous_heartbeat + idle_after if in_use else None,
    )


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
        f"previous key (prefix {old_prefix}) keeps working for spec.rotation.gracePeriod "
        f"({spec.rotation.grace_period}) at least, and then until gateways use the new key "
        "and stop using it",
    )


async def retire_previous(p: KeyPass, state: KeyState) -> Retirement | None:
    """Delete the previous key when :func:`retirement` says so; the verdict (None: there is
    no previous key)."""
    previous = state.previous
    if previous is None:
        if state.own.previous_recorded_id is not None:
            # Deleted in Coder meanwhile: only the record is left to drop.
            p.as_operator("previous key retired")
            await p.wiring.store.retire_previous(p.owner)
            await p.reload(state)
        return None
    rotated_at = state.own.previous_since or previous.created_at
    info = state.info
    forced = p.ident.annotations.get(FORCE_RETIRE_ANNOTATION, "").strip() == previous.secret_prefix
    period = timedelta(seconds=p.wiring.settings.gateway_heartbeat_period_s)
    verdict = retirement(
        now=state.own.observed_at or p.wiring.clock(),
        rotated_at=rotated_at,
        grace=state.grace,
        heartbeat_period=period,
        previous_heartbeat=previous.last_heartbeat_at,
        current_created_at=info.created_at if info is not None else None,
        current_heartbeat=info.last_heartbeat_at if info is not None else None,
        forced=forced,
    )
    if not verdict.retire:
        return verdict
    p.as_operator("previous key retired")
    retired = await p.wiring.store.retire_previous(
        p.owner, unless_used_within=None if forced else period * IDLE_PERIODS
    )
    await p.reload(state)
    if retired is None:
        if state.previous is not None:
            # A heartbeat came in between the read and the delete: still in use.
            return Retirement(
                False,
                "previous key used again just now; waiting until it is unused for "
                f"{age_text(period * IDLE_PERIODS)}",
                waiting=True,
                recheck_at=(state.own.observed_at or p.wiring.clock()) + period * IDLE_PERIODS,
            )
        return None
    p.note(
        EventReason.KEY_RETIRED,
        f"Deleted the previous key (prefix {retired.secret_prefix}) from Coder: {verdict.why}",
    )
    return None
