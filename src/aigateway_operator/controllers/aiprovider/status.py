"""An AIProvider's status: what a pass reports back (never a plaintext, never a reversible
hash), and the one function every pass ends with.

``apiKeys[]`` shows Coder's masking of each key and a keyed fingerprint (an HMAC whose key is
derived from the encryption key): it tells which key is live and reveals nothing.
``coderOwned`` shows the fields Coder's admins own and what Coder holds for them (no secret
can be Coder-owned).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from aigateway_operator.api.aiprovider import (
    CODER_OWNED_DISPLAY_NAME_MAX,
    CODER_OWNED_ICON_MAX,
    AIProviderSpec,
    AIProviderStatus,
    APIKeyStatus,
    CoderOwnedField,
    CoderOwnedStatus,
)
from aigateway_operator.api.common import InvalidStatusError
from aigateway_operator.controllers.aiprovider.secrets import ProviderSecrets
from aigateway_operator.controllers.shared import ObjectIdentity, PassOutcome, PassScratch
from aigateway_operator.controllers.wiring import Wiring
from aigateway_operator.status.conditions import next_status
from aigateway_operator.store import ProviderResult

__all__ = [
    "CODER_OWNED_COLUMNS",
    "carry",
    "coder_owned_columns",
    "coder_owned_status",
    "encryption_digest",
    "fingerprint",
    "finish",
    "key_status",
    "parse_status",
]


def fingerprint(key: bytes, value: str) -> str:
    """A keyed, non-reversible fingerprint: shows which key is live, reveals nothing."""
    return "hmac-sha256:" + hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:16]


#: ``spec.coderOwnedFields`` -> the store's column names (the store knows no Kubernetes).
CODER_OWNED_COLUMNS: Mapping[CoderOwnedField, str] = {
    CoderOwnedField.ENABLED: "enabled",
    CoderOwnedField.DISPLAY_NAME: "display_name",
    CoderOwnedField.ICON: "icon",
}


def coder_owned_columns(spec: AIProviderSpec) -> frozenset[str]:
    """The store columns ``spec.coderOwnedFields`` hands to Coder's admins."""
    return frozenset(CODER_OWNED_COLUMNS[f] for f in spec.coder_owned_fields)


def coder_owned_status(spec: AIProviderSpec, values: Mapping[str, Any]) -> CoderOwnedStatus | None:
    """``status.coderOwned``: the owned fields in a fixed order (not the spec's, so
    reordering the spec does not rewrite the status) and what Coder holds for each
    (``values``: the store's column -> value). None when nothing is Coder-owned."""
    if not spec.coder_owned_fields:
        return None
    fields = tuple(f for f in CoderOwnedField if f in spec.coder_owned_fields)
    enabled = values.get("enabled")
    display_name = values.get("display_name")
    icon = values.get("icon")
    return CoderOwnedStatus(
        fields=fields,
        enabled=enabled if isinstance(enabled, bool) else None,
        # NULL means Coder shows the name: "" keeps the field visible in the status.
        display_name=(
            (display_name or "")[:CODER_OWNED_DISPLAY_NAME_MAX]
            if "display_name" in values
            else None
        ),
        icon=(icon or "")[:CODER_OWNED_ICON_MAX] if "icon" in values else None,
    )


def parse_status(body: object) -> AIProviderStatus:
    """The object's status as last written (empty if someone wrote something unparseable)."""
    try:
        return AIProviderStatus.from_body(body if isinstance(body, dict) else None)
    except InvalidStatusError:
        return AIProviderStatus()


def key_status(
    wiring: Wiring,
    spec: AIProviderSpec,
    secrets: ProviderSecrets,
    result: ProviderResult,
    current: AIProviderStatus,
) -> tuple[APIKeyStatus, ...]:
    """One entry per key row, in failover order: id, Coder's mask, the Secret key it came
    from, a keyed fingerprint and when the row was created."""
    created = {k.id: k.created_at for k in current.api_keys if k.id}
    now = wiring.clock()
    out = []
    for i, key in enumerate(result.keys):
        ref = spec.api_keys[i].secret_key_ref if i < len(spec.api_keys) else None
        value = secrets.api_keys[i] if i < len(secrets.api_keys) else ""
        out.append(
            APIKeyStatus(
                id=str(key.id),
                masked=key.masked,
                secret_key_ref=ref,
                fingerprint=fingerprint(wiring.fingerprint_key, value) if value else None,
                created_at=created.get(str(key.id)) or now,
            )
        )
    return tuple(out)


def encryption_digest(result: ProviderResult) -> str | None:
    """The digest of the key Coder's rows are encrypted with (None: plaintext)."""
    if result.settings_key_id:
        return result.settings_key_id
    return next((k.key_id for k in result.keys if k.key_id), None)


def carry(current: AIProviderStatus, revision: str | None = None) -> AIProviderStatus:
    """Keep what the last successful pass reported (the row still looks like that)."""
    return current.model_copy(
        update={"observed_secrets_revision": revision or current.observed_secrets_revision}
    )


def finish(
    wiring: Wiring,
    ident: ObjectIdentity,
    current: AIProviderStatus,
    scratch: PassScratch,
    status: AIProviderStatus,
) -> PassOutcome:
    """Fold the pass's conditions into the status and return the minimal patch."""
    patch, conditions = next_status(
        current, status, scratch.conditions, generation=ident.generation, clock=wiring.clock
    )
    return PassOutcome(
        status_patch=patch,
        events=scratch.events,
        retry_after=scratch.retry_after,
        retry_message=scratch.retry_message,
        conditions=conditions,
        database_error=scratch.database_error,
        synced_at=status.last_synced_at,
    )
