"""Issuing a gateway key, and completing an issue a crash interrupted.

**Crash safety.** The plaintext exists only in memory and in the Secret, and the Secret is
always written *before* the row, carrying the new key's id (never the secret) and, during a
rotation, the id of the key it replaces. A Secret whose key id differs from ``status.keyID``
is therefore a pass that did not finish, and the next pass completes it with the store's
replayable ``create_gateway_key(..., secret=)``. A crash can leave a Secret without a row
(completed later), never a row whose plaintext nobody has.
"""

from __future__ import annotations

import uuid

from aigateway_operator.api.common import ConditionType, EventReason, Reason
from aigateway_operator.api.gatewaykey import SECRET_DATA_KEY, GatewayKeySpec
from aigateway_operator.api.identity import (
    AIGATEWAYCODERDKEY,
    GATEWAY_KEY_ID_ANNOTATION,
    GATEWAY_KEY_OWNER_LABEL,
    GATEWAY_KEY_PREVIOUS_ID_ANNOTATION,
    GATEWAY_KEY_ROTATION_ANNOTATION,
    MANAGED_BY_LABELS,
)
from aigateway_operator.controllers.gatewaykey.secret import (
    PREFIX_LENGTH,
    Held,
    held_from,
    owner_label_value,
)
from aigateway_operator.controllers.gatewaykey.state import KeyPass, KeyState, StopPass
from aigateway_operator.kube import SecretData
from aigateway_operator.status.conditions import ConditionState
from aigateway_operator.store import (
    GatewayKeyConflict,
    GatewayKeyInfo,
    InvalidName,
    NameTaken,
    generate_gateway_secret,
    retiring_name,
)

__all__ = ["complete", "issue", "matches", "rename_retiring"]

KIND = AIGATEWAYCODERDKEY.kind
RETIRING_ATTEMPTS = 5


async def matches(p: KeyPass, info: GatewayKeyInfo, held: Held) -> bool:
    """Whether the Secret's value is the row's secret (prefix, then the hash by replay)."""
    if info.secret_prefix != held.secret[:PREFIX_LENGTH]:
        return False
    try:
        # With the same id, name and secret this is a read: the store compares the hash.
        await p.wiring.store.create_gateway_key(
            info.id, info.name, p.ident.owner(p.wiring.settings.instance_id), secret=held.secret
        )
    except GatewayKeyConflict:
        return False
    return True


async def issue(
    p: KeyPass,
    spec: GatewayKeySpec,
    name: str,
    secret_name: str,
    sec: SecretData | None,
    state: KeyState,
    reason: str,
    why: str,
    *,
    replaces: uuid.UUID | None = None,
) -> None:
    """Draw a new key, write it to the Secret first, then to Coder.

    ``replaces`` (rotation) is renamed and kept until retirement; every other key this object
    held is deleted once the Secret points at the new one.
    """
    held_id = held_from(sec).key_id
    taken = await p.wiring.store.get_gateway_key_by_name(name)
    known = {state.key_id, state.previous_id, held_id, replaces} - {None}
    if taken is not None and taken.id not in known:
        message = (
            f"spec.keyName {name!r}: Coder already has an AI Gateway key of that name that "
            f"this {KIND} did not create; nothing was changed. Delete it in Coder or choose "
            "another spec.keyName"
        )
        p.conditions.append(
            ConditionState.false(ConditionType.ISSUED, Reason.NAME_CONFLICT, message)
        )
        if p.is_news(ConditionType.ISSUED, Reason.NAME_CONFLICT):
            p.warn(Reason.NAME_CONFLICT, message)
        raise StopPass

    key_id = uuid.uuid4()
    secret = generate_gateway_secret()
    annotations = {
        GATEWAY_KEY_ID_ANNOTATION: str(key_id),
        GATEWAY_KEY_ROTATION_ANNOTATION: str(spec.rotation.generation),
    }
    if replaces is not None:
        annotations[GATEWAY_KEY_PREVIOUS_ID_ANNOTATION] = str(replaces)
    obj = p.ident
    written = await p.kube.write_owned_secret(
        obj.namespace,
        secret_name,
        {SECRET_DATA_KEY: secret.encode()},
        obj.owner_reference(),
        {GATEWAY_KEY_OWNER_LABEL: owner_label_value(obj.name), **MANAGED_BY_LABELS},
        sec.resource_version if sec is not None else None,
        annotations,
    )
    p.written.append((obj.namespace, secret_name, written.resource_version))
    held = Held(key_id, secret, replaces, spec.rotation.generation)
    old_prefix = state.prefix
    await complete(p, name, held, state, rotation_generation=spec.rotation.generation)
    new_prefix = secret[:PREFIX_LENGTH]
    if replaces is not None:
        return  # the caller reports the rotation
    if reason == Reason.ISSUED:
        text = f"Issued Coder AI Gateway key {name!r} (prefix {new_prefix}) into Secret"
        p.note(EventReason.ISSUED, f"{text} {secret_name!r}" + (f" ({why})" if why else ""))
    else:
        p.warn(
            reason,
            f"{why}; issued a new key (prefix {new_prefix}) into Secret {secret_name!r}"
            + (f" and deleted the old key (prefix {old_prefix}) from Coder" if old_prefix else ""),
        )


async def complete(
    p: KeyPass, name: str, held: Held, state: KeyState, *, rotation_generation: int
) -> None:
    """Bring Coder's rows in line with what the Secret holds (idempotent, replayable)."""
    store, owner = p.wiring.store, p.ident.owner(p.wiring.settings.instance_id)
    key_id = held.key_id
    assert key_id is not None  # noqa: S101 - callers pass usable secrets only
    keep = {key_id, held.previous_id} - {None}
    for stale in (state.key_id, state.previous_id):
        if stale is not None and stale not in keep:
            await store.delete_gateway_key(stale, owner)
    previous: GatewayKeyInfo | None = None
    if held.previous_id is not None:
        previous = await store.get_gateway_key(held.previous_id)
        if previous is not None and previous.name.lower() == name.lower():
            previous = await rename_retiring(p, previous, name)
    try:
        issued = await store.create_gateway_key(key_id, name, owner, secret=held.secret)
    except NameTaken:
        message = (
            f"spec.keyName {name!r}: Coder already has an AI Gateway key of that name that "
            f"this {KIND} did not create; nothing was overwritten"
        )
        p.conditions.append(
            ConditionState.false(ConditionType.ISSUED, Reason.NAME_CONFLICT, message)
        )
        if p.is_news(ConditionType.ISSUED, Reason.NAME_CONFLICT):
            p.warn(Reason.NAME_CONFLICT, message)
        raise StopPass from None
    now = p.wiring.clock()
    is_rotation = previous is not None and state.previous_id != previous.id
    state.key_id = key_id
    state.prefix = issued.secret_prefix
    state.created_at = issued.created_at
    state.generation = (
        held.rotation_generation if held.rotation_generation is not None else rotation_generation
    )
    state.info = await store.get_gateway_key(key_id)
    if previous is None:
        state.clear_previous()
    elif is_rotation:
        state.previous_id = previous.id
        state.previous_prefix = previous.secret_prefix
        state.retire_after = None  # set by _retire_previous from the spec's grace period
        state.last_rotated_at = now


async def rename_retiring(p: KeyPass, previous: GatewayKeyInfo, name: str) -> GatewayKeyInfo:
    """Free the plain name for the new key; the old one keeps authenticating by hash."""
    for n in range(1, RETIRING_ATTEMPTS + 1):
        try:
            return await p.wiring.store.rename_gateway_key(
                previous.id, retiring_name(name, n), p.ident.owner(p.wiring.settings.instance_id)
            )
        except NameTaken:
            continue
    raise InvalidName("AI Gateway key", name, "no free retiring name for the previous key")
