"""Issuing a gateway key, and completing an issue a crash interrupted.

**Crash safety.** The plaintext comes only from the operator's generator and exists only in
memory and in the Secret. Issuing is three steps: journal the key (its id, sha256 and prefix
as this object's *pending* key, in the operator's own table, where tenants cannot write),
write the Secret, then :func:`complete` (insert Coder's row, only if the value given hashes
to the journal). A crash after the journal and before the Secret write leaves a pending key
no Secret holds (discarded by the next pass); a crash after the Secret write leaves a
pending key the Secret holds (completed by the next pass). Never a row whose plaintext
nobody has, and never a row whose plaintext the operator did not generate.
"""

from __future__ import annotations

import uuid

from aigateway_operator.api.common import ConditionType, EventReason, Reason
from aigateway_operator.api.gatewaykey import SECRET_DATA_KEY, GatewayKeySpec
from aigateway_operator.api.identity import (
    AIGATEWAYCODERDKEY,
    GATEWAY_KEY_ID_ANNOTATION,
    GATEWAY_KEY_OWNER_LABEL,
    GATEWAY_KEY_ROTATION_ANNOTATION,
    MANAGED_BY_LABELS,
)
from aigateway_operator.controllers.gatewaykey.secret import PREFIX_LENGTH, owner_label_value
from aigateway_operator.controllers.gatewaykey.state import (
    KeyPass,
    KeyState,
    StopPass,
    owner_policy,
)
from aigateway_operator.kube import SecretData
from aigateway_operator.status.conditions import ConditionState
from aigateway_operator.store import NameTaken, PendingKey, SecretCollision, generate_gateway_secret

__all__ = ["complete", "issue", "name_conflict"]

KIND = AIGATEWAYCODERDKEY.kind


def name_conflict(p: KeyPass, name: str, exc: NameTaken) -> StopPass:
    """``Issued=False, NameConflict`` naming who holds the name; nothing was changed."""
    holder = exc.holder or "a row this object does not own"
    message = (
        f"spec.keyName {name!r}: Coder already has an AI Gateway key of that name, held by "
        f"{holder}; nothing was changed. Choose another spec.keyName, or free the name"
    )
    p.conditions.append(ConditionState.false(ConditionType.ISSUED, Reason.NAME_CONFLICT, message))
    if p.is_news(ConditionType.ISSUED, Reason.NAME_CONFLICT):
        p.warn(Reason.NAME_CONFLICT, message)
    return StopPass()


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
    rotating: bool = False,
) -> None:
    """Draw a new key, journal it, write it to the Secret, then to Coder.

    ``rotating`` keeps the current key as the previous one until it is retired; otherwise the
    current key is deleted when the new one is inserted.
    """
    store, owner = p.wiring.store, p.owner
    key_id = uuid.uuid4()
    secret = generate_gateway_secret()
    try:
        pending = await store.begin_gateway_key(
            owner,
            key_id,
            name,
            secret,
            rotating=rotating,
            deletion_policy=owner_policy(spec),
            rotation_generation=spec.rotation.generation,
        )
    except NameTaken as exc:
        raise name_conflict(p, name, exc) from None
    obj = p.ident
    annotations = {
        GATEWAY_KEY_ID_ANNOTATION: str(key_id),
        GATEWAY_KEY_ROTATION_ANNOTATION: str(spec.rotation.generation),
    }
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
    old_prefix = state.prefix
    await complete(p, name, pending, secret, state)
    state.generation = spec.rotation.generation
    new_prefix = secret[:PREFIX_LENGTH]
    if rotating:
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
    p: KeyPass, name: str, pending: PendingKey, secret: str, state: KeyState
) -> None:
    """Insert the journaled key whose plaintext the Secret now holds, then re-read the records.

    A name another owner took meanwhile stops the pass (``NameConflict``; the pending key
    stays, to be completed once the name is free). A prefix or hash collision (a one in 62^7
    event) discards the pending key: the next pass issues another.
    """
    store, owner = p.wiring.store, p.owner
    try:
        await store.complete_gateway_key(owner, pending.id, name, secret)
    except NameTaken as exc:
        raise name_conflict(p, name, exc) from None
    except SecretCollision:
        await store.discard_pending(owner)
        raise
    await p.reload(state)
