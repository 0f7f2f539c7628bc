"""The provider tables as the other provider modules read them: the SQL shared by every
provider statement (lock 10 with the primary-key guard, the candidate loaders, the version
token) and the mapping of a loaded row and its key rows (decrypted, decoded as coderd
decodes them) onto the plan's views and the audit's shapes.

:class:`ProviderTables` holds what every provider operation is bound to (key ring, schema
capabilities, the guard, the audit actor, the fault-injection checkpoint); ``reads``,
``upsert`` and ``delete`` build on it. Nothing here writes.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from psycopg import AsyncConnection, AsyncCursor

from aigateway_operator.masking import mask_secret
from aigateway_operator.store import audit, ownership
from aigateway_operator.store.canonical import CanonicalProvider, with_stored_external_id
from aigateway_operator.store.cipher import DecryptError, KeyRing
from aigateway_operator.store.claim import Claim, NameHolder, claim
from aigateway_operator.store.dbcrypt import PrimaryKeyGuard, plaintext_refused
from aigateway_operator.store.errors import StoreError
from aigateway_operator.store.models import (
    AppliedInputs,
    DesiredProvider,
    KeyRef,
    OwnerRef,
    RowVersion,
)
from aigateway_operator.store.plan import (
    ProviderPlan,
    StoredKeyView,
    StoredRowView,
    plan_provider,
)
from aigateway_operator.store.schema import Capabilities
from aigateway_operator.store.settings import DecodedSettings, SettingsStatus, decode

__all__ = [
    "AI_PROVIDERS_LOCK_ID",
    "NOTIFY_CHANNEL",
    "OWNER_NAMESPACE",
    "VERSION_COLS",
    "Checkpoint",
    "ProviderRow",
    "ProviderTables",
    "provider_row_id",
    "row_version",
    "tick",
]

AI_PROVIDERS_LOCK_ID = 10
"""coderd's ``LockIDAIProvidersEnvSeed``; its DRPC provider reader takes it too."""

NOTIFY_CHANNEL = "ai_providers_changed"

OWNER_NAMESPACE = uuid.UUID("3b0c7f0e-7a51-5d1b-9a57-6169677761f0")
"""Namespace of the deterministic row ids (a fixed random-looking constant; never change it)."""

PROVIDER_FIELDS = ("id", "type", "name", "display_name", "icon", "enabled", "deleted", "base_url")
KEY_FIELDS = ("id", "provider_id", "api_key")

Checkpoint = Callable[[str, AsyncConnection[Any]], Awaitable[None]]

#: The version of provider row ``p``: ``updated_at``, ``deleted`` and the text the token is
#: digested from: the ``xmin`` of the row and of each key row (with its id). Any INSERT,
#: UPDATE or DELETE changes some ``xmin`` (a row lock does not: it sets ``xmax``), and
#: freezing keeps the value readable (Postgres 9.4+). Evaluated inside a write transaction
#: it sees that transaction's own rows. No key value goes into it.
VERSION_COLS = (
    "p.updated_at, p.deleted, p.xmin::text || '/' || coalesce((SELECT string_agg("
    "k.id::text || ':' || k.xmin::text, ',' ORDER BY k.id) FROM ai_provider_keys k "
    "WHERE k.provider_id = p.id), '')"
)
_VERSION_SQL = f"SELECT {VERSION_COLS} FROM ai_providers p WHERE p.id = %s"  # noqa: S608


def row_version(updated_at: datetime, deleted: bool, text: str) -> RowVersion:
    token = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
    return RowVersion(updated_at=updated_at, deleted=deleted, token=token)


def tick(base: datetime, n: int) -> datetime:
    """``base`` plus ``n`` microseconds (Postgres timestamps have microsecond resolution)."""
    return base + timedelta(microseconds=n)


def provider_row_id(owner: OwnerRef) -> uuid.UUID:
    """The id of the provider row created for ``owner``'s identity (stable across retries and
    across a cluster rebuilt from the same Git)."""
    return uuid.uuid5(OWNER_NAMESPACE, "ai_provider:" + "/".join(owner.key))


@dataclass
class ProviderRow:
    """One loaded ``ai_providers`` row with its version and its ownership record (if any)."""

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

    def name_holder(self) -> NameHolder:
        """The row as the claim rule sees a live row holding the wanted name."""
        return NameHolder(self.id, self.type, self.holder)

    @property
    def version(self) -> RowVersion:
        return row_version(self.updated_at, self.version_deleted, self.version_text)

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


class PlannedRow(NamedTuple):
    """A stored row as the upsert and its preview plan it (:meth:`ProviderTables._plan_row`)."""

    plan: ProviderPlan
    canon: CanonicalProvider
    """The desired provider with the stored external id kept."""
    settings_plain: str | None
    """The row's decrypted settings text (None: NULL, or it does not decrypt)."""
    keys: list[StoredKeyView]
    """The row's key rows, in coderd's read order."""


class ProviderTables:
    """What every provider operation is bound to, and the statements they share."""

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
        self._select_cols = (
            "p.id, p.type::text, p.name, p.display_name, p.enabled, p.deleted, p.base_url, "
            "p.settings, p.settings_key_id, p.created_at, p.updated_at, "
            + ("p.icon" if caps.has_icon else "NULL::text")
            + ", "
            + VERSION_COLS.removeprefix("p.updated_at, ")
        )

    # --- lock 10 ---------------------------------------------------------------------------

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

    # --- loading ---------------------------------------------------------------------------

    async def _load_owned(
        self, conn: AsyncConnection[Any], owner: OwnerRef, lock: bool
    ) -> ProviderRow | None:
        """Our row: the one recorded for ``owner``'s identity (nothing else is ours)."""
        query = (
            f"SELECT {self._select_cols}, {ownership.PROVIDER_RECORD_COLS} "  # noqa: S608
            f"FROM ai_providers p JOIN {ownership.PROVIDER_RECORD_JOIN} "
            f"WHERE p.id = {ownership.RECORDED_PROVIDER_ID}" + (" FOR UPDATE OF p" if lock else "")
        )
        cur = await conn.execute(query, ownership.identity(owner))
        row = await cur.fetchone()
        return ProviderRow(*row) if row else None

    async def _send_load_candidates(
        self, conn: AsyncConnection[Any], owner: OwnerRef, name: str, *, lock: bool = True
    ) -> AsyncCursor[Any]:
        """All candidate rows of a claim (``claim``), locked, in one statement; read them with
        :meth:`_candidates`.

        Candidates: the row recorded for ``owner``'s identity; the soft-deleted row with the
        id this operator derives for that identity (:func:`provider_row_id`) when its record
        went with the delete (Delete policy, collection), so a re-applied object revives it
        instead of failing on its primary key; and another live row holding ``name`` (with
        whoever its record names). Coder makes random (v4) ids, so only this operator ever
        wrote a row with that derived (v5) id, and only for this identity.
        """
        recorded = ownership.RECORDED_PROVIDER_ID
        query = (
            f"SELECT {self._select_cols}, {ownership.PROVIDER_RECORD_COLS}, "  # noqa: S608
            f"  CASE WHEN p.id IS NOT DISTINCT FROM {recorded} THEN 2 "
            "        WHEN p.id = %(own_id)s AND p.deleted THEN 1 ELSE 0 END "
            f"FROM ai_providers p LEFT JOIN {ownership.PROVIDER_RECORD_JOIN} "
            f"WHERE p.id = {recorded} OR (p.id = %(own_id)s AND p.deleted) "
            "   OR (p.name = %(name)s AND NOT p.deleted) " + ("FOR UPDATE OF p" if lock else "")
        )
        params = {**ownership.identity(owner), "name": name, "own_id": provider_row_id(owner)}
        return await conn.execute(query, params)

    @staticmethod
    async def _candidates(
        cur: AsyncCursor[Any],
    ) -> tuple[ProviderRow | None, ProviderRow | None, bool]:
        """(our row, another live row holding the name, whether our row is recorded): the
        recorded row wins over the derived-id one."""
        ours: ProviderRow | None = None
        rank = 0
        holder: ProviderRow | None = None
        for record in await cur.fetchall():
            row = ProviderRow(*record[:-1])
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

    def _claim(
        self,
        ours: ProviderRow | None,
        holder: ProviderRow | None,
        canon: CanonicalProvider,
        owner: OwnerRef,
        adopt: bool,
    ) -> tuple[Claim, ProviderRow | None]:
        """The claim rule (:func:`store.claim.claim`) on the loaded candidates, and the row it
        names (None: a create). The upsert and its preview both decide through this."""
        taken = claim(
            ours_deleted=None if ours is None else ours.deleted,
            holder=holder.name_holder() if holder is not None else None,
            name=canon.name,
            type_=canon.type,
            owner=owner,
            adopt=adopt,
        )
        return taken, (holder if taken is Claim.ADOPT else ours)

    async def _plan_row(
        self,
        conn: AsyncConnection[Any],
        row: ProviderRow,
        canon: CanonicalProvider,
        desired: DesiredProvider,
        *,
        lock: bool,
    ) -> PlannedRow:
        """``canon`` planned against ``row`` (its settings decoded, its key rows loaded: locked
        for the upsert, not for a preview)."""
        settings, settings_plain = self._read_settings(row)
        canon = with_stored_external_id(canon, desired, settings.view, self._caps.coder)
        keys = await self._load_keys(conn, row.id, lock=lock)
        plan = plan_provider(
            row.view(settings),
            keys,
            canon,
            has_icon=self._caps.has_icon,
            primary_digest=self._ring.primary_digest,
        )
        return PlannedRow(plan, canon, settings_plain, keys)

    def _read_settings(self, row: ProviderRow) -> tuple[DecodedSettings, str | None]:
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

    async def _version_of(self, conn: AsyncConnection[Any], row_id: uuid.UUID) -> RowVersion:
        """The row's version as this transaction left it (its own writes included)."""
        cur = await conn.execute(_VERSION_SQL, (row_id,))
        got = await cur.fetchone()
        if got is None:  # pragma: no cover - the row is locked or was just inserted
            raise RuntimeError("provider row vanished while locked")
        return row_version(got[0], got[1], got[2])

    # --- audit shapes and the end of a write -------------------------------------------------

    def _tracked(self) -> tuple[str, ...]:
        fields = (
            PROVIDER_FIELDS
            if self._caps.has_icon
            else tuple(f for f in PROVIDER_FIELDS if f != "icon")
        )
        return (*fields, "settings")

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
        """Audit rows, then ``pg_notify``, in the write's transaction; whether it audited."""
        audited = await audit.write_audit(
            conn,
            entries,
            enabled=self._caps.has_audit,
            user_id=self._audit_user_id,
            owner_fields=owner.audit_fields(),
        )
        if notify:
            await conn.execute("SELECT pg_notify(%s, '')", (NOTIFY_CHANNEL,))
        await self._checkpoint("before_commit", conn)
        return audited

    def _masked_or_blank(self, value: str, key_id: str | None) -> str:
        try:
            return mask_secret(self._ring.decrypt_field(value, key_id, "ai_provider_keys row"))
        except StoreError:
            return ""
