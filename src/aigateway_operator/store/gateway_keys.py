"""AI Gateway keys (``ai_gateway_keys``), owned: every row the operator writes is recorded in
``aigateway_operator.owners`` under its owner's identity, and every change acts only on rows
recorded for that identity.

A standalone gateway authenticates with a secret whose SHA-256 coderd looks up (reference
§7). coderd stores only ``secret_prefix`` (first 11 characters) and ``hashed_secret`` (raw
32-byte SHA-256 of the whole secret), so the plaintext exists only in memory and in the
Secret the caller delivers it to.

Our secret format is ``cgw_`` + 39 characters of ``[0-9A-Za-z]`` (43 in total, the length
coderd's own generator uses, so it fits the same columns and checks). The fixed prefix makes
leaked keys greppable by secret scanners; it is a product decision, not a Coder rule.

**Issuing is a journal.** :meth:`GatewayKeyOps.begin` records a *pending* key (its id, hash and
prefix; role ``pending``) and writes nothing in Coder; the caller then delivers the plaintext
(to its Secret) and :meth:`GatewayKeyOps.complete` inserts the row, only when the secret it is
given hashes to the pending record. A crash between the two leaves a record and maybe a
Secret, never a row whose plaintext nobody has; the journal lives in the operator's own
schema, where the users of the cluster cannot write. Rotation keeps the current row as the
``previous`` one (renamed ``<name>-retiring-<n>``: gateways authenticate by hash, not name)
until :meth:`GatewayKeyOps.retire_previous`.

The record statements (journal, promotion, release, lookups) are ``ownership``'s; this module
decides when each is made, and writes Coder's rows.

Ids, names and hashes the caller reads from Kubernetes (a Secret's annotations, an object's
status) are never used to pick a row: the records are. Every write of one owner holds an
advisory lock of its own (two-key form, apart from coderd's single-key locks).

Rows are hard-deleted (as coderd does); coderd closes a gateway's session within about 60 s
when its heartbeat update finds the row gone. No pubsub notification exists for these rows.

The table exists from Coder v2.35 (migration 000514); on v2.34 every call raises
:class:`NotSupportedByCoder`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import AsyncConnection

from aigateway_operator.store import actors, audit, ownership
from aigateway_operator.store.canonical import validate_name
from aigateway_operator.store.errors import (
    GatewayKeyConflict,
    InvalidName,
    NameTaken,
    SecretCollision,
    held_by,
)
from aigateway_operator.store.models import (
    GatewayKeyInfo,
    GatewayKeyOwnership,
    GatewayKeyRelease,
    IssuedGatewayKey,
    OwnerPolicy,
    OwnerRef,
    PendingKey,
)
from aigateway_operator.store.schema import Capabilities

__all__ = [
    "MAX_NAME_LENGTH",
    "RETIRING_ATTEMPTS",
    "GatewayKeyOps",
    "generate_gateway_secret",
    "hash_secret",
    "retiring_name",
]

SECRET_ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
SECRET_PREFIX = "cgw_"  # noqa: S105 - a public marker, not a secret
SECRET_LENGTH = 43
PREFIX_LENGTH = 11
MAX_NAME_LENGTH = 64
RETIRING_ATTEMPTS = 20
"""Retiring names tried for a rotated key (``-retiring-1`` ... ``-retiring-20``)."""

_SECRET_RE = re.compile(r"[0-9A-Za-z_]{43}")
FIELDS = ("id", "name", "secret_prefix", "hashed_secret")
KIND = "AI Gateway key"
TABLE = "ai_gateway_keys"
_LOCK_CLASS = 0x6169_6777
"""First key of the two-key advisory locks of gateway-key owners ("aigw")."""


def generate_gateway_secret() -> str:
    """``cgw_`` + 39 uniformly random ``[0-9A-Za-z]`` characters from :mod:`secrets`."""
    body = "".join(secrets.choice(SECRET_ALPHABET) for _ in range(SECRET_LENGTH - 4))
    return SECRET_PREFIX + body


def hash_secret(secret: str) -> bytes:
    """What coderd stores and looks up: raw SHA-256 of the whole secret (no salt, no hex)."""
    return hashlib.sha256(secret.encode("utf-8")).digest()


def retiring_name(name: str, n: int) -> str:
    """``<name>-retiring-<n>``, shortening ``name`` so the result fits Coder's 64-char limit.

    Used during rotation: the old key is renamed so the new one can take the plain name while
    gateways still holding the old secret keep working until they pick up the new one.
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    suffix = f"-retiring-{n}"
    base = name[: MAX_NAME_LENGTH - len(suffix)].rstrip("-")
    return f"{base}{suffix}"


def is_own_name(row_name: str, key_name: str) -> bool:
    """Whether ``row_name`` is ``key_name`` or one of its retiring names."""
    if row_name == key_name:
        return True
    match = re.fullmatch(r".*-retiring-([1-9][0-9]{0,5})", row_name)
    return match is not None and retiring_name(key_name, int(match.group(1))) == row_name


def _check_name(name: str) -> None:
    validate_name(name, KIND, MAX_NAME_LENGTH)


def _check_secret(secret: str) -> None:
    if not _SECRET_RE.fullmatch(secret):
        raise GatewayKeyConflict("a gateway secret must be 43 characters of [0-9A-Za-z_]")


def describe_holder(owner: OwnerRef | None, record: tuple[Any, ...] | None) -> str:
    """Who holds a row, for messages: ``AIGatewayCoderdKey ns/name`` (an object of this
    operator instance), ``operator instance 'x'`` (another install), or Coder itself."""
    if record is None:
        return "a key made in Coder, not by this operator"
    instance, kind, namespace, name = record
    if owner is None:
        return f"{kind} {namespace}/{name}"
    return held_by((instance, kind, namespace, name), owner.instance)


class GatewayKeyOps:
    """Gateway key operations; each public method is one short transaction."""

    def __init__(self, caps: Capabilities, audit_user_id: uuid.UUID) -> None:
        self._caps = caps
        self._audit_user_id = audit_user_id
        beat, k_beat = (
            ("last_heartbeat_at", "k.last_heartbeat_at")
            if caps.has_heartbeat
            else ("NULL::timestamptz", "NULL::timestamptz")
        )
        self._cols = f"id, name, secret_prefix, created_at, {beat}"
        self._k_cols = f"k.id, k.name, k.secret_prefix, k.created_at, {k_beat}"

    # --- helpers -------------------------------------------------------------------------

    async def _audit(
        self, conn: AsyncConnection[Any], owner: OwnerRef, entries: Sequence[audit.AuditEntry]
    ) -> None:
        await audit.write_audit(
            conn,
            entries,
            enabled=self._caps.has_audit,
            user_id=self._audit_user_id,
            owner_fields=owner.audit_fields(),
        )

    @staticmethod
    def _view(key_id: uuid.UUID, name: str, prefix: str, hashed: bytes) -> dict[str, Any]:
        return {
            "id": str(key_id),
            "name": name,
            "secret_prefix": prefix,
            "hashed_secret": audit.secret(hashed),
        }

    def _info(self, row: Sequence[Any]) -> GatewayKeyInfo:
        return GatewayKeyInfo(
            id=row[0],
            name=row[1],
            secret_prefix=row[2],
            created_at=row[3],
            last_heartbeat_at=row[4] if self._caps.has_heartbeat else None,
        )

    @staticmethod
    async def _lock(conn: AsyncConnection[Any], owner: OwnerRef) -> None:
        """Serialise every write of one owner (two replicas, a retried call)."""
        await conn.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
            (_LOCK_CLASS, "\x1f".join(owner.key)),
        )

    async def _name_holder(
        self, conn: AsyncConnection[Any], name: str, *, lock: bool
    ) -> uuid.UUID | None:
        cur = await conn.execute(
            "SELECT id FROM ai_gateway_keys WHERE lower(name) = lower(%s)"  # noqa: S608
            + (" FOR UPDATE" if lock else ""),
            (name,),
        )
        row = await cur.fetchone()
        return row[0] if row else None

    async def _refuse_name(
        self, conn: AsyncConnection[Any], owner: OwnerRef, name: str, holder: uuid.UUID
    ) -> NameTaken:
        record = await ownership.key_holder(conn, holder)
        return NameTaken(KIND, name, holder=describe_holder(owner, record))

    async def _delete_row(
        self, conn: AsyncConnection[Any], key_id: uuid.UUID
    ) -> tuple[GatewayKeyInfo, audit.AuditEntry] | None:
        cur = await conn.execute(
            f"DELETE FROM ai_gateway_keys WHERE id = %s RETURNING {self._cols}, "  # noqa: S608
            "hashed_secret",
            (key_id,),
        )
        row = await cur.fetchone()
        if row is None:
            return None
        entry = audit.AuditEntry(
            "ai_gateway_key", key_id, row[1], "delete",
            audit.diff(self._view(key_id, row[1], row[2], bytes(row[5])), None, FIELDS),
        )  # fmt: skip
        return self._info(row), entry

    # --- reads ---------------------------------------------------------------------------

    async def name_holder(
        self, conn: AsyncConnection[Any], owner: OwnerRef, name: str
    ) -> str | None:
        """Who holds the row named ``name`` if it is not recorded for ``owner`` (None: free,
        or ``owner``'s). The same rule as :meth:`begin` and :meth:`complete`, read-only."""
        self._caps.require_gateway_keys()
        holder = await self._name_holder(conn, name, lock=False)
        if holder is None:
            await conn.rollback()
            return None
        record = await ownership.key_holder(conn, holder)
        await conn.rollback()
        if record is not None and tuple(record) == owner.key:
            return None
        return describe_holder(owner, record)

    async def state(self, conn: AsyncConnection[Any], owner: OwnerRef) -> GatewayKeyOwnership:
        self._caps.require_gateway_keys()
        rows = await ownership.key_state_rows(conn, owner, self._k_cols)
        await conn.rollback()
        fields: dict[str, Any] = {}
        policies = {r[5] for r in rows}
        if len(policies) == 1:
            fields["deletion_policy"] = policies.pop()
        uids = {r[14] for r in rows}
        if len(uids) == 1:
            fields["object_uid"] = uids.pop()
        if rows:
            fields["observed_at"] = rows[0][16]
        for r in rows:
            role, row_id = r[0], r[1]
            live = self._info(r[8:13]) if r[8] is not None else None
            if role == "pending":
                fields["pending"] = PendingKey(
                    id=row_id,
                    secret_prefix=r[3] or "",
                    rotating=bool(r[4]),
                    created_at=r[6],
                    secret_hash=bytes(r[2]),
                    rotation_generation=r[15],
                )
            elif role == "current":
                fields["current"] = live
                fields["current_recorded_id"] = row_id
                fields["current_rotation_generation"] = r[15]
                fields["current_hash"] = bytes(r[13]) if r[13] is not None else None
            elif role == "previous":
                fields["previous"] = live
                fields["previous_recorded_id"] = row_id
                fields["previous_since"] = r[7]
        return GatewayKeyOwnership(**fields)

    async def matches(self, conn: AsyncConnection[Any], owner: OwnerRef, secret: str) -> bool:
        self._caps.require_gateway_keys()
        stored = await ownership.current_key_hash(conn, owner)
        await conn.rollback()
        return stored is not None and hmac.compare_digest(stored, hash_secret(secret))

    # --- the journal -----------------------------------------------------------------------

    async def begin(
        self,
        conn: AsyncConnection[Any],
        owner: OwnerRef,
        key_id: uuid.UUID,
        name: str,
        secret: str,
        *,
        rotating: bool,
        deletion_policy: OwnerPolicy,
        rotation_generation: int | None = None,
    ) -> PendingKey:
        _check_name(name)
        _check_secret(secret)
        self._caps.require_gateway_keys()
        hashed, prefix = hash_secret(secret), secret[:PREFIX_LENGTH]
        async with conn.transaction():
            await self._lock(conn, owner)
            recs = await ownership.key_records(conn, owner)
            pending = recs.by_role.get("pending")
            if pending is not None and pending[1] == key_id:
                if pending[2] is not None and hmac.compare_digest(bytes(pending[2]), hashed):
                    return await ownership.pending(conn, key_id)  # a replayed call
                raise GatewayKeyConflict(f"pending {KIND} {key_id} has another secret")
            holder = await self._name_holder(conn, name, lock=False)
            if holder is not None and holder not in (recs.id("current"), recs.id("previous")):
                raise await self._refuse_name(conn, owner, name, holder)
            if await ownership.key_id_in_use(conn, key_id):
                raise GatewayKeyConflict(f"{KIND} id {key_id} is already in use; draw another")
            await ownership.forget_pending(conn, owner)
            await ownership.journal_pending(
                conn,
                owner,
                key_id,
                policy=deletion_policy,
                secret_hash=hashed,
                prefix=prefix,
                rotating=rotating,
                rotation_generation=rotation_generation,
            )
            return await ownership.pending(conn, key_id)

    async def complete(
        self,
        conn: AsyncConnection[Any],
        owner: OwnerRef,
        key_id: uuid.UUID,
        name: str,
        secret: str,
    ) -> IssuedGatewayKey:
        _check_name(name)
        _check_secret(secret)
        self._caps.require_gateway_keys()
        hashed, prefix = hash_secret(secret), secret[:PREFIX_LENGTH]
        async with conn.transaction():
            await self._lock(conn, owner)
            recs = await ownership.key_records(conn, owner)
            pending = recs.by_role.get("pending")
            if pending is None or pending[1] != key_id:
                replay = await self._replay(conn, recs, key_id, name, hashed)
                if replay is not None:
                    return IssuedGatewayKey(key_id, name, secret, prefix, replay, created=False)
                raise GatewayKeyConflict(
                    f"{KIND} {key_id} is not the pending key of {owner.describe()}; "
                    "nothing was written"
                )
            if pending[2] is None or not hmac.compare_digest(bytes(pending[2]), hashed):
                raise GatewayKeyConflict(
                    f"the secret given for pending {KIND} {key_id} is not the one journaled; "
                    "nothing was written"
                )
            current_id, previous_id = recs.id("current"), recs.id("previous")
            holder = await self._name_holder(conn, name, lock=True)
            if holder is not None and holder not in (current_id, previous_id):
                raise await self._refuse_name(conn, owner, name, holder)
            entries: list[audit.AuditEntry] = []
            current_row = None
            if current_id is not None:
                cur = await conn.execute(
                    "SELECT name, secret_prefix, hashed_secret FROM ai_gateway_keys "
                    "WHERE id = %s FOR UPDATE",
                    (current_id,),
                )
                current_row = await cur.fetchone()
            if bool(pending[3]) and current_row is not None and current_id is not None:
                # Rotation: the current key stays (renamed) as the previous one.
                if previous_id is not None:
                    deleted = await self._delete_row(conn, previous_id)
                    if deleted is not None:
                        entries.append(deleted[1])
                    await ownership.forget_key(conn, previous_id)
                entries.append(await self._rename_retiring(conn, current_id, current_row, name))
                await ownership.mark_key_previous(conn, current_id)
            else:
                if current_id is not None:
                    deleted = await self._delete_row(conn, current_id)
                    if deleted is not None:
                        entries.append(deleted[1])
                    await ownership.forget_key(conn, current_id)
                if previous_id is not None and holder == previous_id:
                    # Defensive: a previous key under the plain name gives it up.
                    deleted = await self._delete_row(conn, previous_id)
                    if deleted is not None:
                        entries.append(deleted[1])
                    await ownership.forget_key(conn, previous_id)
            created_at = await self._insert(conn, owner, key_id, name, prefix, hashed)
            await ownership.mark_key_current(conn, key_id)
            created = audit.AuditEntry(
                "ai_gateway_key", key_id, name, "create",
                audit.diff(None, self._view(key_id, name, prefix, hashed), FIELDS),
            )  # fmt: skip
            entries.append(created)
            await self._audit(conn, owner, entries)
            return IssuedGatewayKey(key_id, name, secret, prefix, created_at, created=True)

    async def _replay(
        self,
        conn: AsyncConnection[Any],
        recs: ownership.KeyRecords,
        key_id: uuid.UUID,
        name: str,
        hashed: bytes,
    ) -> datetime | None:
        """``created_at`` when ``key_id`` is already this owner's current key with this
        secret and name (the same call again after a crash past its commit)."""
        if recs.id("current") != key_id:
            return None
        cur = await conn.execute(
            "SELECT name, hashed_secret, created_at FROM ai_gateway_keys WHERE id = %s",
            (key_id,),
        )
        row = await cur.fetchone()
        if row is None or row[0] != name or not hmac.compare_digest(bytes(row[1]), hashed):
            return None
        created: datetime = row[2]
        return created

    async def _insert(
        self,
        conn: AsyncConnection[Any],
        owner: OwnerRef,
        key_id: uuid.UUID,
        name: str,
        prefix: str,
        hashed: bytes,
    ) -> datetime:
        try:
            async with conn.transaction():
                cur = await conn.execute(
                    "INSERT INTO ai_gateway_keys "
                    "(id, created_at, name, secret_prefix, hashed_secret) "
                    "VALUES (%s, now(), %s, %s, %s) RETURNING created_at",
                    (key_id, name, prefix, hashed),
                )
                row = await cur.fetchone()
        except psycopg.errors.UniqueViolation as exc:
            constraint = exc.diag.constraint_name
            if constraint == "ai_gateway_keys_name_idx":
                raise NameTaken(KIND, name, "it was taken concurrently; retry") from None
            if constraint == "ai_gateway_keys_pkey":
                raise GatewayKeyConflict(f"{KIND} id {key_id} is already in use") from None
            if constraint in (
                "ai_gateway_keys_secret_prefix_idx",
                "ai_gateway_keys_hashed_secret_idx",
            ):
                raise SecretCollision(
                    f"the pending {KIND} of {owner.describe()} collides with an existing "
                    "key's prefix or hash; discard it and issue another"
                ) from None
            raise
        except psycopg.errors.CheckViolation:
            raise InvalidName(KIND, name, "rejected by Coder's CHECK") from None
        created: datetime = row[0] if row else datetime.now(UTC)
        return created

    async def _rename_retiring(
        self,
        conn: AsyncConnection[Any],
        key_id: uuid.UUID,
        row: tuple[Any, ...],
        name: str,
    ) -> audit.AuditEntry:
        """Free the plain name: ``<name>-retiring-<n>``, the first ``n`` not taken."""
        old_name, prefix, hashed = row[0], row[1], bytes(row[2])
        for n in range(1, RETIRING_ATTEMPTS + 1):
            new_name = retiring_name(name, n)
            if await self._name_holder(conn, new_name, lock=False) is not None:
                continue
            try:
                async with conn.transaction():
                    await conn.execute(
                        "UPDATE ai_gateway_keys SET name = %s WHERE id = %s", (new_name, key_id)
                    )
            except psycopg.errors.UniqueViolation:
                continue
            return audit.AuditEntry(
                "ai_gateway_key", key_id, new_name, "write",
                audit.diff(
                    self._view(key_id, old_name, prefix, hashed),
                    self._view(key_id, new_name, prefix, hashed),
                    FIELDS,
                ),
            )  # fmt: skip
        raise InvalidName(KIND, name, "no free retiring name for the previous key")

    async def discard_pending(self, conn: AsyncConnection[Any], owner: OwnerRef) -> bool:
        self._caps.require_gateway_keys()
        async with conn.transaction():
            await self._lock(conn, owner)
            return await ownership.forget_pending(conn, owner)

    # --- retiring and releasing --------------------------------------------------------------

    async def retire_previous(
        self,
        conn: AsyncConnection[Any],
        owner: OwnerRef,
        unless_used_within: timedelta | None = None,
    ) -> GatewayKeyInfo | None:
        """Delete the owner's previous row and record; the deleted row, or None.

        With ``unless_used_within``, nothing is deleted (None) when the row's
        ``last_heartbeat_at`` is that recent on the database's clock: the decision the caller
        made from an earlier read is checked again under the row's lock, so a gateway that
        heartbeats meanwhile keeps its key.
        """
        self._caps.require_gateway_keys()
        async with conn.transaction():
            await self._lock(conn, owner)
            previous_id = (await ownership.key_records(conn, owner)).id("previous")
            if previous_id is None:
                return None
            if unless_used_within is not None and self._caps.has_heartbeat:
                cur = await conn.execute(
                    "SELECT last_heartbeat_at > now() - %s FROM ai_gateway_keys "
                    "WHERE id = %s FOR UPDATE",
                    (unless_used_within, previous_id),
                )
                row = await cur.fetchone()
                if row is not None and row[0]:
                    return None
            deleted = await self._delete_row(conn, previous_id)
            await ownership.forget_key(conn, previous_id)
            if deleted is None:
                return None
            await self._audit(conn, owner, [deleted[1]])
            return deleted[0]

    async def release(
        self, conn: AsyncConnection[Any], owner: OwnerRef, policy: OwnerPolicy
    ) -> GatewayKeyRelease:
        self._caps.require_gateway_keys()
        async with conn.transaction():
            await self._lock(conn, owner)
            await actors.forget(conn, owner.uid)  # the object is gone: its admission records too
            recs = await ownership.key_records(conn, owner)
            rows = [i for i in (recs.id("current"), recs.id("previous")) if i is not None]
            deleted: list[GatewayKeyInfo] = []
            entries: list[audit.AuditEntry] = []
            if policy == "Delete":
                for row_id in rows:
                    gone = await self._delete_row(conn, row_id)
                    if gone is not None:
                        deleted.append(gone[0])
                        entries.append(gone[1])
            forgotten = await ownership.forget_keys(conn, owner)
            await self._audit(conn, owner, entries)
            return GatewayKeyRelease(
                deleted=tuple(deleted),
                released=tuple(rows) if policy == "Orphan" else (),
                records=forgotten,
            )

    async def record_deletion_policy(
        self, conn: AsyncConnection[Any], owner: OwnerRef, policy: OwnerPolicy
    ) -> int:
        """Set the policy (and, when ``owner.uid`` is given, the object uid) on every record."""
        async with conn.transaction():
            return await ownership.record_key_policy(conn, owner, policy)

    async def collect(self, conn: AsyncConnection[Any], owner: OwnerRef) -> GatewayKeyRelease:
        """The object is gone without our finalizer: release per the recorded policy (Orphan
        only when every record says so). With ``owner.uid`` set, records written for another
        object of the same identity (re-created since) are that object's and stay."""
        self._caps.require_gateway_keys()
        rows = await ownership.key_policies(conn, owner)
        await conn.rollback()
        if not rows:
            return GatewayKeyRelease(deleted=(), released=(), records=0)
        if owner.uid and any(uid and uid != owner.uid for _, uid in rows):
            return GatewayKeyRelease(deleted=(), released=(), records=0)
        policy: OwnerPolicy = "Orphan" if all(p == "Orphan" for p, _ in rows) else "Delete"
        return await self.release(conn, owner, policy)
