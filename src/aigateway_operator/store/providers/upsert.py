"""The upsert: the executor of the pure plan (``plan.plan_provider``) under lock 10.

One transaction: lock 10 with the primary-key guard and the claim's candidates in one round
trip (pipeline mode); the claim rule (``claim``) picks the row and refuses what it must; a
new row is created in one statement (row, ownership record, key rows, audit, notify); an
existing one is planned and only what the plan says is written: the provider row once, the
key rows removed, moved, re-encrypted or inserted, then the audit rows and ``pg_notify``. An
equal row gets no write at all, or only a silent re-encryption under the primary key.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql

from aigateway_operator.masking import mask_secret
from aigateway_operator.store import audit, ownership
from aigateway_operator.store.canonical import (
    CanonicalProvider,
    canonicalize,
    encode_settings,
    with_stored_external_id,
)
from aigateway_operator.store.claim import Claim
from aigateway_operator.store.errors import NameTaken, RevivalUnconfirmed
from aigateway_operator.store.models import (
    AppliedInputs,
    DeletePolicy,
    DesiredProvider,
    KeyRef,
    OwnerRef,
    ProviderResult,
)
from aigateway_operator.store.plan import (
    ProviderPlan,
    StoredKeyView,
    coder_owned_values,
)
from aigateway_operator.store.providers.rows import (
    NOTIFY_CHANNEL,
    ProviderRow,
    ProviderTables,
    provider_row_id,
    tick,
)

__all__ = ["ProviderUpsert"]

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
        f"o AS ({ownership.PROVIDER_RECORD_UPSERT})",
        f"k AS ({_KEYS_INSERT})",
    ]
    if audited:
        parts.append(f"a AS ({audit.AUDIT_INSERT_SQL})")
    return "WITH " + ", ".join(parts) + " SELECT pg_notify(%s, '')"


class ProviderUpsert(ProviderTables):
    """:meth:`upsert` and the statements only it makes."""

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
            load = await self._send_load_candidates(conn, owner, canon.name)
            now, active = await self._guarded_now(lock)
            ours, holder, recorded = await self._candidates(load)
            taken, row = self._claim(ours, holder, canon, owner, adopt)
            if taken is Claim.CREATE:
                created = await self._create(conn, canon, desired, owner, now, active, policy)
                await self._record_applied(conn, created, applied, None)
                return created
            if taken is Claim.REVIVE and not revive:
                raise RevivalUnconfirmed(canon.name)
            if row is None:  # unreachable: the claim names a row unless it creates
                raise RuntimeError("provider row vanished while locked")
            if taken is not Claim.ADOPT and (  # an adopted row is recorded once it is written
                not recorded
                or row.deletion_policy != ownership.policy_text(policy)
                or (owner.uid and row.object_uid != owner.uid)
            ):
                await ownership.record_provider(conn, owner, row.id, bool(row.adopted), policy)
            action = {Claim.ADOPT: "adopted", Claim.REVIVE: "revived"}.get(taken)
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
        await ownership.record_applied(conn, result.provider_id, applied)

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
        await ownership.forget_stale_provider(conn, owner, row_id)
        settings, settings_key_id = self._encrypt_settings(canon.settings)
        params: list[Any] = [row_id, canon.type.value, canon.name, canon.display_name,
                             canon.enabled, canon.base_url, settings, settings_key_id]  # fmt: skip
        if self._caps.has_icon:  # leave it out on coderd versions without the column
            params.append(canon.icon)
        params += ownership.provider_record_params(owner, row_id, False, policy)
        key_rows, added = self._key_rows(
            row_id, [(v, tick(now, i)) for i, v in enumerate(canon.api_keys)], now
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

    async def _update(
        self,
        conn: AsyncConnection[Any],
        row: ProviderRow,
        canon: CanonicalProvider,
        desired: DesiredProvider,
        owner: OwnerRef,
        now: datetime,
        action: str | None,
        active: tuple[str, ...],
        policy: DeletePolicy = DeletePolicy.SOFT_DELETE,
    ) -> ProviderResult:
        p, canon, settings_plain, keys = await self._plan_row(conn, row, canon, desired, lock=True)
        if p.left_alone:
            return self._left_alone(row, p)
        if action == "adopted":
            await ownership.record_provider(conn, owner, row.id, True, policy)
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
            created_at = tick(after, i + 1)
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

    def _left_alone(self, row: ProviderRow, p: ProviderPlan) -> ProviderResult:
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
        row: ProviderRow,
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
