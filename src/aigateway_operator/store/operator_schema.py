"""The operator's own bookkeeping, in a schema of its own: ``aigateway_operator``.

Coder's tables have no spare column for "which Kubernetes object owns this row". Rows we
*create* get an id derived from the owner's uid, so finding them needs no bookkeeping; but a
row we *adopt* keeps its coderd-generated id (chat model configs reference it), so ownership
must live somewhere. It lives in ``aigateway_operator.owners``, outside Coder's schema:
coderd never reads it, Coder's migrations and backups of its own schema never see it, and
the operator needs no CREATE privilege on Coder's schema. It has no foreign keys into
Coder's tables (an FK would make coderd's own deletes and migrations depend on us) and can
be dropped at any time at the cost of forgetting adoptions.

Its shape changes by **migrations** (:data:`MIGRATIONS`), numbered, recorded in
``aigateway_operator.migrations`` and applied at start, all pending ones in one transaction
under an advisory lock (replicas starting together apply each once). To change the table,
append a migration; :data:`OWNERS_DDL` is the one place its first shape is written.
Migration 1 (a uid-keyed ``owned_rows`` table) existed only in development builds, never in
a release; its number is not reused, and a database with it applied keeps that table unused.

Migration 3 adds ``actors``: who in Kubernetes made each generation of an object's spec, as
the operator's validating webhook saw it (:mod:`aigateway_operator.store.actors`). The
replica that answers an admission request need not be the one that writes to Coder; this
table carries the requester from one to the other (tenants cannot write it, unlike an
annotation).

Migration 4 adds to ``owners`` what the operator last applied to the row (``applied_*``: the
object's generation, a digest of its spec and of the Secret versions it read), written in the
same transaction as the row. Whether a generation was already applied decides whether a
difference in the row is drift (reverted or reported) or the spec's change (written, audited
as its requester): that must come from the operator's own record, never from the object's
status, which anybody allowed to write ``<kind>/status`` can forge.

The same migration adds ``verified_*`` (when STS was last asked about a Bedrock identity,
for which inputs, and a digest of the verdict written to status: a verdict in status is
re-used only while it is the recorded one) and ``rotation_generation`` for gateway keys: the
``spec.rotation.generation`` a key was issued for (journaled with the pending key, kept when it
becomes current), which decides whether a rotation was asked for.

Privileges: creating the schema needs CREATE on the database (a role that has it);
otherwise an administrator creates it once and grants the
operator's role USAGE and CREATE on it (``deploy/postgres/grants.sql``). Applying a
migration needs CREATE on the schema; the tables then belong to the operator's role. A
missing privilege is named exactly (:class:`InsufficientPrivileges`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from aigateway_operator.store.errors import InsufficientPrivileges

__all__ = [
    "ACTORS",
    "ACTORS_DDL",
    "APPLIED_DDL",
    "MIGRATIONS",
    "OPERATOR_SCHEMA",
    "OWNERS",
    "OWNERS_DDL",
    "SCHEMA_LOCK_ID",
    "ensure_operator_schema",
]

SCHEMA_LOCK_ID = 0x6169_6777_0000_0001
"""Advisory lock for our DDL ("aigw" + 1): far from coderd's small lock ids (1..11)."""

OPERATOR_SCHEMA = "aigateway_operator"
OWNERS = f"{OPERATOR_SCHEMA}.owners"
"""Ownership keyed by the stable identity (instance, kind, namespace, name): migration 2."""
ACTORS = f"{OPERATOR_SCHEMA}.actors"
"""Who made each generation of an object's spec (the admission requester): migration 3."""
MIGRATIONS_TABLE = f"{OPERATOR_SCHEMA}.migrations"

OWNERS_DDL = f"""
CREATE TABLE IF NOT EXISTS {OWNERS} (
    row_table text NOT NULL CHECK (row_table IN ('ai_providers', 'ai_gateway_keys')),
    row_id uuid NOT NULL,
    instance_id text NOT NULL,
    kind text NOT NULL,
    namespace text NOT NULL,
    name text NOT NULL,
    role text NOT NULL DEFAULT 'current' CHECK (role IN ('current', 'previous', 'pending')),
    adopted boolean NOT NULL DEFAULT false,
    deletion_policy text NOT NULL DEFAULT 'Delete'
        CHECK (deletion_policy IN ('Delete', 'Orphan')),
    object_uid text NOT NULL DEFAULT '',
    secret_hash bytea,
    secret_prefix text,
    rotating boolean NOT NULL DEFAULT false,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    CONSTRAINT owners_pkey PRIMARY KEY (row_table, row_id),
    CONSTRAINT owners_pending_hash CHECK (role <> 'pending' OR secret_hash IS NOT NULL)
);
CREATE INDEX IF NOT EXISTS owners_owner_idx ON {OWNERS} (instance_id, kind, namespace, name);
CREATE UNIQUE INDEX IF NOT EXISTS owners_one_row_per_role
    ON {OWNERS} (row_table, instance_id, kind, namespace, name, role);
COMMENT ON TABLE {OWNERS} IS
    'aigateway-operator: which object (instance, kind, namespace, name) owns which Coder row. '
    'Not used by coderd.';
COMMENT ON COLUMN {OWNERS}.role IS
    'ai_gateway_keys: current (the key in the Secret), previous (retiring after a rotation), '
    'pending (issued to the Secret, not yet in Coder: the crash-safety journal).';
COMMENT ON COLUMN {OWNERS}.secret_hash IS
    'pending gateway keys: sha256 of the secret the operator generated (never the secret).';
"""


ACTORS_DDL = f"""
CREATE TABLE IF NOT EXISTS {ACTORS} (
    object_uid text NOT NULL,
    generation bigint NOT NULL,
    spec_digest text NOT NULL,
    kind text NOT NULL,
    namespace text NOT NULL,
    name text NOT NULL,
    actor text NOT NULL,
    actor_groups text[] NOT NULL DEFAULT '{{}}',
    recorded_at timestamp with time zone NOT NULL DEFAULT now(),
    CONSTRAINT actors_pkey PRIMARY KEY (object_uid, generation, spec_digest)
);
COMMENT ON TABLE {ACTORS} IS
    'aigateway-operator: the Kubernetes user or service account whose admitted request made '
    'each generation of an object''s spec (user name and groups only, never a token). '
    'Not used by coderd.';
COMMENT ON COLUMN {ACTORS}.spec_digest IS
    'sha256 of the admitted spec: a request admitted but not stored (a conflict, a later '
    'webhook denying it) is told apart from the one that made the generation.';
"""


APPLIED_DDL = f"""
ALTER TABLE {OWNERS}
    ADD COLUMN IF NOT EXISTS applied_generation bigint,
    ADD COLUMN IF NOT EXISTS applied_spec_digest text,
    ADD COLUMN IF NOT EXISTS applied_secrets_revision text,
    ADD COLUMN IF NOT EXISTS rotation_generation bigint,
    ADD COLUMN IF NOT EXISTS verified_inputs text,
    ADD COLUMN IF NOT EXISTS verified_digest text,
    ADD COLUMN IF NOT EXISTS verified_at timestamp with time zone;
COMMENT ON COLUMN {OWNERS}.applied_generation IS
    'ai_providers: the object generation the operator last applied to this row (with '
    'applied_spec_digest and applied_secrets_revision, for object_uid): what decides drift, '
    'never the status.';
COMMENT ON COLUMN {OWNERS}.verified_at IS
    'ai_providers: when the operator last asked STS about the Bedrock identity, for which '
    'inputs (verified_inputs) and with which verdict (verified_digest, of what it wrote to '
    'status): a verdict in status is re-used only while it is the one recorded here.';
COMMENT ON COLUMN {OWNERS}.rotation_generation IS
    'ai_gateway_keys: the spec.rotation.generation the key was issued for: what decides that a '
    'rotation was asked for, never the status or the Secret.';
"""


async def _m4_applied(conn: AsyncConnection[Any]) -> None:
    """``owners.applied_*``: empty for existing records (their next write fills them in)."""
    await conn.execute(APPLIED_DDL)


async def _m3_actors(conn: AsyncConnection[Any]) -> None:
    """Create ``actors`` (empty: objects admitted before it have no requester on record)."""
    await conn.execute(ACTORS_DDL)


async def _m2_owners(conn: AsyncConnection[Any]) -> None:
    """Create ``owners`` (identity-keyed: instance, kind, namespace, name)."""
    await conn.execute(OWNERS_DDL)


_MIGRATIONS_DDL = f"""
CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
    version integer NOT NULL PRIMARY KEY,
    description text NOT NULL,
    applied_at timestamp with time zone NOT NULL DEFAULT now()
);
"""


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[AsyncConnection[Any]], Awaitable[None]]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        2,
        "owners: ownership keyed by (instance, kind, namespace, name), gateway keys included",
        _m2_owners,
    ),
    Migration(
        3,
        "actors: the Kubernetes requester of each spec generation, from the validating webhook",
        _m3_actors,
    ),
    Migration(
        4,
        "owners.applied_*, rotation_generation: what the operator last applied to each row",
        _m4_applied,
    ),
)


async def _one(conn: AsyncConnection[Any], query: str, params: Any = None) -> Any:
    cur = await conn.execute(query, params)
    row = await cur.fetchone()
    return row[0] if row else None


async def ensure_operator_schema(conn: AsyncConnection[Any]) -> tuple[int, ...]:
    """Create our schema if missing and allowed, apply pending migrations; one transaction.

    Returns the versions applied now. Raises :class:`InsufficientPrivileges` naming the
    missing privilege when the schema is missing or behind and the role may not fix that.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_ID,))
        exists = await _one(
            conn,
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)",
            (OPERATOR_SCHEMA,),
        )
        if not exists:
            if not await _one(conn, "SELECT has_database_privilege(current_database(), 'CREATE')"):
                database = await _one(conn, "SELECT current_database()")
                role = await _one(conn, "SELECT current_user")
                raise InsufficientPrivileges(
                    [f"CREATE on database {database} (to create schema {OPERATOR_SCHEMA})"],
                    hint=(
                        "Or create the schema once for the operator, as the database owner: "
                        f"CREATE SCHEMA {OPERATOR_SCHEMA}; GRANT USAGE, CREATE ON SCHEMA "
                        f"{OPERATOR_SCHEMA} TO {role} (deploy/postgres/grants.sql); "
                        "nothing was changed."
                    ),
                )
            await conn.execute(f"CREATE SCHEMA {OPERATOR_SCHEMA}")
        if not await _one(conn, "SELECT has_schema_privilege(%s, 'USAGE')", (OPERATOR_SCHEMA,)):
            raise InsufficientPrivileges([f"USAGE on schema {OPERATOR_SCHEMA}"])
        applied: set[int] = set()
        if await _one(conn, "SELECT to_regclass(%s) IS NOT NULL", (MIGRATIONS_TABLE,)):
            cur = await conn.execute(f"SELECT version FROM {MIGRATIONS_TABLE}")  # noqa: S608
            applied = {int(r[0]) for r in await cur.fetchall()}
        pending = [m for m in MIGRATIONS if m.version not in applied]
        if not pending:
            return ()
        if not await _one(conn, "SELECT has_schema_privilege(%s, 'CREATE')", (OPERATOR_SCHEMA,)):
            raise InsufficientPrivileges(
                [
                    f"CREATE on schema {OPERATOR_SCHEMA} (to apply operator migration "
                    f"{pending[0].version}: {pending[0].description})"
                ],
                hint=(
                    f"GRANT USAGE, CREATE ON SCHEMA {OPERATOR_SCHEMA} to the operator's role "
                    "(deploy/postgres/grants.sql); nothing was changed."
                ),
            )
        await conn.execute(_MIGRATIONS_DDL)
        for m in pending:
            await m.apply(conn)
            await conn.execute(
                f"INSERT INTO {MIGRATIONS_TABLE} (version, description) "  # noqa: S608
                "VALUES (%s, %s)",
                (m.version, m.description),
            )
        return tuple(m.version for m in pending)
