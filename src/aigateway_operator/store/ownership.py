"""Every statement on the operator's ownership records (``aigateway_operator.owners``), for
both tables: which identity owns which Coder row, and what the operator last did to it.

A record is keyed by ``(row_table, row_id)`` and names its owner's identity ``(instance,
kind, namespace, name)`` (:attr:`OwnerRef.key`); every write of the store acts only on rows
recorded for the caller's identity, never on a row found by name or id alone. Here, and only
here, are those records claimed, adopted, released, looked up and updated:

* providers (``row_table = 'ai_providers'``, role ``current``): the record written with the
  row (:data:`PROVIDER_RECORD_UPSERT`, also a part of the create statement), what the last
  write applied (``applied_*``), the last STS verification (``verified_*``), the deletion
  policy read by collection, and the fragments the provider loaders join with
  (:data:`RECORDED_PROVIDER_ID`, :data:`PROVIDER_RECORD_COLS`);
* gateway keys (``row_table = 'ai_gateway_keys'``, roles ``pending``/``current``/
  ``previous``): the issuing journal (a pending record carries the secret's hash, prefix and
  ``rotation_generation``), its promotion to current and previous, release and collection;
* every install's records (:func:`records`, for the garbage collector) and the test the
  admission records' pruning uses (:func:`uid_has_record`).

The table's shape (DDL, migrations) is ``operator_schema``'s. Each function runs inside the
caller's transaction; none commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection

from aigateway_operator.store.models import (
    AppliedInputs,
    DeletePolicy,
    OwnerPolicy,
    OwnerRecord,
    OwnerRef,
    PendingKey,
    VerificationRecord,
)
from aigateway_operator.store.operator_schema import OWNERS

__all__ = [
    "PROVIDER_RECORD_COLS",
    "PROVIDER_RECORD_JOIN",
    "PROVIDER_RECORD_UPSERT",
    "RECORDED_PROVIDER_ID",
    "KeyRecords",
    "applied",
    "current_key_hash",
    "forget_key",
    "forget_keys",
    "forget_pending",
    "forget_provider",
    "forget_stale_provider",
    "identity",
    "journal_pending",
    "key_holder",
    "key_id_in_use",
    "key_policies",
    "key_records",
    "key_state_rows",
    "mark_key_current",
    "mark_key_previous",
    "pending",
    "policy_text",
    "provider_record_params",
    "record_applied",
    "record_key_policy",
    "record_provider",
    "record_verification",
    "recorded_policy",
    "records",
    "uid_has_record",
    "verification",
]

# --- providers --------------------------------------------------------------------------------

PROVIDER_RECORD_UPSERT = (
    f"INSERT INTO {OWNERS} (row_table, row_id, instance_id, kind, namespace, name, "  # noqa: S608
    "adopted, deletion_policy, object_uid) "
    "VALUES ('ai_providers', %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (row_table, row_id) DO UPDATE SET instance_id = EXCLUDED.instance_id, "
    "kind = EXCLUDED.kind, namespace = EXCLUDED.namespace, name = EXCLUDED.name, "
    "adopted = EXCLUDED.adopted, deletion_policy = EXCLUDED.deletion_policy, "
    "object_uid = EXCLUDED.object_uid, updated_at = now()"
)
"""Claim (or adopt) a provider row for an owner: parameters :func:`provider_record_params`."""

#: The owner's identity, as the WHERE of a query on ``owners`` (parameters i, k, ns, n:
#: :func:`identity`).
_IDENTITY = "instance_id = %(i)s AND kind = %(k)s AND namespace = %(ns)s AND name = %(n)s"
_PROVIDER = "row_table = 'ai_providers'"
_CURRENT_PROVIDER = f"{_PROVIDER} AND role = 'current' AND {_IDENTITY}"

RECORDED_PROVIDER_ID = f"(SELECT row_id FROM {OWNERS} WHERE {_CURRENT_PROVIDER})"  # noqa: S608
"""The id of the provider row recorded for the identity (parameters of :func:`identity`)."""

PROVIDER_RECORD_JOIN = f"{OWNERS} o ON o.{_PROVIDER} AND o.row_id = p.id"
"""The record ``o`` of provider row ``p`` (after ``JOIN`` or ``LEFT JOIN``)."""

PROVIDER_RECORD_COLS = (
    "o.instance_id, o.kind, o.namespace, o.name, coalesce(o.adopted, false), "
    "o.deletion_policy, coalesce(o.object_uid, ''), "
    "o.applied_generation, o.applied_spec_digest, o.applied_secrets_revision"
)
"""The columns of record ``o`` a provider loader reads with its row."""

_APPLIED_UPDATE = (
    f"UPDATE {OWNERS} SET applied_generation = %s, applied_spec_digest = %s, "  # noqa: S608
    f"applied_secrets_revision = %s, object_uid = %s WHERE {_PROVIDER} AND row_id = %s"
)


def identity(owner: OwnerRef) -> dict[str, str]:
    """The parameters of an identity condition (``i``, ``k``, ``ns``, ``n``)."""
    i, k, ns, n = owner.key
    return {"i": i, "k": k, "ns": ns, "n": n}


def policy_text(policy: DeletePolicy) -> OwnerPolicy:
    """How a record stores a deletion policy (the API's words)."""
    return "Orphan" if policy is DeletePolicy.RELEASE else "Delete"


def provider_record_params(
    owner: OwnerRef, row_id: uuid.UUID, adopted: bool, policy: DeletePolicy
) -> tuple[Any, ...]:
    """The parameters of :data:`PROVIDER_RECORD_UPSERT`."""
    i, k, ns, n = owner.key
    return (row_id, i, k, ns, n, adopted, policy_text(policy), owner.uid)


async def record_provider(
    conn: AsyncConnection[Any],
    owner: OwnerRef,
    row_id: uuid.UUID,
    adopted: bool,
    policy: DeletePolicy,
) -> None:
    """Record provider row ``row_id`` for ``owner`` (claim, adopt, or a new policy/uid)."""
    await conn.execute(
        PROVIDER_RECORD_UPSERT, provider_record_params(owner, row_id, adopted, policy)
    )


async def forget_stale_provider(
    conn: AsyncConnection[Any], owner: OwnerRef, keep: uuid.UUID
) -> None:
    """Drop ``owner``'s provider record of a row other than ``keep`` (its row was
    hard-deleted in SQL): it must not block the row created now."""
    await conn.execute(
        f"DELETE FROM {OWNERS} WHERE {_PROVIDER} AND {_IDENTITY} AND row_id <> %(id)s",  # noqa: S608
        {**identity(owner), "id": keep},
    )


async def forget_provider(conn: AsyncConnection[Any], owner: OwnerRef) -> None:
    """Drop ``owner``'s provider record (its row is soft-deleted in the same transaction)."""
    await conn.execute(
        f"DELETE FROM {OWNERS} WHERE {_PROVIDER} AND {_IDENTITY}",  # noqa: S608
        identity(owner),
    )


async def record_applied(
    conn: AsyncConnection[Any], row_id: uuid.UUID, inputs: AppliedInputs
) -> None:
    """Record what a write applied to provider row ``row_id`` (``applied_*``)."""
    await conn.execute(
        _APPLIED_UPDATE,
        (
            inputs.generation,
            inputs.spec_digest,
            inputs.secrets_revision,
            inputs.object_uid,
            row_id,
        ),
    )


async def applied(conn: AsyncConnection[Any], owner: OwnerRef) -> AppliedInputs | None:
    """What the operator's last write applied to ``owner``'s provider row (None: no record,
    or one written before migration 4)."""
    cur = await conn.execute(
        "SELECT object_uid, applied_generation, applied_spec_digest, "  # noqa: S608
        f"applied_secrets_revision FROM {OWNERS} WHERE {_CURRENT_PROVIDER}",
        identity(owner),
    )
    row = await cur.fetchone()
    if row is None or row[1] is None:
        return None
    return AppliedInputs(str(row[0]), int(row[1]), str(row[2] or ""), str(row[3] or ""))


async def verification(conn: AsyncConnection[Any], owner: OwnerRef) -> VerificationRecord | None:
    """The last STS verification recorded for ``owner``'s provider row (None: none)."""
    cur = await conn.execute(
        f"SELECT verified_inputs, verified_digest, verified_at FROM {OWNERS} "  # noqa: S608
        f"WHERE {_CURRENT_PROVIDER}",
        identity(owner),
    )
    row = await cur.fetchone()
    if row is None or row[0] is None or row[1] is None or row[2] is None:
        return None
    return VerificationRecord(str(row[0]), str(row[1]), row[2])


async def record_verification(
    conn: AsyncConnection[Any], owner: OwnerRef, record: VerificationRecord
) -> bool:
    """Record an STS verification with ``owner``'s provider row; False when it has no record."""
    cur = await conn.execute(
        f"UPDATE {OWNERS} SET verified_inputs = %(vi)s, verified_digest = %(vd)s, "  # noqa: S608
        f"verified_at = %(va)s WHERE {_CURRENT_PROVIDER}",
        {**identity(owner), "vi": record.inputs, "vd": record.digest, "va": record.at},
    )
    return cur.rowcount > 0


async def recorded_policy(
    conn: AsyncConnection[Any], owner: OwnerRef
) -> tuple[DeletePolicy, str] | None:
    """The deletion policy recorded with ``owner``'s provider row and the uid of the object it
    was last written for (None: no record)."""
    cur = await conn.execute(
        f"SELECT deletion_policy, object_uid FROM {OWNERS} "  # noqa: S608
        f"WHERE {_PROVIDER} AND {_IDENTITY}",
        identity(owner),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    policy = DeletePolicy.RELEASE if row[0] == "Orphan" else DeletePolicy.SOFT_DELETE
    return policy, str(row[1])


# --- every table ------------------------------------------------------------------------------


async def records(conn: AsyncConnection[Any], instance: str) -> list[OwnerRecord]:
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


def uid_has_record(uid_column: str) -> str:
    """SQL: some record was written for the object whose uid is in ``uid_column``."""
    return f"EXISTS (SELECT 1 FROM {OWNERS} o WHERE o.object_uid = {uid_column})"  # noqa: S608


# --- gateway keys -----------------------------------------------------------------------------

_KEY = "row_table = 'ai_gateway_keys'"
_KEY_OWNER = (
    f"{_KEY} AND instance_id = %(instance)s AND kind = %(kind)s "
    "AND namespace = %(namespace)s AND name = %(name)s"
)


def _key_params(owner: OwnerRef, **extra: Any) -> dict[str, Any]:
    return {
        "instance": owner.instance,
        "kind": owner.kind,
        "namespace": owner.namespace,
        "name": owner.name,
        **extra,
    }


class KeyRecords:
    """One owner's gateway-key records as read (and locked) inside a transaction: by role,
    ``(role, row_id, secret_hash, rotating)``."""

    def __init__(self, rows: Sequence[tuple[Any, ...]]) -> None:
        self.by_role: dict[str, tuple[Any, ...]] = {r[0]: r for r in rows}

    def id(self, role: str) -> uuid.UUID | None:
        rec = self.by_role.get(role)
        return rec[1] if rec else None


async def key_records(conn: AsyncConnection[Any], owner: OwnerRef) -> KeyRecords:
    """``owner``'s gateway-key records, locked for the rest of the transaction."""
    cur = await conn.execute(
        f"SELECT role, row_id, secret_hash, rotating FROM {OWNERS} "  # noqa: S608
        f"WHERE {_KEY_OWNER} FOR UPDATE",
        _key_params(owner),
    )
    return KeyRecords(list(await cur.fetchall()))


async def key_holder(conn: AsyncConnection[Any], row_id: uuid.UUID) -> tuple[Any, ...] | None:
    """The identity ``(instance, kind, namespace, name)`` gateway key ``row_id`` is recorded
    for (None: made in Coder)."""
    cur = await conn.execute(
        f"SELECT instance_id, kind, namespace, name FROM {OWNERS} "  # noqa: S608
        f"WHERE {_KEY} AND row_id = %s",
        (row_id,),
    )
    return await cur.fetchone()


async def key_state_rows(
    conn: AsyncConnection[Any], owner: OwnerRef, key_cols: str
) -> list[tuple[Any, ...]]:
    """``owner``'s gateway-key records joined with Coder's rows (``k``, columns ``key_cols``):
    role, row_id, secret_hash, secret_prefix, rotating, deletion_policy, created_at,
    updated_at, the key columns, hashed_secret, object_uid, rotation_generation, now()."""
    cur = await conn.execute(
        f"SELECT o.role, o.row_id, o.secret_hash, o.secret_prefix, o.rotating, "  # noqa: S608
        f"o.deletion_policy, o.created_at, o.updated_at, {key_cols}, k.hashed_secret, "
        "o.object_uid, o.rotation_generation, now() "
        f"FROM {OWNERS} o LEFT JOIN ai_gateway_keys k "
        "ON k.id = o.row_id AND o.role <> 'pending' "
        f"WHERE o.{_KEY_OWNER.replace(' AND ', ' AND o.')}",
        _key_params(owner),
    )
    return list(await cur.fetchall())


async def current_key_hash(conn: AsyncConnection[Any], owner: OwnerRef) -> bytes | None:
    """``hashed_secret`` of the row recorded as ``owner``'s current key (None: none)."""
    cur = await conn.execute(
        f"SELECT k.hashed_secret FROM {OWNERS} o JOIN ai_gateway_keys k "  # noqa: S608
        f"ON k.id = o.row_id WHERE o.{_KEY_OWNER.replace(' AND ', ' AND o.')} "
        "AND o.role = 'current'",
        _key_params(owner),
    )
    row = await cur.fetchone()
    return bytes(row[0]) if row is not None else None


async def key_id_in_use(conn: AsyncConnection[Any], key_id: uuid.UUID) -> bool:
    """Whether a gateway key row or a record (a pending key's included) has ``key_id``."""
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM ai_gateway_keys WHERE id = %(id)s) "  # noqa: S608
        f"OR EXISTS (SELECT 1 FROM {OWNERS} WHERE {_KEY} AND row_id = %(id)s)",
        {"id": key_id},
    )
    taken = await cur.fetchone()
    return bool(taken and taken[0])


async def forget_pending(conn: AsyncConnection[Any], owner: OwnerRef) -> bool:
    """Drop ``owner``'s pending key record; whether there was one."""
    cur = await conn.execute(
        f"DELETE FROM {OWNERS} WHERE {_KEY_OWNER} AND role = 'pending'",  # noqa: S608
        _key_params(owner),
    )
    return cur.rowcount > 0


async def journal_pending(
    conn: AsyncConnection[Any],
    owner: OwnerRef,
    key_id: uuid.UUID,
    *,
    policy: OwnerPolicy,
    secret_hash: bytes,
    prefix: str,
    rotating: bool,
    rotation_generation: int | None,
) -> None:
    """Record ``key_id`` as ``owner``'s pending key (the journal: hash and prefix only)."""
    await conn.execute(
        f"INSERT INTO {OWNERS} (row_table, row_id, instance_id, kind, namespace, "  # noqa: S608
        "name, role, deletion_policy, object_uid, secret_hash, secret_prefix, rotating, "
        "rotation_generation) "
        "VALUES ('ai_gateway_keys', %(id)s, %(instance)s, %(kind)s, %(namespace)s, "
        "%(name)s, 'pending', %(policy)s, %(uid)s, %(hash)s, %(prefix)s, %(rotating)s, "
        "%(generation)s)",
        _key_params(
            owner,
            id=key_id,
            policy=policy,
            uid=owner.uid,
            hash=secret_hash,
            prefix=prefix,
            rotating=rotating,
            generation=rotation_generation,
        ),
    )


async def pending(conn: AsyncConnection[Any], key_id: uuid.UUID) -> PendingKey:
    """The pending record of ``key_id`` (written or read in this transaction)."""
    cur = await conn.execute(
        "SELECT row_id, secret_prefix, rotating, created_at, secret_hash, "  # noqa: S608
        f"rotation_generation FROM {OWNERS} WHERE {_KEY} AND row_id = %s",
        (key_id,),
    )
    row = await cur.fetchone()
    assert row is not None  # noqa: S101 - written or read in this transaction
    return PendingKey(row[0], row[1] or "", bool(row[2]), row[3], bytes(row[4]), row[5])


async def mark_key_previous(conn: AsyncConnection[Any], row_id: uuid.UUID) -> None:
    """The current key ``row_id`` becomes the previous one (a rotation)."""
    await conn.execute(
        f"UPDATE {OWNERS} SET role = 'previous', updated_at = now() "  # noqa: S608
        f"WHERE {_KEY} AND row_id = %s",
        (row_id,),
    )


async def mark_key_current(conn: AsyncConnection[Any], row_id: uuid.UUID) -> None:
    """The pending key ``row_id`` (its row inserted now) becomes the current one; its
    journaled hash goes (Coder's row holds it now)."""
    await conn.execute(
        f"UPDATE {OWNERS} SET role = 'current', secret_hash = NULL, rotating = false, "  # noqa: S608
        f"updated_at = now() WHERE {_KEY} AND row_id = %s",
        (row_id,),
    )


async def forget_key(conn: AsyncConnection[Any], row_id: uuid.UUID) -> None:
    """Drop the record of gateway key ``row_id``."""
    await conn.execute(
        f"DELETE FROM {OWNERS} WHERE {_KEY} AND row_id = %s",  # noqa: S608
        (row_id,),
    )


async def forget_keys(conn: AsyncConnection[Any], owner: OwnerRef) -> int:
    """Drop every gateway-key record of ``owner`` (pending included); how many."""
    cur = await conn.execute(
        f"DELETE FROM {OWNERS} WHERE {_KEY_OWNER}",  # noqa: S608
        _key_params(owner),
    )
    return cur.rowcount


async def record_key_policy(
    conn: AsyncConnection[Any], owner: OwnerRef, policy: OwnerPolicy
) -> int:
    """Set the policy (and, when ``owner.uid`` is given, the object uid) on every gateway-key
    record of ``owner`` that differs; how many changed."""
    cur = await conn.execute(
        f"UPDATE {OWNERS} SET deletion_policy = %(policy)s, "  # noqa: S608
        "object_uid = coalesce(nullif(%(uid)s, ''), object_uid), updated_at = now() "
        f"WHERE {_KEY_OWNER} AND (deletion_policy <> %(policy)s "
        "OR (%(uid)s <> '' AND object_uid <> %(uid)s))",
        _key_params(owner, policy=policy, uid=owner.uid),
    )
    return cur.rowcount


async def key_policies(conn: AsyncConnection[Any], owner: OwnerRef) -> list[tuple[str, str]]:
    """``(deletion_policy, object_uid)`` of each gateway-key record of ``owner``."""
    cur = await conn.execute(
        f"SELECT deletion_policy, object_uid FROM {OWNERS} WHERE {_KEY_OWNER}",  # noqa: S608
        _key_params(owner),
    )
    return [(str(p), str(u or "")) for p, u in await cur.fetchall()]
