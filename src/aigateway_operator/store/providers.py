"""AI provider rows: upsert by owner identity, key-set replacement, soft delete, read back.

Every public function here runs in **one** short READ COMMITTED transaction on the
connection it is given, and follows coderd's rules (reference §5, §8, §9):

* ``pg_advisory_xact_lock(10)`` first, the lock coderd's env seed and its provider readers
  take, so a gateway never reads a half-written provider and we never race the seed;
* the primary encryption key is proven active before anything encrypted is written;
* ``pg_notify('ai_providers_changed', '')`` in the same transaction after a real change (it
  is delivered at commit), and only then: running gateways reload on that signal alone;
* coderd-shaped audit rows for real changes, in the same transaction.

Ownership: every row we write is recorded in ``aigateway_operator.owners`` under the owner's
identity ``(instance, kind, namespace, name)`` (see ``operator_schema``), and every call acts
only on the row recorded for that identity: never on a row found by name or id alone. A live
row holding the wanted name that is recorded for another identity is that identity's (the
newcomer gets :class:`NameTaken` naming it, and takes over only once it is gone); one recorded
for nobody was made in Coder (or by an earlier release) and is taken over only when the caller
adopts it, never changing its type (:class:`TypeMismatch`). A provider we create gets the id
``uuid5(namespace, "ai_provider:" + identity)``: the same object re-created (after a cluster
rebuild from the same Git) finds its row again, by its record.

No-op detection: desired state is canonicalised (``canonical``) and compared with the stored
row *decrypted* and decoded as coderd decodes it (``settings``), key rows included, by the
pure :func:`plan.plan_provider` that the read-only :meth:`ProviderOps.check` shares; when
equal, nothing is written at all: no UPDATE, no ``updated_at`` bump, no notify, no audit.
Ciphertext under a non-primary key, or plaintext (NULL key id) once keys are configured, is
rewritten under the primary key even then (a silent re-encryption: readers see identical
plaintext, so no notify and no audit). A key row or settings blob of ours whose ciphertext
no longer decrypts is rewritten from the desired value; one under a key we were not given
still fails closed (:class:`UnknownKeyReference`). A row with a type or settings ``_type``
this operator does not know is left alone (``action="left_alone"``). Coder-owned columns
(``DesiredProvider.coder_owned``) are written on create and revive only; the plan leaves them
alone on a live row (an adopted one included), so an edit made in Coder stays.

Versions: every result carries the :class:`RowVersion` the call left (``updated_at``,
``deleted`` and a token over the ``xmin`` of the provider row and its key rows), so a caller
can tell its own writes from anybody else's, key-row edits included.
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import AsyncConnection, AsyncCursor, sql

from aigateway_operator.masking import mask_secret
from aigateway_operator.store import actors, audit
from aigateway_operator.store.canonical import (
    CanonicalProvider,
    bedrock_from_dict,
    canonicalize,
    encode_settings,
    with_stored_external_id,
)
from aigateway_operator.store.cipher import DecryptError, KeyRing
from aigateway_operator.store.dbcrypt import PrimaryKeyGuard, plaintext_refused
from aigateway_operator.store.errors import (
    NameConflict,
    NameTaken,
    RevivalUnconfirmed,
    StoreError,
    TypeMismatch,
)
from aigateway_operator.store.errors import held_by as held_by_text
from aigateway_operator.store.models import (
    HOSTNAME_PEER_NAMES,
    AppliedInputs,
    DeletePolicy,
    DeleteResult,
    DesiredProvider,
    Difference,
    DifferenceKind,
    HostnamePeers,
    KeyRef,
    OwnerRecord,
    OwnerRef,
    ProviderCheck,
    ProviderPreview,
    ProviderResult,
    ProviderType,
    RowVersion,
    StoredKey,
    StoredProvider,
    VerificationRecord,
)
from aigateway_operator.store.operator_schema import OWNERS
from aigateway_operator.store.plan import (
    ProviderPlan,
    StoredKeyView,
    StoredRowView,
    coder_owned_values,
    plan_provider,
)
from aigateway_operator.store.schema import Capabilities
from aigateway_operator.store.settings import DecodedSettings, SettingsStatus, decode

__all__ = [
    "AI_PROVIDERS_LOCK_ID",
    "NOTIFY_CHANNEL",
    "OWNER_NAMESPACE",
    "ProviderOps",
    "provider_row_id",
]

AI_PROVIDERS_LOCK_ID = 10
"""coderd's ``LockIDAIProvidersEnvSeed``; its DRPC provider reader takes it too."""

NOTIFY_CHANNEL = "ai_providers_changed"

OWNER_NAMESPACE = uuid.UUID("3b0c7f0e-7a51-5d1b-9a57-6169677761f0")
"""Namespace of the deterministic row ids (a fixed random-looking constant; never change it)."""

PROVIDER_FIELDS = ("id", "type", "name", "display_name", "icon", "enabled", "deleted", "base_url")
KEY_FIELDS = ("id", "provider_id", "api_key")

Checkpoint = Callable[[str, AsyncConnection[Any]], Awaitable[None]]


_OWNER_UPSERT = (
    f"INSERT INTO {OWNERS} (row_table, row_id, instance_id, kind, namespace, name, "  # noqa: S608
    "adopted, deletion_policy, object_uid) "
    "VALUES ('ai_providers', %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (row_table, row_id) DO UPDATE SET instance_id = EXCLUDED.instance_id, "
    "kind = EXCLUDED.kind, namespace = EXCLUDED.namespace, name = EXCLUDED.name, "
    "adopted = EXCLUDED.adopted, deletion_policy = EXCLUDED.deletion_policy, "
    "object_uid = EXCLUDED.object_uid, updated_at = now()"
)
#: The owner's identity, as the WHERE of a query on ``owners`` (parameters i, k, ns, n).
_IDENTITY = "instance_id = %(i)s AND kind = %(k)s AND namespace = %(ns)s AND name = %(n)s"
_RECORDED_ROW = (
    f"(SELECT row_id FROM {OWNERS} WHERE row_table = 'ai_providers' "  # noqa: S608
    f"AND role = 'current' AND {_IDENTITY})"
)
#: The record of row ``p`` (joined as ``o``).
_OWNER_COLS = (
    "o.instance_id, o.kind, o.namespace, o.name, coalesce(o.adopted, false), "
    "o.deletion_policy, coalesce(o.object_uid, ''), "
    "o.applied_generation, o.applied_spec_digest, o.applied_secrets_revision"
)
#: What the write applied, recorded with the row's ownership record (migration 4).
_APPLIED_UPDATE = (
    f"UPDATE {OWNERS} SET applied_generation = %s, applied_spec_digest = %s, "  # noqa: S608
    "applied_secrets_revision = %s, object_uid = %s "
    "WHERE row_table = 'ai_providers' AND row_id = %s"
)
_APPLIED_SELECT = (
    f"SELECT object_uid, applied_generation, applied_spec_digest, applied_secrets_revision "  # noqa: S608
    f"FROM {OWNERS} WHERE row_table = 'ai_providers' AND role = 'current' AND {_IDENTITY}"
)
_PROVIDER_INSERT_COLS = (
    "id", "type", "name", "display_name", "enabled", "base_url", "settings", "settings_key_id",
)  # fmt: skip
#: Key rows of one provider in one statement, whatever their number: the rows travel as one
#: JSON array (``jsonb_to_recordset``), so the text never changes (psycopg parses it once, the
#: server prepares it once per connection).
_KEYS_INSERT = (
    "INSERT INTO ai_provider_keys "
    "(id, provider_id, api_key, api_key_key_id, created_at, updated_at) "
    "SELECT k.id, %s::uuid, k.api_key, k.key_id, k.created_at, %s::timestamptz "
    "FROM jsonb_to_recordset(%s::jsonb) "
    "AS k(id uuid, api_key text, key_id text, created_at timestamptz)"
)


@functools.cache
def _create_sql(icon: bool, audited: bool) -> str:
    """A new provider in one statement: its row, our ownership record, its key rows, the
    audit rows, then ``pg_notify``. Data-modifying CTEs all run to completion; the key rows'
    foreign key is checked at the end of the statement, when the provider row exists. One
    statement instead of five is one parse/bind/execute cycle on both ends."""
    cols = _PROVIDER_INSERT_COLS + (("icon",) if icon else ())
    names = ", ".join(f'"{c}"' for c in cols)
    marks = ", ".join(["%s"] * len(cols))
    parts = [  # constant text and placeholders only: every value is a parameter
        f"p AS (INSERT INTO ai_providers ({names}) VALUES ({marks}))",  # noqa: S608
        f"o AS ({_OWNER_UPSERT})",
        f"k AS ({_KEYS_INSERT})",
    ]
    if audited:
        parts.append(f"a AS ({audit.AUDIT_INSERT_SQL})")
    return "WITH " + ", ".join(parts) + " SELECT pg_notify(%s, '')"


#: The version of provider row ``p``: ``updated_at``, ``deleted`` and the text the token is
#: digested from: the ``xmin`` of the row and of each key row (with its id). Any INSERT,
#: UPDATE or DELETE changes some ``xmin`` (a row lock does not: it sets ``xmax``), and
#: freezing keeps the value readable (Postgres 9.4+). Evaluated inside a write transaction
#: it sees that transaction's own rows. No key value goes into it.
_VERSION_COLS = (
    "p.updated_at, p.deleted, p.xmin::text || '/' || coalesce((SELECT string_agg("
    "k.id::text || ':' || k.xmin::text, ',' ORDER BY k.id) FROM ai_provider_keys k "
    "WHERE k.provider_id = p.id), '')"
)
_VERSION_SQL = f"SELECT {_VERSION_COLS} FROM ai_providers p WHERE p.id = %s"  # noqa: S608


def _version(updated_at: datetime, deleted: bool, text: str) -> RowVersion:
    token = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
    return RowVersion(updated_at=updated_at, deleted=deleted, token=token)


def _tick(base: datetime, n: int) -> datetime:
    """``base`` plus ``n`` microseconds (Postgres timestamps have microsecond resolution)."""
    return base + timedelta(microseconds=n)


#: The hostname of a URL in a Postgres (ARE) regular expression: after the scheme and any
#: user info, up to a port, path, query or fragment (IPv6 literals keep their brackets).
_HOST_RE = r"^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?(\[[^]]*\]|[^/:?#]+)"


def provider_row_id(owner: OwnerRef) -> uuid.UUID:
    """The id of the provider row created for ``owner``'s identity (stable across retries and
    across a cluster rebuilt from the same Git)."""
    return uuid.uuid5(OWNER_NAMESPACE, "ai_provider:" + "/".join(owner.key))


def _owner_params(
    owner: OwnerRef, row_id: uuid.UUID, adopted: bool, policy: DeletePolicy
) -> tuple[Any, ...]:
    """The parameters of :data:`_OWNER_UPSERT`."""
    i, k, ns, n = owner.key
    return (row_id, i, k, ns, n, adopted, _policy(policy), owner.uid)


def _identity(owner: OwnerRef) -> dict[str, str]:
    i, k, ns, n = owner.key
    return {"i": i, "k": k, "ns": ns, "n": n}


def _policy(policy: DeletePolicy) -> str:
    """How a record stores a deletion policy (the API's words)."""
    return "Orphan" if policy is DeletePolicy.RELEASE else "Delete"


def _check_holder(holder: _Row, canon: CanonicalProvider, owner: OwnerRef, adopt: bool) -> None:
    """A live row holds the name and is not recorded for ``owner``: may ``owner`` have it?"""
    if holder.holder is not None:
        # Recorded for another object (or another operator install): the current owner keeps
        # the name; the newcomer waits until that owner is gone.
        raise NameTaken(
            "AI provider", canon.name, holder=held_by_text(holder.holder, owner.instance)
        )
    if not adopt:
        raise NameConflict(canon.name, str(holder.id))
    known = {t.value for t in ProviderType}
    if holder.type in known and holder.type != canon.type.value:
        # (A type this operator does not know is left alone by the update, unrecorded.)
        raise TypeMismatch(canon.name, holder.type, canon.type.value)


@dataclass
class _Row:
    id: uuid.UUID
    type: str
    name: str
    display_name: str | None
    enabled: bool
    deleted: bool
    base_url: str
    settings: str | None = field(repr=False)
    settings_key_id: str | None
    created_at: datetime
    updated_at: datetime
    icon: str | None
    version_deleted: bool
    version_text: str
    holder_instance: str | None = None
    holder_kind: str | None = None
    holder_namespace: str | None = None
    holder_name: str | None = None
    adopted: bool = False
    deletion_policy: str | None = None
    object_uid: str = ""
    """The uid of the object the record was last written for (a hint for collection only)."""
    applied_generation: int | None = None
    applied_spec_digest: str | None = None
    applied_secrets_revision: str | None = None

    @property
    def applied(self) -> AppliedInputs | None:
        """What the operator's last write applied to this row (None: not recorded)."""
        if self.applied_generation is None:
            return None
        return AppliedInputs(
            self.object_uid,
            int(self.applied_generation),
            self.applied_spec_digest or "",
            self.applied_secrets_revision or "",
        )

    @property
    def holder(self) -> tuple[str, str, str, str] | None:
        """The identity the row is recorded for, if any."""
        if self.holder_instance is None:
            return None
        return (
            self.holder_instance,
            self.holder_kind or "",
            self.holder_namespace or "",
            self.holder_name or "",
        )

    @property
    def version(self) -> RowVersion:
        return _version(self.updated_at, self.version_deleted, self.version_text)

    def view(self, settings: DecodedSettings) -> StoredRowView:
        """The row as :func:`plan.plan_provider` sees it (settings decrypted and decoded)."""
        return StoredRowView(
            type=self.type,
            name=self.name,
            display_name=self.display_name,
            enabled=self.enabled,
            deleted=self.deleted,
            base_url=self.base_url,
            icon=self.icon,
            settings=settings,
            settings_key_id=self.settings_key_id,
        )

    def audit_view(self, has_icon: bool, settings_plain: str | None) -> dict[str, Any]:
        view: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "name": self.name,
            "display_name": self.display_name if self.display_name is not None else "null",
            "enabled": self.enabled,
            "deleted": self.deleted,
            "base_url": self.base_url,
            "settings": audit.secret(settings_plain or None),
        }
        if has_icon:
            view["icon"] = self.icon or ""
        return view


class ProviderOps:
    """Provider operations bound to one key ring, schema capabilities and audit actor."""

    def __init__(
        self,
        ring: KeyRing,
        caps: Capabilities,
        guard: PrimaryKeyGuard,
        audit_user_id: uuid.UUID,
        checkpoint: Checkpoint,
    ) -> None:
        self._ring = ring
        self._caps = caps
        self._guard = guard
        self._audit_user_id = audit_user_id
        self._checkpoint = checkpoint
        cols = (
            "p.id, p.type::text, p.name, p.display_name, p.enabled, p.deleted, p.base_url, "
            "p.settings, p.settings_key_id, p.created_at, p.updated_at, "
            + ("p.icon" if caps.has_icon else "NULL::text")
            + ", "
            + _VERSION_COLS.removeprefix("p.updated_at, ")
        )
        self._select_cols = cols

    # --- reading -----------------------------------------------------------------------------

    async def _lock_and_now(self, conn: AsyncConnection[Any]) -> datetime:
        cur = await conn.execute(
            "SELECT now() FROM (SELECT pg_advisory_xact_lock(%s)) AS l", (AI_PROVIDERS_LOCK_ID,)
        )
        row = await cur.fetchone()
        return row[0] if row else datetime.now(UTC)

    async def _send_lock_and_guard(self, conn: AsyncConnection[Any]) -> AsyncCursor[Any]:
        """Lock 10, then the primary key's ``dbcrypt_keys`` row and the active digests, in one
        statement; returns the cursor to read them from (see :meth:`_guarded_now`).

        The lock is taken in FROM, so it is held before ``dbcrypt_keys`` is read.
        """
        return await conn.execute(
            "SELECT now(), (SELECT test FROM dbcrypt_keys WHERE active_key_digest = %s), "
            "(SELECT coalesce(array_agg(active_key_digest ORDER BY number), '{}') "
            "FROM dbcrypt_keys WHERE active_key_digest IS NOT NULL) "
            "FROM (SELECT pg_advisory_xact_lock(%s)) AS l",
            (self._ring.primary_digest, AI_PROVIDERS_LOCK_ID),
        )

    async def _guarded_now(self, cur: AsyncCursor[Any]) -> tuple[datetime, tuple[str, ...]]:
        """The transaction's ``now()`` and the active ``dbcrypt_keys`` digests it read."""
        row = await cur.fetchone()
        if row is None:  # pragma: no cover - a FROM with one row always yields one row
            raise RuntimeError("advisory lock query returned no row")
        self._guard.check(row[1])
        return row[0], tuple(str(d) for d in row[2])

    def _refuse_plaintext(self, active: tuple[str, ...], what: str) -> None:
        """No secret column is written in plaintext while coderd has an active key."""
        if self._ring.primary is None and active:
            raise plaintext_refused(active, f"refusing to write {what}")

    async def _load_owned(
        self, conn: AsyncConnection[Any], owner: OwnerRef, lock: bool
    ) -> _Row | None:
        """Our row: the one recorded for ``owner``'s identity (nothing else is ours)."""
        query = (
            f"SELECT {self._select_cols}, {_OWNER_COLS} "  # noqa: S608
            f"FROM ai_providers p JOIN {OWNERS} o "
            "  ON o.row_table = 'ai_providers' AND o.row_id = p.id "
            f"WHERE p.id = {_RECORDED_ROW}" + (" FOR UPDATE OF p" if lock else "")
        )
        cur = await conn.execute(query, _identity(owner))
        row = await cur.fetchone()
        return _Row(*row) if row else None

    async def _send_load_for_upsert(
        self, conn: AsyncConnection[Any], owner: OwnerRef, name: str, *, lock: bool = True
    ) -> AsyncCursor[Any]:
        """All candidate rows, locked, in one statement; read them with :meth:`_loaded`.

        Candidates: the row recorded for ``owner``'s identity; the soft-deleted row with the
        id this operator derives for that identity (:func:`provider_row_id`) when its record
        went with the delete (Delete policy, collection), so a re-applied object revives it
        instead of failing on its primary key; and another live row holding ``name`` (with
        whoever its record names). Coder makes random (v4) ids, so only this operator ever
        wrote a row with that derived (v5) id, and only for this identity.
        """
        query = (
            f"SELECT {self._select_cols}, {_OWNER_COLS}, "  # noqa: S608
            f"  CASE WHEN p.id IS NOT DISTINCT FROM {_RECORDED_ROW} THEN 2 "
            "        WHEN p.id = %(own_id)s AND p.deleted THEN 1 ELSE 0 END "
            "FROM ai_providers p "
            f"LEFT JOIN {OWNERS} o ON o.row_table = 'ai_providers' AND o.row_id = p.id "
            f"WHERE p.id = {_RECORDED_ROW} OR (p.id = %(own_id)s AND p.deleted) "
            "   OR (p.name = %(name)s AND NOT p.deleted) " + ("FOR UPDATE OF p" if lock else "")
        )
        params = {**_identity(owner), "name": name, "own_id": provider_row_id(owner)}
        return await conn.execute(query, params)

    @staticmethod
    async def _loaded(cur: AsyncCursor[Any]) -> tuple[_Row | None, _Row | None, bool]:
        """(our row, another live row holding the name, whether our row is recorded): the
        recorded row wins over the derived-id one."""
        ours: _Row | None = None
        rank = 0
        holder: _Row | None = None
        for record in await cur.fetchall():
            row = _Row(*record[:-1])
            if record[-1] > rank:
                ours, rank = row, record[-1]
            elif record[-1] == 0:
                holder = row
        return ours, holder, rank == 2

    async def _load_keys(
        self, conn: AsyncConnection[Any], provider_id: uuid.UUID, lock: bool
    ) -> list[StoredKeyView]:
        """Key rows in coderd's read order, decrypted; a row whose ciphertext does not
        decrypt under its (known) key has ``value=None``. A key we were not given raises
        :class:`UnknownKeyReference` (we cannot tell a foreign key from damage: fail closed)."""
        query = (
            "SELECT id, api_key, api_key_key_id, created_at FROM ai_provider_keys "
            "WHERE provider_id = %s ORDER BY created_at, id"
        )
        cur = await conn.execute(query + (" FOR UPDATE" if lock else ""), (provider_id,))
        out = []
        for kid, value, key_id, created_at in await cur.fetchall():
            plain: str | None
            try:
                plain = self._ring.decrypt_field(value, key_id, f"ai_provider_keys row {kid}")
            except DecryptError:
                plain = None
            out.append(StoredKeyView(kid, plain, key_id, created_at))
        return out

    def _read_settings(self, row: _Row) -> tuple[DecodedSettings, str | None]:
        """The settings as coderd decodes them, and the decrypted text (None: NULL, or it
        does not decrypt)."""
        if row.settings is None:
            return DecodedSettings(SettingsStatus.EMPTY), None
        try:
            plain = self._ring.decrypt_field(
                row.settings, row.settings_key_id, f"ai_providers row {row.id} settings"
            )
        except DecryptError:
            return (
                DecodedSettings(
                    SettingsStatus.UNDECODABLE,
                    reason=f"does not decrypt under key {row.settings_key_id}",
                ),
                None,
            )
        return decode(plain, self._caps.coder.bedrock_fields), plain

    async def get(self, conn: AsyncConnection[Any], owner: OwnerRef) -> StoredProvider | None:
        """Our row, decrypted, as far as it can be read: what cannot be read is in
        ``issues`` (never an exception for an unknown type or undecodable content)."""
        async with conn.transaction():
            row = await self._load_owned(conn, owner, lock=False)
            if row is None:
                return None
            keys = await self._load_keys(conn, row.id, lock=False)
        settings, _ = self._read_settings(row)
        view = row.view(settings)
        issues: list[Difference] = []
        if not view.type_known:
            issues.append(
                Difference("type", DifferenceKind.UNKNOWN_TYPE, f"{row.type!r} is not known")
            )
        if settings.status is SettingsStatus.UNKNOWN_TYPE:
            issues.append(
                Difference("settings", DifferenceKind.UNKNOWN_SETTINGS_TYPE, settings.reason)
            )
        elif settings.status is SettingsStatus.UNDECODABLE:
            issues.append(
                Difference(
                    "settings",
                    DifferenceKind.SETTINGS_UNDECODABLE,
                    f"undecodable by coderd: {settings.reason}",
                )
            )
        issues += [
            Difference("api_keys", DifferenceKind.KEY_UNDECRYPTABLE, f"row {k.id} does not decrypt")
            for k in keys
            if k.value is None
        ]
        return StoredProvider(
            id=row.id,
            name=row.name,
            type=ProviderType(row.type) if view.type_known else None,
            display_name=row.display_name,
            icon=row.icon if self._caps.has_icon else None,
            enabled=row.enabled,
            deleted=row.deleted,
            base_url=row.base_url,
            bedrock=bedrock_from_dict(settings.view),
            settings_key_id=row.settings_key_id,
            keys=tuple(
                StoredKey(k.id, k.value or "", mask_secret(k.value or ""), k.key_id, k.created_at)
                for k in keys
            ),
            created_at=row.created_at,
            updated_at=row.updated_at,
            adopted=row.adopted,
            type_label=row.type,
            issues=tuple(issues),
        )

    # --- upsert --------------------------------------------------------------------------------

    async def upsert(
        self,
        conn: AsyncConnection[Any],
        desired: DesiredProvider,
        owner: OwnerRef,
        adopt: bool,
        policy: DeletePolicy = DeletePolicy.SOFT_DELETE,
        revive: bool = True,
        applied: AppliedInputs | None = None,
    ) -> ProviderResult:
        canon = canonicalize(desired, self._caps.coder)  # validate before touching the database
        try:
            # Pipeline mode: statements whose results we do not need are sent without waiting
            # for each reply, which keeps the lock-10 transaction short for coderd's readers.
            async with conn.pipeline():
                return await self._upsert(
                    conn, canon, desired, owner, adopt, policy, revive, applied
                )
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.constraint_name == "ai_providers_name_unique":
                # A live row took the name without lock 10 (coderd's API does not take it).
                raise NameTaken("AI provider", canon.name, "created concurrently") from None
            raise

    async def _upsert(
        self,
        conn: AsyncConnection[Any],
        canon: CanonicalProvider,
        desired: DesiredProvider,
        owner: OwnerRef,
        adopt: bool,
        policy: DeletePolicy,
        revive: bool = True,
        applied: AppliedInputs | None = None,
    ) -> ProviderResult:
        async with conn.transaction():
            # Both statements go out in one round trip (pipeline mode): the server runs the
            # load only once lock 10 is held, with a snapshot taken after it, exactly as if
            # it had been sent after the lock's reply. A guard failure then rolls back a
            # read-only statement.
            lock = await self._send_lock_and_guard(conn)
            load = await self._send_load_for_upsert(conn, owner, canon.name)
            now, active = await self._guarded_now(lock)
            row, holder, recorded = await self._loaded(load)
            action: str | None = None
            if row is not None and not row.deleted:
                if row.name != canon.name and holder is not None:
                    who = held_by_text(holder.holder, owner.instance) if holder.holder else ""
                    raise NameTaken(
                        "AI provider",
                        canon.name,
                        "cannot rename the provider to it"
                        + (f"; it is held by {who}" if who else ""),
                        holder=who,
                    )
            elif holder is not None:
                _check_holder(holder, canon, owner, adopt)
                row, action = holder, "adopted"  # recorded once we know we may write it
            elif row is not None:
                if not revive:
                    raise RevivalUnconfirmed(canon.name)
                action = "revived"
            else:
                created = await self._create(conn, canon, desired, owner, now, active, policy)
                await self._record_applied(conn, created, applied, None)
                return created
            if row is None:  # unreachable: every branch above either sets row or returns
                raise RuntimeError("provider row vanished while locked")
            if action != "adopted" and (
                not recorded
                or row.deletion_policy != _policy(policy)
                or (owner.uid and row.object_uid != owner.uid)
            ):
                await self._record_owner(conn, owner, row.id, bool(row.adopted), policy)
            result = await self._update(
                conn, row, canon, desired, owner, now, action, active, policy
            )
            await self._record_applied(conn, result, applied, row.applied if recorded else None)
            return result

    @staticmethod
    async def _record_applied(
        conn: AsyncConnection[Any],
        result: ProviderResult,
        applied: AppliedInputs | None,
        recorded: AppliedInputs | None,
    ) -> None:
        """Record what this write applied, in its transaction (only when it changed; never
        for a row left alone: nothing of the spec was applied to it)."""
        if applied is None or result.action == "left_alone" or applied == recorded:
            return
        await conn.execute(
            _APPLIED_UPDATE,
            (
                applied.generation,
                applied.spec_digest,
                applied.secrets_revision,
                applied.object_uid,
                result.provider_id,
            ),
        )

    async def _record_owner(
        self,
        conn: AsyncConnection[Any],
        owner: OwnerRef,
        row_id: uuid.UUID,
        adopted: bool,
        policy: DeletePolicy,
    ) -> None:
        await conn.execute(_OWNER_UPSERT, _owner_params(owner, row_id, adopted, policy))

    def _encrypt_settings(self, settings: dict[str, Any] | None) -> tuple[str | None, str | None]:
        text = encode_settings(settings)
        if text is None:
            return None, None
        return self._ring.encrypt_field(text)

    def _new_view(self, row_id: uuid.UUID, canon: CanonicalProvider) -> dict[str, Any]:
        view: dict[str, Any] = {
            "id": str(row_id),
            "type": canon.type.value,
            "name": canon.name,
            "display_name": canon.display_name if canon.display_name is not None else "null",
            "enabled": canon.enabled,
            "deleted": False,
            "base_url": canon.base_url,
            "settings": audit.secret(canon.settings_json),
        }
        if self._caps.has_icon:
            view["icon"] = canon.icon
        return view

    async def _create(
        self,
        conn: AsyncConnection[Any],
        canon: CanonicalProvider,
        desired: DesiredProvider,
        owner: OwnerRef,
        now: datetime,
        active: tuple[str, ...],
        policy: DeletePolicy,
    ) -> ProviderResult:
        canon = with_stored_external_id(canon, desired, None, self._caps.coder)
        if canon.settings is not None or canon.api_keys:
            self._refuse_plaintext(active, f"the keys or settings of AI provider {canon.name!r}")
        row_id = provider_row_id(owner)
        # A record of ours whose row is gone (hard-deleted in SQL) must not block the new one.
        await conn.execute(
            f"DELETE FROM {OWNERS} WHERE row_table = 'ai_providers' AND {_IDENTITY} "  # noqa: S608
            "AND row_id <> %(id)s",
            {**_identity(owner), "id": row_id},
        )
        settings, settings_key_id = self._encrypt_settings(canon.settings)
        params: list[Any] = [row_id, canon.type.value, canon.name, canon.display_name,
                             canon.enabled, canon.base_url, settings, settings_key_id]  # fmt: skip
        if self._caps.has_icon:  # leave it out on coderd versions without the column
            params.append(canon.icon)
        params += _owner_params(owner, row_id, False, policy)  # ownership record
        key_rows, added = self._key_rows(
            row_id, [(v, _tick(now, i)) for i, v in enumerate(canon.api_keys)], now
        )
        params += key_rows
        provider_diff = audit.diff(None, self._new_view(row_id, canon), self._tracked())
        entries = [
            audit.AuditEntry("ai_provider", row_id, canon.name, "create", provider_diff),
            *self._key_entries(row_id, added, []),
        ]
        audited = self._caps.has_audit
        if audited:
            params += audit.audit_params(
                entries,
                user_id=self._audit_user_id,
                request_id=uuid.uuid4(),
                owner_fields=owner.audit_fields(),
            )
        params.append(NOTIFY_CHANNEL)
        await conn.execute(_create_sql(self._caps.has_icon, audited), params)
        version = await self._version_of(conn, row_id)
        await self._checkpoint("before_commit", conn)
        return ProviderResult(
            provider_id=row_id,
            name=canon.name,
            action="created",
            changed_fields=tuple(f for f in self._tracked() if f in provider_diff),
            keys=tuple(added),
            keys_added=tuple(added),
            keys_removed=(),
            keys_kept=(),
            keys_reordered=False,
            settings_key_id=settings_key_id,
            reencrypted=False,
            notified=True,
            audited=audited,
            updated_at=now,
            version=version,
            coder_owned=coder_owned_values(canon, canon.coder_owned, has_icon=self._caps.has_icon),
        )

    async def _version_of(self, conn: AsyncConnection[Any], row_id: uuid.UUID) -> RowVersion:
        """The row's version as this transaction left it (its own writes included)."""
        cur = await conn.execute(_VERSION_SQL, (row_id,))
        got = await cur.fetchone()
        if got is None:  # pragma: no cover - the row is locked or was just inserted
            raise RuntimeError("provider row vanished while locked")
        return _version(got[0], got[1], got[2])

    def _tracked(self) -> tuple[str, ...]:
        fields = (
            PROVIDER_FIELDS
            if self._caps.has_icon
            else tuple(f for f in PROVIDER_FIELDS if f != "icon")
        )
        return (*fields, "settings")

    async def _insert_keys(
        self,
        conn: AsyncConnection[Any],
        provider_id: uuid.UUID,
        values: Sequence[tuple[str, datetime]],
        now: datetime,
    ) -> list[KeyRef]:
        """Insert ``(plaintext, created_at)`` pairs as key rows, encrypted under the primary key."""
        if not values:
            return []
        params, refs = self._key_rows(provider_id, values, now)
        await conn.execute(_KEYS_INSERT, params)
        return refs

    def _key_rows(
        self, provider_id: uuid.UUID, values: Sequence[tuple[str, datetime]], now: datetime
    ) -> tuple[list[Any], list[KeyRef]]:
        """Encrypted key rows for ``(plaintext, created_at)`` pairs: the parameters of
        ``_KEYS_INSERT`` and a reference (masked value) for each row."""
        rows: list[dict[str, Any]] = []
        refs = []
        for value, created_at in values:
            kid = uuid.uuid4()
            text, key_id = self._ring.encrypt_field(value)
            # isoformat keeps the microseconds and the offset: the exact instant round-trips.
            rows.append(
                {
                    "id": str(kid),
                    "api_key": text,
                    "key_id": key_id,
                    "created_at": created_at.isoformat(),
                }
            )
            refs.append(KeyRef(id=kid, masked=mask_secret(value), key_id=key_id))
        return [provider_id, now, json.dumps(rows, separators=(",", ":"))], refs

    def _key_entries(
        self, provider_id: uuid.UUID, added: Sequence[KeyRef], removed: Sequence[KeyRef]
    ) -> list[audit.AuditEntry]:
        out = []
        for ref, action in [(r, "create") for r in added] + [(r, "delete") for r in removed]:
            view = {"id": str(ref.id), "provider_id": str(provider_id), "api_key": ref.masked}
            out.append(
                audit.AuditEntry(
                    "ai_provider_key",
                    ref.id,
                    str(ref.id),
                    action,  # type: ignore[arg-type]
                    audit.diff(None, view, KEY_FIELDS)
                    if action == "create"
                    else audit.diff(view, None, KEY_FIELDS),
                )
            )
        return out

    async def _finish(
        self,
        conn: AsyncConnection[Any],
        owner: OwnerRef,
        entries: Sequence[audit.AuditEntry],
        notify: bool,
    ) -> bool:
        audited = False
        if self._caps.has_audit and entries:
            await audit.write_audit(
                conn,
                entries,
                user_id=self._audit_user_id,
                request_id=uuid.uuid4(),
                owner_fields=owner.audit_fields(),
            )
            audited = True
        if notify:
            await conn.execute("SELECT pg_notify(%s, '')", (NOTIFY_CHANNEL,))
        await self._checkpoint("before_commit", conn)
        return audited

    async def _update(
        self,
        conn: AsyncConnection[Any],
        row: _Row,
        canon: CanonicalProvider,
        desired: DesiredProvider,
        owner: OwnerRef,
        now: datetime,
        action: str | None,
        active: tuple[str, ...],
        policy: DeletePolicy = DeletePolicy.SOFT_DELETE,
    ) -> ProviderResult:
        settings, settings_plain = self._read_settings(row)
        canon = with_stored_external_id(canon, desired, settings.view, self._caps.coder)
        keys = await self._load_keys(conn, row.id, lock=True)
        p = plan_provider(
            row.view(settings),
            keys,
            canon,
            has_icon=self._caps.has_icon,
            primary_digest=self._ring.primary_digest,
        )
        if p.left_alone:
            return self._left_alone(row, p)
        if action == "adopted":
            await self._record_owner(conn, owner, row.id, True, policy)
        changes: dict[str, Any] = dict(p.changes)
        settings_key_id = row.settings_key_id
        if p.settings_changed:
            if canon.settings is not None:
                self._refuse_plaintext(active, f"the settings of AI provider {canon.name!r}")
            changes["settings"], settings_key_id = self._encrypt_settings(canon.settings)
            changes["settings_key_id"] = settings_key_id
        kp = p.keys
        if kp.new_values:
            self._refuse_plaintext(active, f"the API keys of AI provider {canon.name!r}")
        key_ids: dict[uuid.UUID, str | None] = {}  # key rows re-encrypted by this call

        def ref(k: StoredKeyView) -> KeyRef:
            masked = mask_secret(k.value) if k.value is not None else ""
            return KeyRef(id=k.id, masked=masked, key_id=key_ids.get(k.id, k.key_id))

        if not changes and not kp.changed:
            reencrypted = await self._reencrypt_only(
                conn, row, settings_plain if p.reencrypt_settings else None, kp.reencrypt, key_ids
            )
            refs = tuple(ref(k) for k in kp.in_place)
            return ProviderResult(
                provider_id=row.id,
                name=row.name,
                action="adopted" if action == "adopted" else "unchanged",
                changed_fields=(),
                keys=refs,
                keys_added=(),
                keys_removed=(),
                keys_kept=refs,
                keys_reordered=False,
                settings_key_id=(
                    self._ring.primary_digest if p.reencrypt_settings else row.settings_key_id
                ),
                reencrypted=reencrypted,
                notified=False,
                audited=False,
                updated_at=row.updated_at,
                version=await self._version_of(conn, row.id) if reencrypted else row.version,
                differences=p.differences,
                coder_owned=p.coder_owned,
            )

        # A real change: one UPDATE of the provider row (updated_at bumped, like coderd's PATCH,
        # also when only the keys change), then the key rows.
        if p.reencrypt_settings:
            changes["settings"], settings_key_id = self._ring.encrypt_field(settings_plain or "")
            changes["settings_key_id"] = settings_key_id
        assignments: list[sql.Composable] = [
            sql.SQL("{} = {}").format(
                sql.Identifier(col),
                sql.SQL("%s::ai_provider_type") if col == "type" else sql.Placeholder(),
            )
            for col in changes
        ]
        assignments.append(sql.SQL("updated_at = now()"))
        await conn.execute(
            sql.SQL("UPDATE ai_providers SET {} WHERE id = %s").format(
                sql.SQL(", ").join(assignments)
            ),
            [*changes.values(), row.id],
        )
        await self._checkpoint("provider_written", conn)

        removed_refs = [ref(k) for k in kp.removed]
        if kp.removed:
            await conn.execute(
                "DELETE FROM ai_provider_keys WHERE id = ANY(%s)", ([k.id for k in kp.removed],)
            )
        await self._checkpoint("keys_deleted", conn)
        await self._reencrypt_keys(conn, kp.reencrypt, key_ids)
        after = max([now, *(k.created_at for k in keys)])
        new_rows: list[tuple[str, datetime]] = []
        for i, value in enumerate(kp.tail):
            created_at = _tick(after, i + 1)
            existing = kp.by_value.get(value)
            if existing is None:
                new_rows.append((value, created_at))
                continue
            stored_val: str | None = None
            key_id = existing.key_id
            if self._ring.needs_reencrypt(key_id):
                stored_val, key_id = self._ring.encrypt_field(value)
                key_ids[existing.id] = key_id
            await conn.execute(
                "UPDATE ai_provider_keys SET created_at = %s, updated_at = now(), "
                "api_key = coalesce(%s, api_key), api_key_key_id = %s WHERE id = %s",
                (created_at, stored_val, key_id, existing.id),
            )
        added = await self._insert_keys(conn, row.id, new_rows, now)
        await self._checkpoint("keys_written", conn)

        added_by_value = dict(zip((v for v, _ in new_rows), added, strict=True))
        wanted = canon.api_keys
        final = tuple(
            ref(kp.by_value[v]) if v in kp.by_value else added_by_value[v] for v in wanted
        )
        kept = tuple(ref(kp.by_value[v]) for v in wanted if v in kp.by_value)
        provider_diff = audit.diff(
            # Undecryptable settings: the ciphertext stands in (only "changed?" is recorded).
            row.audit_view(self._caps.has_icon, settings_plain or row.settings),
            # Coder-owned columns keep what the row holds (the plan does not write them).
            self._new_view(row.id, replace(canon, **p.coder_owned)),
            self._tracked(),
        )
        extra_fields: dict[str, Any] = {"adopted": True} if action == "adopted" else {}
        if kp.changed:
            extra_fields |= {
                "added": [{"id": str(r.id), "masked": r.masked} for r in added],
                "removed": [{"id": str(r.id), "masked": r.masked} for r in removed_refs],
                "kept": len(kept),
            }
        entries = [
            audit.AuditEntry(
                "ai_provider", row.id, canon.name, "write", provider_diff, extra_fields
            ),
            *self._key_entries(row.id, added, removed_refs),
        ]
        version = await self._version_of(conn, row.id)
        audited = await self._finish(conn, owner, entries, notify=True)
        return ProviderResult(
            provider_id=row.id,
            name=canon.name,
            action=action or "updated",  # type: ignore[arg-type]
            changed_fields=tuple(f for f in self._tracked() if f in provider_diff)
            + (("api_keys",) if kp.changed else ()),
            keys=final,
            keys_added=tuple(added),
            keys_removed=tuple(removed_refs),
            keys_kept=kept,
            keys_reordered=kp.reordered,
            settings_key_id=settings_key_id if canon.settings is not None else None,
            reencrypted=p.reencrypt_settings or bool(kp.reencrypt),
            notified=True,
            audited=audited,
            updated_at=now,  # now() is the transaction's start time, as written by the UPDATE
            version=version,
            differences=p.differences,
            coder_owned=p.coder_owned,
        )

    def _left_alone(self, row: _Row, p: ProviderPlan) -> ProviderResult:
        """Nothing written: the row holds what this operator does not understand."""
        return ProviderResult(
            provider_id=row.id,
            name=row.name,
            action="left_alone",
            changed_fields=(),
            keys=(),
            keys_added=(),
            keys_removed=(),
            keys_kept=(),
            keys_reordered=False,
            settings_key_id=row.settings_key_id,
            reencrypted=False,
            notified=False,
            audited=False,
            updated_at=row.updated_at,
            version=row.version,
            differences=p.differences,
        )

    async def _reencrypt_keys(
        self,
        conn: AsyncConnection[Any],
        keys: Sequence[StoredKeyView],
        key_ids: dict[uuid.UUID, str | None],
    ) -> None:
        for k in keys:
            if k.value is None:  # pragma: no cover - only decrypted rows are kept in place
                continue
            stored, key_id = self._ring.encrypt_field(k.value)
            await conn.execute(
                "UPDATE ai_provider_keys SET api_key = %s, api_key_key_id = %s WHERE id = %s",
                (stored, key_id, k.id),
            )
            key_ids[k.id] = key_id

    async def _reencrypt_only(
        self,
        conn: AsyncConnection[Any],
        row: _Row,
        settings_plain: str | None,
        keys: Sequence[StoredKeyView],
        key_ids: dict[uuid.UUID, str | None],
    ) -> bool:
        """Rewrite ciphertext under the primary key; no updated_at, notify or audit."""
        if settings_plain is None and not keys:
            return False
        if settings_plain is not None:
            stored, key_id = self._ring.encrypt_field(settings_plain)
            await conn.execute(
                "UPDATE ai_providers SET settings = %s, settings_key_id = %s WHERE id = %s",
                (stored, key_id, row.id),
            )
        await self._reencrypt_keys(conn, keys, key_ids)
        await self._checkpoint("before_commit", conn)
        return True

    async def check(
        self, conn: AsyncConnection[Any], desired: DesiredProvider, owner: OwnerRef
    ) -> ProviderCheck | None:
        """How our row differs from ``desired`` (None: no row), key rows included: count,
        order and decrypted values; undecodable settings and undecryptable key rows are
        differences of their own. Writes nothing; never raises for what it cannot read."""
        canon = canonicalize(desired, self._caps.coder)
        async with conn.transaction():
            row = await self._load_owned(conn, owner, lock=False)
            if row is None:
                return None
            settings, _ = self._read_settings(row)
            canon = with_stored_external_id(canon, desired, settings.view, self._caps.coder)
            keys = await self._load_keys(conn, row.id, lock=False)
        view = row.view(settings)
        p = plan_provider(
            view,
            keys,
            canon,
            has_icon=self._caps.has_icon,
            primary_digest=self._ring.primary_digest,
        )
        return ProviderCheck(
            provider_id=row.id,
            differences=p.differences,
            version=row.version,
            # What Coder holds now (also on a soft-deleted row, where the plan would revive).
            coder_owned=coder_owned_values(view, canon.coder_owned, has_icon=self._caps.has_icon),
        )

    async def preview(
        self, conn: AsyncConnection[Any], desired: DesiredProvider, owner: OwnerRef, adopt: bool
    ) -> ProviderPreview:
        """What :meth:`upsert` would do now (see :class:`ProviderPreview`): the same rows
        loaded, the same refusals raised, the same plan, without lock 10, row locks or
        writes. Another writer may change the answer before an upsert runs; it is a preview."""
        canon = canonicalize(desired, self._caps.coder)
        async with conn.transaction():
            load = await self._send_load_for_upsert(conn, owner, canon.name, lock=False)
            row, holder, _ = await self._loaded(load)
            action: str
            if row is not None and not row.deleted:
                if row.name != canon.name and holder is not None:
                    who = held_by_text(holder.holder, owner.instance) if holder.holder else ""
                    raise NameTaken(
                        "AI provider",
                        canon.name,
                        "cannot rename the provider to it"
                        + (f"; it is held by {who}" if who else ""),
                        holder=who,
                    )
                action = "update"
            elif holder is not None:
                _check_holder(holder, canon, owner, adopt)
                row, action = holder, "adopt"
            elif row is not None:
                action = "revive"
            else:
                return ProviderPreview(
                    action="create",
                    name=canon.name,
                    type=canon.type.value,
                    keys_added=tuple(mask_secret(k) for k in canon.api_keys),
                    key_count=len(canon.api_keys),
                )
            settings, _ = self._read_settings(row)
            canon = with_stored_external_id(canon, desired, settings.view, self._caps.coder)
            keys = await self._load_keys(conn, row.id, lock=False)
        p = plan_provider(
            row.view(settings),
            keys,
            canon,
            has_icon=self._caps.has_icon,
            primary_digest=self._ring.primary_digest,
        )
        kp = p.keys
        if p.left_alone:
            action = "left_alone"
        elif action == "update" and not p.changed:
            action = "unchanged"
        columns = tuple(p.changes) + (("settings",) if p.settings_changed else ())
        return ProviderPreview(
            action=action,  # type: ignore[arg-type]
            name=canon.name,
            type=canon.type.value,
            columns=columns,
            keys_added=tuple(mask_secret(v) for v in kp.new_values),
            keys_removed=tuple(mask_secret(k.value) if k.value else "" for k in kp.removed),
            keys_reordered=kp.reordered,
            key_count=len(canon.api_keys),
            differences=p.differences,
        )

    async def row_versions(
        self, conn: AsyncConnection[Any], row_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, RowVersion]:
        """:class:`RowVersion` of the given rows, key rows included (missing rows left out)."""
        cur = await conn.execute(
            f"SELECT p.id, {_VERSION_COLS} FROM ai_providers p "  # noqa: S608
            "WHERE p.id = ANY(%s)",
            (list(row_ids),),
        )
        return {r[0]: _version(r[1], r[2], r[3]) for r in await cur.fetchall()}

    async def hostname_peers(
        self, conn: AsyncConnection[Any], provider_id: uuid.UUID
    ) -> HostnamePeers | None:
        """Up to :data:`HOSTNAME_PEER_NAMES` other live, enabled providers sharing this
        provider's base-URL hostname, any of them (None when the provider is not live and
        enabled, or has no hostname). Hostnames compare
        case-insensitively, as URL hostnames do; one statement, no lock."""
        # Cheap on a big table: this provider's host is computed once (a materialized CTE),
        # a substring test rejects other hosts before the regex runs, and the scan stops at
        # the second match (no order: a host shared by a thousand providers costs two rows).
        cur = await conn.execute(
            "WITH me AS MATERIALIZED (SELECT lower(substring(base_url from %(re)s)) AS host "
            "            FROM ai_providers WHERE id = %(id)s AND enabled AND NOT deleted) "
            "SELECT me.host, p.name FROM me LEFT JOIN LATERAL ("
            "  SELECT name FROM ai_providers p "
            "  WHERE p.id <> %(id)s AND p.enabled AND NOT p.deleted "
            "    AND strpos(lower(p.base_url), me.host) > 0 "
            "    AND lower(substring(p.base_url from %(re)s)) = me.host "
            "  LIMIT %(limit)s) p ON true",
            {"id": provider_id, "re": _HOST_RE, "limit": HOSTNAME_PEER_NAMES},
        )
        rows = await cur.fetchall()
        if not rows or not rows[0][0]:
            return None
        names = tuple(sorted(r[1] for r in rows if r[1]))
        return HostnamePeers(hostname=rows[0][0], names=names, count=len(names))

    # --- delete --------------------------------------------------------------------------------

    async def delete(
        self, conn: AsyncConnection[Any], owner: OwnerRef, policy: DeletePolicy
    ) -> DeleteResult:
        """Soft delete our row (like coderd; its record goes), or release it: the row stays
        live and untouched and its record stays too, marked Orphan, so the same identity
        re-created (a manifest applied again, a cluster rebuilt from Git) takes it back and no
        other object can take it meanwhile. Idempotent; writes nothing encrypted, so it works
        even when the encryption keys are wrong (a finalizer must never hang). The object's
        admission records (``actors``) go either way: it is gone."""
        async with conn.transaction():
            await self._lock_and_now(conn)
            await actors.forget(conn, owner.uid)
            row = await self._load_owned(conn, owner, lock=True)
            if policy is DeletePolicy.RELEASE:
                if row is None:
                    return DeleteResult(None, "absent", notified=False)
                if row.deletion_policy != "Orphan":
                    await self._record_owner(conn, owner, row.id, bool(row.adopted), policy)
                return DeleteResult(row.id, "released", notified=False)
            await conn.execute(
                f"DELETE FROM {OWNERS} WHERE row_table = 'ai_providers' AND {_IDENTITY}",  # noqa: S608
                _identity(owner),
            )
            if row is None or row.deleted:
                return DeleteResult(row.id if row else None, "absent", notified=False)
            await conn.execute(
                "UPDATE ai_providers SET deleted = true, enabled = false, updated_at = now() "
                "WHERE id = %s AND NOT deleted",
                (row.id,),
            )
            await self._checkpoint("provider_written", conn)
            # coderd keeps key rows of a soft-deleted provider (invisible to every reader); we
            # remove them so no API key outlives the object that declared it. The masked value
            # is audited when we can still decrypt it, never required (deletes must not hang).
            cur = await conn.execute(
                "DELETE FROM ai_provider_keys WHERE provider_id = %s "
                "RETURNING id, api_key, api_key_key_id",
                (row.id,),
            )
            removed = [
                KeyRef(id=kid, masked=self._masked_or_blank(value, key_id), key_id=key_id)
                for kid, value, key_id in await cur.fetchall()
            ]
            # coderd's delete audit carries only the old row; the settings ciphertext stands in
            # for the plaintext (only "did it change" is recorded, never the value).
            old_view = row.audit_view(self._caps.has_icon, row.settings)
            entry = audit.AuditEntry(
                "ai_provider", row.id, row.name, "delete",
                audit.diff(old_view, None, self._tracked()),
            )  # fmt: skip
            entries = [entry, *self._key_entries(row.id, [], removed)]
            await self._finish(conn, owner, entries, notify=True)
            return DeleteResult(row.id, "deleted", notified=True, keys_removed=len(removed))

    # --- ownership ---------------------------------------------------------------------------

    async def records(self, conn: AsyncConnection[Any], instance: str) -> list[OwnerRecord]:
        """Every ownership record of operator install ``instance`` (both tables)."""
        cur = await conn.execute(
            "SELECT instance_id, kind, namespace, name, object_uid, row_table, row_id, role, "  # noqa: S608
            f"adopted, deletion_policy FROM {OWNERS} WHERE instance_id = %s "
            "ORDER BY kind, namespace, name, row_table, role",
            (instance,),
        )
        return [
            OwnerRecord(
                owner=OwnerRef(kind=k, namespace=ns, name=n, instance=i, uid=uid),
                row_table=table,
                row_id=row_id,
                role=role,
                adopted=adopted,
                deletion_policy=policy,
            )
            for i, k, ns, n, uid, table, row_id, role, adopted, policy in await cur.fetchall()
        ]

    async def applied(self, conn: AsyncConnection[Any], owner: OwnerRef) -> AppliedInputs | None:
        """What the operator's last write applied to ``owner``'s row (None: no record, or
        one written before migration 4)."""
        cur = await conn.execute(_APPLIED_SELECT, _identity(owner))
        row = await cur.fetchone()
        await conn.rollback()
        if row is None or row[1] is None:
            return None
        return AppliedInputs(str(row[0]), int(row[1]), str(row[2] or ""), str(row[3] or ""))

    async def verification(
        self, conn: AsyncConnection[Any], owner: OwnerRef
    ) -> VerificationRecord | None:
        """The last STS verification recorded for ``owner``'s row (None: none)."""
        cur = await conn.execute(
            f"SELECT verified_inputs, verified_digest, verified_at FROM {OWNERS} "  # noqa: S608
            f"WHERE row_table = 'ai_providers' AND role = 'current' AND {_IDENTITY}",
            _identity(owner),
        )
        row = await cur.fetchone()
        await conn.rollback()
        if row is None or row[0] is None or row[1] is None or row[2] is None:
            return None
        return VerificationRecord(str(row[0]), str(row[1]), row[2])

    async def record_verification(
        self, conn: AsyncConnection[Any], owner: OwnerRef, record: VerificationRecord
    ) -> bool:
        """Record an STS verification with ``owner``'s row; False when it has no record."""
        async with conn.transaction():
            cur = await conn.execute(
                f"UPDATE {OWNERS} SET verified_inputs = %(vi)s, verified_digest = %(vd)s, "  # noqa: S608
                f"verified_at = %(va)s WHERE row_table = 'ai_providers' AND role = 'current' "
                f"AND {_IDENTITY}",
                {**_identity(owner), "vi": record.inputs, "vd": record.digest, "va": record.at},
            )
            return cur.rowcount > 0

    async def recorded_policy(
        self, conn: AsyncConnection[Any], owner: OwnerRef
    ) -> tuple[DeletePolicy, str] | None:
        """The deletion policy recorded with ``owner``'s provider row and the uid of the
        object it was last written for (None: no record)."""
        cur = await conn.execute(
            f"SELECT deletion_policy, object_uid FROM {OWNERS} "  # noqa: S608
            f"WHERE row_table = 'ai_providers' AND {_IDENTITY}",
            _identity(owner),
        )
        row = await cur.fetchone()
        if row is None:
            return None
        policy = DeletePolicy.RELEASE if row[0] == "Orphan" else DeletePolicy.SOFT_DELETE
        return policy, str(row[1])

    def _masked_or_blank(self, value: str, key_id: str | None) -> str:
        try:
            return mask_secret(self._ring.decrypt_field(value, key_id, "ai_provider_keys row"))
        except StoreError:
            return ""
