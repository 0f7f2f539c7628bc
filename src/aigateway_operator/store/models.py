"""Plain data types of the storage layer: what callers ask for and what they get back.

These are deliberately independent of the Kubernetes API models: the reconcile layer maps a
spec onto :class:`DesiredProvider` and an object's identity onto :class:`OwnerRef`. Fields
that hold secrets are excluded from ``repr`` so that logging a model never leaks them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal
from uuid import UUID

__all__ = [
    "CODER_OWNABLE",
    "Actor",
    "ActorSource",
    "BedrockSettings",
    "DeletePolicy",
    "DeleteResult",
    "DesiredProvider",
    "Difference",
    "DifferenceKind",
    "GatewayKeyInfo",
    "GatewayKeyOwnership",
    "GatewayKeyRelease",
    "IssuedGatewayKey",
    "KeyRef",
    "OwnerPolicy",
    "OwnerRef",
    "PendingKey",
    "ProviderCheck",
    "ProviderPreview",
    "ProviderResult",
    "ProviderType",
    "RowVersion",
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


ActorSource = Literal["admission", "operator", "unknown"]

#: How many groups of a requester are kept (they only help to read the audit log).
MAX_ACTOR_GROUPS = 20
#: Longest user name or group kept (Kubernetes names fit easily; the rest is cut).
MAX_ACTOR_TEXT = 256


def _cut(text: str) -> str:
    return text[:MAX_ACTOR_TEXT]


@dataclass(frozen=True)
class Actor:
    """Who caused a write in Coder, as Coder's audit log shows it: plain strings.

    ``source`` says where the name comes from: ``admission`` (the Kubernetes user or service
    account whose request changed the object's spec, recorded by the operator's validating
    webhook), ``operator`` (the operator acting on its own: a drift revert, a repaired or
    rotated key, garbage collection) or ``unknown`` (``reason`` says why). Never a token or
    a request body: only the user name and groups of the admission request.
    """

    name: str
    source: ActorSource
    groups: tuple[str, ...] = ()
    reason: str = ""

    @classmethod
    def admitted(cls, username: str, groups: tuple[str, ...] = ()) -> Actor:
        return cls(_cut(username), "admission", tuple(_cut(g) for g in groups[:MAX_ACTOR_GROUPS]))

    @classmethod
    def operator(cls, why: str) -> Actor:
        """The operator itself, e.g. ``aigateway-operator (drift revert)``."""
        return cls(f"aigateway-operator ({why})", "operator")

    @classmethod
    def unknown(cls, reason: str) -> Actor:
        return cls("unknown", "unknown", reason=reason)

    def audit_fields(self) -> dict[str, Any]:
        """The actor's part of ``additional_fields.kubernetes``."""
        out: dict[str, Any] = {"actor": self.name, "actor_source": self.source}
        if self.groups:
            out["actor_groups"] = list(self.groups)
        if self.reason:
            out["actor_reason"] = self.reason
        return out


#: The actor of a write no caller attributed (should not happen; said plainly if it does).
UNATTRIBUTED = Actor.unknown("not attributed by the operator")


@dataclass(frozen=True)
class OwnerRef:
    """Who a row belongs to: a Kubernetes object, as opaque values.

    The identity is ``(instance, kind, namespace, name)`` (:attr:`key`): the operator install
    (``AIGW_INSTANCE_ID``, stable across a cluster rebuild from the same Git) and the object's
    kind, namespace and name — never its uid, which a rebuilt cluster does not keep. Every row
    the store writes is recorded in ``aigateway_operator.owners`` under this identity, and
    every change acts only on rows recorded for it. ``uid`` and ``generation`` only label the
    record, audit entries and messages.
    """

    kind: str
    namespace: str
    name: str
    instance: str = "default"
    uid: str = ""
    generation: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    actor: Actor | None = None
    """Who caused the writes made for this owner (audit rows only; never part of the
    identity)."""

    @property
    def key(self) -> tuple[str, str, str, str]:
        """The identity: ``(instance, kind, namespace, name)``."""
        return (self.instance, self.kind, self.namespace, self.name)

    def describe(self) -> str:
        """How messages name the owner, e.g. ``AIProvider team-a/openai``."""
        return f"{self.kind} {self.namespace}/{self.name}"

    def audit_fields(self) -> dict[str, Any]:
        """The object as it appears in ``audit_logs.additional_fields``."""
        out: dict[str, Any] = {
            "instance": self.instance,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
        }
        if self.uid:
            out["uid"] = self.uid
        if self.generation is not None:
            out["generation"] = self.generation
        out.update((self.actor or UNATTRIBUTED).audit_fields())
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class OwnerRecord:
    """One row of ``aigateway_operator.owners``: which identity owns which Coder row."""

    owner: OwnerRef
    row_table: Literal["ai_providers", "ai_gateway_keys"]
    row_id: UUID
    role: Literal["current", "previous", "pending"]
    adopted: bool
    deletion_policy: Literal["Delete", "Orphan"]


@dataclass(frozen=True)
class AppliedInputs:
    """What a write applied to an owner's row: the object (``object_uid``), its
    ``generation``, a digest of its spec and of the Secret versions it read. Recorded with the
    ownership record in the write's transaction (``owners.applied_*``); the operator's own
    word on "this generation was already applied", where nobody but the operator writes."""

    object_uid: str
    generation: int
    spec_digest: str
    secrets_revision: str

    def same_spec(self, other: AppliedInputs | None) -> bool:
        """Whether ``other`` applied this object's generation with this spec."""
        return (
            other is not None
            and bool(self.object_uid)
            and (other.object_uid, other.generation, other.spec_digest)
            == (self.object_uid, self.generation, self.spec_digest)
        )


@dataclass(frozen=True)
class VerificationRecord:
    """The operator's record of its last STS verification of a provider's Bedrock identity
    (``owners.verified_*``): for which inputs, a digest of the verdict it reported, and when.
    A verdict read back from status is re-used only while it matches this record."""

    inputs: str
    digest: str
    at: datetime


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


CODER_OWNABLE: frozenset[str] = frozenset({"enabled", "display_name", "icon"})
"""Columns (:class:`DesiredProvider` attributes) that :attr:`DesiredProvider.coder_owned` may
name: what Coder's admins may own. Never a key, the settings (Bedrock credentials), the type,
the name or the base URL: those always follow the desired state."""


@dataclass(frozen=True)
class DesiredProvider:
    """The state one AI provider row should have.

    ``base_url=None`` picks a per-type default (see ``canonical.default_base_url``).
    ``icon=None`` writes ``''`` (coderd's default); icon is skipped when the column is absent.
    ``api_keys`` is the ordered failover list: coderd reads keys by ``(created_at, id)`` and
    the store keeps that order equal to this list.

    ``coder_owned`` names columns of :data:`CODER_OWNABLE` that belong to Coder's admins (as
    Terraform's ``ignore_changes``): they are written with this state's value when the row is
    created or revived (it was soft-deleted), and afterwards never written and never reported
    as a difference, so an edit made in Coder stays. A row taken over (adopted) keeps the
    values it has. The results report their current values (``coder_owned``).
    """

    name: str
    type: ProviderType
    display_name: str | None = None
    enabled: bool = True
    base_url: str | None = None
    icon: str | None = None
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    bedrock: BedrockSettings | None = None
    coder_owned: frozenset[str] = frozenset()


@dataclass(frozen=True)
class KeyRef:
    """One API-key row as reported to callers: never the plaintext."""

    id: UUID
    masked: str
    key_id: str | None
    """Digest of the dbcrypt key the row is encrypted with (None = plaintext)."""


class DifferenceKind(StrEnum):
    """What kind of difference a drift check found between a row and the desired state."""

    COLUMN = "column"
    """A plain column (``field`` names it)."""
    SETTINGS = "settings"
    """The settings decode fine but differ."""
    SETTINGS_UNDECODABLE = "settings_undecodable"
    """coderd cannot decode the stored settings (or they do not decrypt): gateways skip the
    row and Coder's provider list fails. Rewritten by ``upsert``."""
    KEYS = "keys"
    """The key rows differ from the desired list: count, order or a value."""
    KEY_UNDECRYPTABLE = "key_undecryptable"
    """A key row's ciphertext no longer decrypts under its (known) key. Rewritten by
    ``upsert``."""
    UNKNOWN_TYPE = "unknown_type"
    """The row's ``type`` is an ``ai_provider_type`` label this operator does not know (a
    newer Coder's). Left alone: never rewritten."""
    UNKNOWN_SETTINGS_TYPE = "unknown_settings_type"
    """The settings carry a ``_type`` this operator does not know. Left alone."""


_LEFT_ALONE = frozenset({DifferenceKind.UNKNOWN_TYPE, DifferenceKind.UNKNOWN_SETTINGS_TYPE})


@dataclass(frozen=True)
class Difference:
    """One difference between a stored row and the desired state. ``detail`` never holds a
    value (no key, no settings content): counts, positions, row ids, JSON kinds, labels."""

    field: str
    """``type``, ``name``, ``display_name``, ``enabled``, ``base_url``, ``icon``,
    ``deleted``, ``settings`` or ``api_keys``."""
    kind: DifferenceKind
    detail: str = ""

    @property
    def left_alone(self) -> bool:
        """The row holds something this operator does not understand: report, never write."""
        return self.kind in _LEFT_ALONE

    def __str__(self) -> str:
        return f"{self.field} ({self.detail})" if self.detail else self.field


@dataclass(frozen=True)
class RowVersion:
    """Cheap drift detection for one provider row *and its key rows*.

    ``token`` digests the Postgres row versions (``xmin``) of the provider row and of every
    key row of the provider, plus their ids: any INSERT, UPDATE or DELETE of either, by
    anybody, gives another token, including edits that leave ``updated_at`` alone (a key row
    deleted, swapped or corrupted in SQL). It holds no value, not even a hash of one. Our
    own writes return the token they leave (``ProviderResult.version``), so comparing it with
    :meth:`Store.provider_row_versions` tells someone else's write from ours.
    """

    updated_at: datetime
    deleted: bool
    token: str


@dataclass(frozen=True)
class ProviderCheck:
    """What :meth:`Store.check_provider` found (read-only drift check)."""

    provider_id: UUID
    differences: tuple[Difference, ...]
    version: RowVersion
    coder_owned: Mapping[str, Any] = field(default_factory=dict)
    """The row's current value of each Coder-owned column (``DesiredProvider.coder_owned``;
    ``icon`` only where the column exists). Never a difference."""

    @property
    def left_alone(self) -> bool:
        """True when ``upsert`` would leave the row alone (see :class:`Difference`)."""
        return any(d.left_alone for d in self.differences)


PreviewAction = Literal["create", "update", "unchanged", "adopt", "revive", "left_alone"]


@dataclass(frozen=True)
class ProviderPreview:
    """What :meth:`Store.upsert_provider` would do now, found without writing or locking
    (``Store.preview_provider``): the action, the columns it would change and the key rows
    it would add or remove, **masked** (Coder's rule: ``sk-a...0001``). Never a plaintext:
    this is shown to whoever applies an object (admission warnings).

    A refusal the upsert would meet is raised instead, as the upsert raises it
    (:class:`NameTaken` naming the holder, :class:`NameConflict`, :class:`TypeMismatch`).
    """

    action: PreviewAction
    name: str
    type: str
    columns: tuple[str, ...] = ()
    """Plain columns that change (``display_name``, ``base_url``, ...; ``settings`` when the
    settings blob would be rewritten)."""
    keys_added: tuple[str, ...] = ()
    """Masked values of the key rows to be inserted, in failover order."""
    keys_removed: tuple[str, ...] = ()
    """Masked values of the key rows to be deleted (``""`` for one that does not decrypt)."""
    keys_reordered: bool = False
    key_count: int = 0
    """Key rows after the write."""
    differences: tuple[Difference, ...] = ()

    @property
    def changed(self) -> bool:
        return self.action != "unchanged"


Action = Literal["created", "updated", "unchanged", "adopted", "revived", "left_alone"]


@dataclass(frozen=True)
class HostnamePeers:
    """Other live, enabled providers whose base URL has the same hostname as one provider's:
    Coder's AI Bridge proxy routes by hostname, reads providers in name order and marks every
    later duplicate as an error (the warning coderd's API returns in ``status.warnings``)."""

    hostname: str
    names: tuple[str, ...]
    """Some of them, sorted: at most :data:`HOSTNAME_PEER_NAMES`, found in no set order."""
    count: int = 0
    """``len(names)``: exact below :data:`HOSTNAME_PEER_NAMES`, "at least" at it."""


#: How many peers :meth:`Store.hostname_peers` looks for: two tell "alone", "with exactly one
#: other" (which one) and "with several" apart, all the wake-ups need; a list of every peer
#: would cost a scan of every match on a host shared by many.
HOSTNAME_PEER_NAMES = 2


@dataclass(frozen=True)
class ProviderResult:
    """What :meth:`Store.upsert_provider` did.

    ``action``: ``created`` (new row), ``adopted`` (took over a live row we did not create;
    it may also have been updated), ``revived`` (our row had been soft-deleted, e.g. in the
    Coder UI, and is live again), ``updated`` or ``unchanged``. ``unchanged`` means nothing
    was written that readers can see: no notify, no audit; ``reencrypted`` may still be true
    when only the ciphertext was rewritten under the primary key. ``left_alone``: the row
    carries a provider type or settings ``_type`` this operator does not know (a newer
    Coder's); nothing was written and ``differences`` says why (show it, do not retry fast).
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
    version: RowVersion | None = None
    """The row's version after the call (compare with :meth:`Store.provider_row_versions`)."""
    differences: tuple[Difference, ...] = ()
    """What differed before the call (what an update or a revert fixed; for ``left_alone``,
    why nothing was written). Empty for ``created``."""
    coder_owned: Mapping[str, Any] = field(default_factory=dict)
    """The value of each Coder-owned column (``DesiredProvider.coder_owned``; ``icon`` only
    where the column exists) after the call: the desired one on create and revive, the row's
    own otherwise. Empty for ``left_alone``."""

    @property
    def changed(self) -> bool:
        return self.action not in ("unchanged", "left_alone")


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
    type: ProviderType | None
    """None when the stored label is one this operator does not know (see ``type_label``)."""
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
    type_label: str = ""
    """The stored ``type`` label as is (``type`` is None when this operator does not know it)."""
    issues: tuple[Difference, ...] = ()
    """What could not be read as coderd would: an unknown type or settings ``_type``,
    settings coderd cannot decode, key rows that do not decrypt (``value`` is then "")."""


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


GatewayKeyRole = Literal["current", "previous", "pending"]
OwnerPolicy = Literal["Delete", "Orphan"]


def _sha256(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


@dataclass(frozen=True)
class PendingKey:
    """The crash-safety journal of one owner: a key the operator generated and is delivering
    to the Secret, not yet in Coder (``aigateway_operator.owners``, role ``pending``).

    Only the SHA-256 of the secret is kept (as coderd keeps it), never the secret:
    :meth:`matches` tells whether a value read back from the Secret is that key.
    """

    id: UUID
    secret_prefix: str
    rotating: bool
    """Issued as a rotation: completing it keeps the current key as the previous one."""
    created_at: datetime
    secret_hash: bytes = field(repr=False)
    rotation_generation: int | None = None
    """The ``spec.rotation.generation`` it is issued for (None: journaled by an earlier
    release)."""

    def matches(self, secret: str | None) -> bool:
        """Whether ``secret`` is the journaled key (constant-time on the hash)."""
        return secret is not None and hmac.compare_digest(_sha256(secret), self.secret_hash)


@dataclass(frozen=True)
class GatewayKeyOwnership:
    """What ``aigateway_operator.owners`` records for one owner's gateway keys, joined with
    Coder's rows (``Store.gateway_key_state``).

    ``current``/``previous`` are the live rows; ``*_recorded_id`` are the ids the records
    name. A recorded id whose row is gone (deleted in Coder) shows as recorded-but-missing:
    ``current is None and current_recorded_id is not None`` (:attr:`current_revoked`).
    """

    current: GatewayKeyInfo | None = None
    previous: GatewayKeyInfo | None = None
    pending: PendingKey | None = None
    current_recorded_id: UUID | None = None
    previous_recorded_id: UUID | None = None
    previous_since: datetime | None = None
    """When the previous key became the previous one (the rotation), from its record."""
    observed_at: datetime | None = None
    """The database's clock when this was read (None when nothing is recorded): heartbeat
    ages are measured on coderd's clock, never against the operator's."""
    deletion_policy: OwnerPolicy | None = None
    """The policy recorded with the owner's records (None: no records, or they disagree)."""
    current_hash: bytes | None = field(default=None, repr=False)
    """sha256 of the current row's secret as Coder stores it (compare with :meth:`matches`)."""
    object_uid: str = ""
    """The uid of the object the records were written for ("" when none, or they disagree):
    a late delete event of an earlier object of the same identity must not collect them."""
    current_rotation_generation: int | None = None
    """The ``spec.rotation.generation`` the current key was issued for, from its record
    (None: none recorded, or recorded by an earlier release). Never from status or Secret."""

    @property
    def current_revoked(self) -> bool:
        """A current key is recorded but its row is gone (deleted in Coder)."""
        return self.current is None and self.current_recorded_id is not None

    @property
    def recorded(self) -> bool:
        """Whether anything at all is recorded for the owner."""
        return (
            self.current_recorded_id is not None
            or self.previous_recorded_id is not None
            or self.pending is not None
        )

    def matches(self, secret: str | None) -> bool:
        """Whether ``secret`` is the current row's key (its hash, constant time)."""
        if secret is None or self.current is None or self.current_hash is None:
            return False
        return hmac.compare_digest(_sha256(secret), self.current_hash)


@dataclass(frozen=True)
class GatewayKeyRelease:
    """What ``Store.release_gateway_keys`` did."""

    deleted: tuple[GatewayKeyInfo, ...]
    """Rows deleted from Coder (policy Delete)."""
    released: tuple[UUID, ...]
    """Ids whose records were forgotten with their rows left in Coder (policy Orphan)."""
    records: int
    """Records removed (pending included)."""
