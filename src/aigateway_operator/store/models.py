"""Plain data types of the storage layer: what callers ask for and what they get back.

These are deliberately independent of the Kubernetes API models: the reconcile layer maps a
spec onto :class:`DesiredProvider` and an object's identity onto :class:`OwnerRef`. Fields
that hold secrets are excluded from ``repr`` so that logging a model never leaks them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal
from uuid import UUID

__all__ = [
    "BedrockSettings",
    "DeletePolicy",
    "DeleteResult",
    "DesiredProvider",
    "GatewayKeyInfo",
    "IssuedGatewayKey",
    "KeyRef",
    "OwnerRef",
    "ProviderResult",
    "ProviderType",
    "StoredKey",
    "StoredProvider",
]


class ProviderType(StrEnum):
    """Values of Coder's ``ai_provider_type`` enum (reference §1.2)."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    AZURE = "azure"
    BEDROCK = "bedrock"
    GOOGLE = "google"
    OPENAI_COMPAT = "openai-compat"
    OPENROUTER = "openrouter"
    VERCEL = "vercel"
    COPILOT = "copilot"


@dataclass(frozen=True)
class OwnerRef:
    """Who a row belongs to: the Kubernetes object, as opaque values.

    ``uid`` is the identity (a provider row id is derived from it, so a retry after a crash
    finds its own row). The rest only labels audit entries and messages.
    """

    uid: str
    kind: str = ""
    namespace: str = ""
    name: str = ""
    generation: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def audit_fields(self) -> dict[str, Any]:
        """The object as it appears in ``audit_logs.additional_fields``."""
        out: dict[str, Any] = {"uid": self.uid}
        for key in ("kind", "namespace", "name"):
            value = getattr(self, key)
            if value:
                out[key] = value
        if self.generation is not None:
            out["generation"] = self.generation
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class BedrockSettings:
    """The Bedrock variant of ``ai_providers.settings`` (reference §3). Empty string = unset.

    ``external_id`` is server-owned in coderd: ``None`` keeps the stored value, and when there
    is none and ``role_arn`` is set one is generated the way coderd does (26 chars of base32).
    """

    region: str = ""
    model: str = ""
    small_fast_model: str = ""
    access_key: str = field(default="", repr=False)
    access_key_secret: str = field(default="", repr=False)
    role_arn: str = ""
    external_id: str | None = None
    protocol: Literal["", "invoke-model", "mantle"] = ""

    def is_configured(self) -> bool:
        """coderd's ``IsConfigured``: any of region, role_arn or an access key is set."""
        return bool(self.region or self.role_arn or self.access_key or self.access_key_secret)


@dataclass(frozen=True)
class DesiredProvider:
    """The state one AI provider row should have.

    ``base_url=None`` picks a per-type default (see ``canonical.default_base_url``).
    ``icon=None`` writes ``''`` (coderd's default); icon is skipped when the column is absent.
    ``api_keys`` is the ordered failover list: coderd reads keys by ``(created_at, id)`` and
    the store keeps that order equal to this list.
    """

    name: str
    type: ProviderType
    display_name: str | None = None
    enabled: bool = True
    base_url: str | None = None
    icon: str | None = None
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    bedrock: BedrockSettings | None = None


@dataclass(frozen=True)
class KeyRef:
    """One API-key row as reported to callers: never the plaintext."""

    id: UUID
    masked: str
    key_id: str | None
    """Digest of the dbcrypt key the row is encrypted with (None = plaintext)."""


Action = Literal["created", "updated", "unchanged", "adopted", "revived"]


@dataclass(frozen=True)
class ProviderResult:
    """What :meth:`Store.upsert_provider` did.

    ``action``: ``created`` (new row), ``adopted`` (took over a live row we did not create;
    it may also have been updated), ``revived`` (our row had been soft-deleted, e.g. in the
    Coder UI, and is live again), ``updated`` or ``unchanged``. ``unchanged`` means nothing
    was written that readers can see: no notify, no audit; ``reencrypted`` may still be true
    when only the ciphertext was rewritten under the primary key.
    """

    provider_id: UUID
    name: str
    action: Action
    changed_fields: tuple[str, ...]
    keys: tuple[KeyRef, ...]
    """The provider's key rows after the call, in failover order."""
    keys_added: tuple[KeyRef, ...]
    keys_removed: tuple[KeyRef, ...]
    keys_kept: tuple[KeyRef, ...]
    keys_reordered: bool
    settings_key_id: str | None
    """Digest the settings blob is encrypted with (None: plaintext or no settings)."""
    reencrypted: bool
    notified: bool
    audited: bool
    updated_at: datetime | None = None
    """The row's ``updated_at`` after the call: a later value means someone else wrote it."""

    @property
    def changed(self) -> bool:
        return self.action != "unchanged"


@dataclass(frozen=True)
class DeleteResult:
    """What :meth:`Store.delete_provider` did: ``deleted``, ``released`` or ``absent``."""

    provider_id: UUID | None
    action: Literal["deleted", "released", "absent"]
    notified: bool
    keys_removed: int = 0


class DeletePolicy(StrEnum):
    """What deleting the owning object does to the provider row.

    ``soft_delete`` (default): what coderd's DELETE does: ``deleted = true, enabled = false``;
    unlike coderd, the key rows are removed too, so no API key outlives its declaration.
    ``release``: leave the row live and untouched, only forget that we own it (the natural
    choice for an adopted row that should go back to manual management).
    """

    SOFT_DELETE = "soft_delete"
    RELEASE = "release"


@dataclass(frozen=True)
class StoredKey:
    """An API-key row read back and decrypted."""

    id: UUID
    value: str = field(repr=False)
    masked: str
    key_id: str | None
    created_at: datetime

    def ref(self) -> KeyRef:
        return KeyRef(id=self.id, masked=self.masked, key_id=self.key_id)


@dataclass(frozen=True)
class StoredProvider:
    """A provider row read back and decrypted (keys in the order coderd reads them)."""

    id: UUID
    name: str
    type: ProviderType
    display_name: str | None
    icon: str | None
    """None when the ``icon`` column does not exist (coderd before 000539)."""
    enabled: bool
    deleted: bool
    base_url: str
    bedrock: BedrockSettings | None
    settings_key_id: str | None
    keys: tuple[StoredKey, ...]
    created_at: datetime
    updated_at: datetime
    adopted: bool


@dataclass(frozen=True)
class IssuedGatewayKey:
    """A gateway key row plus its secret. The secret exists only here: coderd stores a hash."""

    id: UUID
    name: str
    secret: str = field(repr=False)
    secret_prefix: str
    created_at: datetime
    created: bool
    """False when the call found the same id and secret already stored (a replay)."""


@dataclass(frozen=True)
class GatewayKeyInfo:
    """A gateway key row without its secret."""

    id: UUID
    name: str
    secret_prefix: str
    created_at: datetime
    last_heartbeat_at: datetime | None
    """None when never seen, or when the column does not exist (coderd before v2.35)."""
