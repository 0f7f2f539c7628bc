"""Coder-compatible storage layer: AI providers and AI Gateway keys in Coder's own Postgres.

Writes rows that coderd reads exactly as its own: the same columns and settings JSON, the same
dbcrypt encryption (AES-256-GCM, key digests, ``dbcrypt_keys`` continuity), the same advisory
lock, pubsub channel and audit shape (facts: ``/work/shared/coder-reference.md``). It imports
neither Kubernetes nor kopf nor ``aigateway_operator.api``: callers map their objects onto
the plain types below.

Public API (everything else is internal)::

    store = await Store.open(Settings())          # schema verify, key check, pool
    await store.close()                           # or: async with await Store.open(s) as store

    # providers; identity = OwnerRef.uid (the row id is derived from it)
    await store.upsert_provider(desired: DesiredProvider, owner: OwnerRef, *, adopt=False)
        -> ProviderResult                         # created/updated/unchanged/adopted/revived
    # desired.coder_owned (a subset of CODER_OWNABLE): columns written on create/revive only,
    # never reverted nor reported; results and checks carry their values (coder_owned)
    await store.delete_provider(owner, policy=DeletePolicy.SOFT_DELETE) -> DeleteResult
    await store.get_provider(owner | uid) -> StoredProvider | None      # decrypted
    await store.check_provider(desired, owner) -> ProviderCheck | None  # drift, read-only
    await store.preview_provider(desired, owner, *, adopt=False) -> ProviderPreview  # read-only
    await store.provider_row_versions(row_ids) -> {row_id: RowVersion}  # incl. key rows

    # AI Gateway keys; every row recorded for its owner (OwnerRef.key), changes only to those
    await store.gateway_key_state(owner) -> GatewayKeyOwnership   # current/previous/pending
    await store.gateway_key_name_holder(owner, name) -> str | None  # who holds it (read-only)
    await store.begin_gateway_key(owner, key_id, name, secret, *, rotating, deletion_policy)
        -> PendingKey                             # the journal: nothing in Coder yet
    await store.complete_gateway_key(owner, key_id, name, secret) -> IssuedGatewayKey
    await store.discard_pending(owner) -> bool
    await store.retire_previous(owner, unless_used_within=None) -> GatewayKeyInfo | None
    await store.gateway_key_matches(owner, secret) -> bool
    await store.release_gateway_keys(owner, policy) -> GatewayKeyRelease   # Delete | Orphan
    await store.record_deletion_policy(owner, policy) -> int
    retiring_name(name, n) -> str                 # "<name>-retiring-<n>", fits 64 chars
    generate_gateway_secret() -> str              # "cgw_" + 39 x [0-9A-Za-z]

    # who in Kubernetes made a change (the validating webhook records, a pass looks up);
    # owner.actor (Actor) then goes into the audit rows' user_agent and additional_fields
    await store.record_actor(object_uid=, generation=, spec_digest=, kind=, namespace=,
                             name=, actor=Actor.admitted(username, groups))
    await store.admission_actor(object_uid, generation, spec_digest) -> Actor

    await store.check_schema() -> Capabilities    # readiness: re-verify the schema
    store.capabilities, store.key_status, store.primary_key_digest
    store.coder_version -> CoderVersion           # release range + migration, from the DB
    provider_row_id(owner_uid) -> UUID            # the id a created provider row gets

Guarantees: each call is one short READ COMMITTED transaction (all or nothing, so a crash
between statements leaves nothing half-done and a retry converges); repeated calls with the
same desired state write nothing; provider writes hold ``pg_advisory_xact_lock(10)`` and send
``pg_notify('ai_providers_changed', '')`` only after a real change; nothing encrypted is
written unless our primary key is proven to be an active ``dbcrypt_keys`` key, and nothing
secret is written in plaintext unless chosen (``AIGW_ALLOW_PLAINTEXT``) while coderd has no
active key. Reads are forward-compatible: a provider type, settings ``_type`` or column this
operator does not know never raises; such rows are reported and left alone.

Errors (all :class:`StoreError`; ``retryable`` is True only for :class:`StoreUnavailable`
and its subclass :class:`StoreTimeout`): :class:`SchemaMismatch` /
:class:`InsufficientPrivileges`, :class:`EncryptionKeyMismatch` / :class:`UnknownKeyReference`
/ :class:`PlaintextRefused`, :class:`NotSupportedByCoder`, :class:`InvalidProvider` /
:class:`InvalidKey` / :class:`DuplicateKey`, :class:`InvalidName`, :class:`NameTaken` /
:class:`NameConflict` (adoptable), :class:`NotFound`, :class:`GatewayKeyConflict`,
:class:`SecretCollision`. Messages never contain secrets.
"""

from aigateway_operator.store.canonical import default_base_url
from aigateway_operator.store.core import Store
from aigateway_operator.store.dbcrypt import KeyStatus
from aigateway_operator.store.errors import (
    DuplicateKey,
    EncryptionKeyMismatch,
    GatewayKeyConflict,
    InsufficientPrivileges,
    InvalidKey,
    InvalidName,
    InvalidProvider,
    NameConflict,
    NameTaken,
    NotFound,
    NotSupportedByCoder,
    PlaintextRefused,
    RevivalUnconfirmed,
    SchemaMismatch,
    SecretCollision,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
    TypeMismatch,
    UnknownKeyReference,
    held_by,
)
from aigateway_operator.store.gateway_keys import (
    generate_gateway_secret,
    hash_secret,
    is_own_name,
    retiring_name,
)
from aigateway_operator.store.models import (
    CODER_OWNABLE,
    HOSTNAME_PEER_NAMES,
    Actor,
    AppliedInputs,
    BedrockSettings,
    DeletePolicy,
    DeleteResult,
    DesiredProvider,
    Difference,
    DifferenceKind,
    GatewayKeyInfo,
    GatewayKeyOwnership,
    GatewayKeyRelease,
    HostnamePeers,
    IssuedGatewayKey,
    KeyRef,
    OwnerPolicy,
    OwnerRecord,
    OwnerRef,
    PendingKey,
    ProviderCheck,
    ProviderPreview,
    ProviderResult,
    ProviderType,
    RowVersion,
    StoredKey,
    StoredProvider,
    VerificationRecord,
)
from aigateway_operator.store.providers import provider_row_id
from aigateway_operator.store.schema import Capabilities
from aigateway_operator.store.versions import CODER_RELEASES, CoderRelease, CoderVersion

__all__ = [
    "CODER_OWNABLE",
    "CODER_RELEASES",
    "HOSTNAME_PEER_NAMES",
    "Actor",
    "AppliedInputs",
    "BedrockSettings",
    "Capabilities",
    "CoderRelease",
    "CoderVersion",
    "DeletePolicy",
    "DeleteResult",
    "DesiredProvider",
    "Difference",
    "DifferenceKind",
    "DuplicateKey",
    "EncryptionKeyMismatch",
    "GatewayKeyConflict",
    "GatewayKeyInfo",
    "GatewayKeyOwnership",
    "GatewayKeyRelease",
    "HostnamePeers",
    "InsufficientPrivileges",
    "InvalidKey",
    "InvalidName",
    "InvalidProvider",
    "IssuedGatewayKey",
    "KeyRef",
    "KeyStatus",
    "NameConflict",
    "NameTaken",
    "NotFound",
    "NotSupportedByCoder",
    "OwnerPolicy",
    "OwnerRecord",
    "OwnerRef",
    "PendingKey",
    "PlaintextRefused",
    "ProviderCheck",
    "ProviderPreview",
    "ProviderResult",
    "ProviderType",
    "RevivalUnconfirmed",
    "RowVersion",
    "SchemaMismatch",
    "SecretCollision",
    "Store",
    "StoreError",
    "StoreTimeout",
    "StoreUnavailable",
    "StoredKey",
    "StoredProvider",
    "TypeMismatch",
    "UnknownKeyReference",
    "VerificationRecord",
    "default_base_url",
    "generate_gateway_secret",
    "hash_secret",
    "held_by",
    "is_own_name",
    "provider_row_id",
    "retiring_name",
]
