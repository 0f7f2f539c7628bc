"""An AIGatewayCoderdKey's conditions and status, and the one function every pass ends with.

``Issued`` and ``SecretInSync`` feed ``Ready``; ``InUse`` is informational (an unused key is
still ready): a gateway heartbeat within :data:`IN_USE_WINDOW` (coderd beats every 60 s).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from aigateway_operator.api.common import ConditionType, InvalidStatusError, Reason
from aigateway_operator.api.gatewaykey import SECRET_DATA_KEY, GatewayKeyStatus, RotationStatus
from aigateway_operator.api.identity import FORCE_RETIRE_ANNOTATION, RESTART_ON_ROTATION_ANNOTATION
from aigateway_operator.controllers.gatewaykey.rotation import Retirement
from aigateway_operator.controllers.gatewaykey.state import KeyPass, KeyState, whole_seconds
from aigateway_operator.controllers.shared import PassOutcome
from aigateway_operator.status.conditions import ConditionState, next_status

__all__ = ["IN_USE_WINDOW", "finish", "in_use", "key_status", "parse_status", "report"]

#: A key is "in use" while its last heartbeat is this recent (coderd beats every 60 s).
IN_USE_WINDOW = timedelta(minutes=3)
_READY_DEPENDENCIES = (ConditionType.ISSUED, ConditionType.SECRET_IN_SYNC)
_ORDER = (ConditionType.ISSUED, ConditionType.SECRET_IN_SYNC, ConditionType.IN_USE)
_READY_MESSAGE = "The key is issued in Coder and delivered to its Secret"


def parse_status(body: Mapping[str, Any] | None) -> GatewayKeyStatus:
    """The object's status as last written (empty if someone wrote something unparseable)."""
    try:
        return GatewayKeyStatus.from_body(body)
    except InvalidStatusError:
        return GatewayKeyStatus()


def report(
    p: KeyPass,
    name: str,
    secret_name: str,
    state: KeyState,
    verdict: Retirement | None = None,
) -> None:
    """Issued, SecretInSync and InUse for a key that is in place; while a previous key is
    kept, ``verdict`` says why (``Rotating`` within the grace period, ``RotationWaiting``
    after it, with a Warning Event when that starts)."""
    previous = state.previous
    if previous is not None and verdict is not None and verdict.waiting:
        message = (
            f"Key {name!r} (prefix {state.prefix}) is issued; the previous key (prefix "
            f"{previous.secret_prefix}) is kept past spec.rotation.gracePeriod: "
            f"{verdict.why}. Restart the gateways that use it (or annotate their workload "
            f"{RESTART_ON_ROTATION_ANNOTATION}={p.ident.name}), or annotate this object "
            f"{FORCE_RETIRE_ANNOTATION}={previous.secret_prefix} to delete it now"
        )
        p.conditions.append(
            ConditionState.true(ConditionType.ISSUED, Reason.ROTATION_WAITING, message)
        )
        if p.is_news(ConditionType.ISSUED, Reason.ROTATION_WAITING):
            p.warn(Reason.ROTATION_WAITING, message)
    elif previous is not None:
        when = state.retire_after.isoformat() if state.retire_after else "the grace period"
        p.conditions.append(
            ConditionState.true(
                ConditionType.ISSUED,
                Reason.ROTATING,
                f"Key {name!r} (prefix {state.prefix}) is issued; the previous key (prefix "
                f"{previous.secret_prefix}) is kept until {when} at least, and then until "
                "gateways use the new key and stop using it",
            )
        )
    else:
        p.conditions.append(
            ConditionState.true(
                ConditionType.ISSUED,
                Reason.ISSUED,
                f"Key {name!r} (prefix {state.prefix}) is issued in Coder",
            )
        )
    p.conditions.append(
        ConditionState.true(
            ConditionType.SECRET_IN_SYNC,
            Reason.IN_SYNC,
            f"Secret {secret_name!r} holds the current key under data key {SECRET_DATA_KEY!r}",
        )
    )
    heartbeat = state.info.last_heartbeat_at if state.info is not None else None
    p.conditions.append(in_use(heartbeat, p.wiring.clock()))


def in_use(heartbeat: datetime | None, now: datetime) -> ConditionState:
    """``InUse`` from the last heartbeat coderd recorded for the key."""
    if heartbeat is None:
        return ConditionState.false(
            ConditionType.IN_USE, Reason.NEVER_CONNECTED, "No gateway has used this key yet"
        )
    if now - heartbeat <= IN_USE_WINDOW:
        return ConditionState.true(
            ConditionType.IN_USE,
            Reason.HEARTBEAT_RECENT,
            "A gateway used this key within the last 3 minutes",
        )
    return ConditionState.false(
        ConditionType.IN_USE,
        Reason.HEARTBEAT_STALE,
        "No gateway has used this key for more than 3 minutes",
    )


def key_status(p: KeyPass, name: str, secret_name: str, state: KeyState) -> GatewayKeyStatus:
    """The status fields (conditions aside) for the key as the pass leaves it: ids, prefixes
    and times from the ownership records and Coder's rows."""
    heartbeat = state.info.last_heartbeat_at if state.info is not None else None
    previous = state.previous
    return GatewayKeyStatus(
        key_id=state.key_id,
        key_name=name,
        key_prefix=state.prefix,
        coder_version=p.wiring.store.coder_version.release.label,
        secret_name=secret_name,
        created_at=whole_seconds(state.created_at),
        last_heartbeat_at=whole_seconds(heartbeat),
        rotation=RotationStatus(
            generation=state.generation,
            previous_key_id=str(previous.id) if previous else None,
            previous_key_prefix=previous.secret_prefix if previous else None,
            retire_after=state.retire_after,
            last_rotated_at=whole_seconds(state.rotated_at),
        ),
    )


def finish(p: KeyPass, status: GatewayKeyStatus) -> PassOutcome:
    """Fold the pass's conditions into the status and return the minimal patch."""
    patch, conditions = next_status(
        p.current,
        status,
        p.conditions,
        generation=p.ident.generation,
        clock=p.wiring.clock,
        ready_dependencies=_READY_DEPENDENCIES,
        ready_message=_READY_MESSAGE,
        order=_ORDER,
    )
    return PassOutcome(
        status_patch=patch,
        events=p.events,
        retry_after=p.retry_after,
        retry_message=p.retry_message,
        conditions=conditions,
        database_error=p.database_error,
    )
