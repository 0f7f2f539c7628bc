"""Upgrading from the release before ownership records (issue #13).

That release kept which ``ai_gateway_keys`` rows an AIGatewayCoderdKey owned only in the
object's status (``status.keyID``, ``status.rotation.previousKeyID``). At start, before any
pass runs, the operator turns its live objects' status into claims, and the store records a
claimed row only where the claim holds (the row exists, nobody has it recorded, one object
claims it, and it carries the object's key name or a retiring name of it); the rest is
logged. Without this, every object would find no record, take its own row for a stranger's
and stop with ``NameConflict``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from aigateway_operator.api.common import InvalidSpecError
from aigateway_operator.api.gatewaykey import GatewayKeySpec
from aigateway_operator.api.identity import AIGATEWAYCODERDKEY
from aigateway_operator.controllers.gatewaykey.secret import parse_uuid
from aigateway_operator.controllers.gatewaykey.state import owner_policy
from aigateway_operator.controllers.shared import ObjectIdentity
from aigateway_operator.store import LegacyGatewayKeyClaim, LegacyGatewayKeyMigration, Store

__all__ = ["legacy_claims", "migrate_legacy_gateway_keys"]

log = logging.getLogger(__name__)


def legacy_claims(
    objects: Iterable[Mapping[str, Any]], instance: str
) -> list[LegacyGatewayKeyClaim]:
    """The claims the objects' status makes (objects with an invalid spec claim nothing)."""
    claims: list[LegacyGatewayKeyClaim] = []
    for body in objects:
        ident = ObjectIdentity.from_body(AIGATEWAYCODERDKEY, body)
        try:
            spec = GatewayKeySpec.from_body(body.get("spec") or {})
        except InvalidSpecError:
            continue
        status = body.get("status") or {}
        if not isinstance(status, Mapping):
            continue
        rotation = status.get("rotation") or {}
        owner = ident.owner(instance)
        name = spec.effective_key_name(ident.name)
        policy = owner_policy(spec)
        current = parse_uuid(_text(status.get("keyID")))
        previous = parse_uuid(_text(rotation.get("previousKeyID")))
        if current is not None:
            claims.append(LegacyGatewayKeyClaim(owner, current, "current", name, policy))
        if previous is not None:
            claims.append(LegacyGatewayKeyClaim(owner, previous, "previous", name, policy))
    return claims


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


async def migrate_legacy_gateway_keys(
    store: Store, objects: Iterable[Mapping[str, Any]], instance: str
) -> LegacyGatewayKeyMigration:
    """Record what the objects' status claims; log what was recorded and what was refused."""
    result = await store.migrate_legacy_gateway_keys(legacy_claims(objects, instance))
    for claim in result.recorded:
        log.info(
            "ownership migration: recorded AI Gateway key %s as the %s key of %s",
            claim.key_id,
            claim.role,
            claim.owner.describe(),
        )
    for claim, why in result.refused:
        log.warning(
            "ownership migration: not recording AI Gateway key %s as the %s key of %s: %s",
            claim.key_id,
            claim.role,
            claim.owner.describe(),
            why,
        )
    return result
