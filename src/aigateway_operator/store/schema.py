"""Verify the part of Coder's schema the operator writes, and detect capabilities.

coderd owns and migrates the schema. At start we read Coder's migration version
(``schema_migrations``, golang-migrate) and map it to a release (``versions``); a release
older than supported refuses to start, a newer one starts with a warning. Then we check every
table, column (with its type), enum value, constraint and index that release has and we rely
on, and refuse to start with one message that lists *everything* missing, so an operator
pointed at a too-old coderd (or at the wrong database) fails loudly instead of writing rows
coderd cannot read. What differs between releases is chosen from the version:
``ai_gateway_keys`` (000514, v2.35+), its ``last_heartbeat_at`` (000532, v2.35+) and
``ai_providers.icon`` (000539, v2.36). Beyond the newest known migration those columns are
detected instead of required. ``audit_logs`` is optional.

The operator never creates Coder's schema. Where no coderd runs (the local environment and
the tests), ``tools/devenv/coder_schema.py`` builds it as coderd would, and is verified by this
module in the integration tests.

The operator's own table lives in its own schema: see ``operator_schema``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from aigateway_operator.store.errors import NotSupportedByCoder, SchemaMismatch
from aigateway_operator.store.versions import (
    MIN_SUPPORTED_MIGRATION,
    NEWEST,
    CoderVersion,
)

__all__ = [
    "Capabilities",
    "detect_coder_version",
    "verify_schema",
]

PROVIDER_TYPES = (
    "openai",
    "anthropic",
    "azure",
    "bedrock",
    "google",
    "openai-compat",
    "openrouter",
    "vercel",
    "copilot",
)

# --- what verify requires -------------------------------------------------------------------

REQUIRED_COLUMNS: dict[str, dict[str, str]] = {
    "dbcrypt_keys": {
        "number": "int4",
        "active_key_digest": "text",
        "revoked_key_digest": "text",
        "created_at": "timestamptz",
        "revoked_at": "timestamptz",
        "test": "text",
    },
    "ai_providers": {
        "id": "uuid",
        "type": "ai_provider_type",
        "name": "text",
        "display_name": "text",
        "enabled": "bool",
        "deleted": "bool",
        "base_url": "text",
        "settings": "text",
        "settings_key_id": "text",
        "created_at": "timestamptz",
        "updated_at": "timestamptz",
    },
    "ai_provider_keys": {
        "id": "uuid",
        "provider_id": "uuid",
        "api_key": "text",
        "api_key_key_id": "text",
        "created_at": "timestamptz",
        "updated_at": "timestamptz",
    },
}

GATEWAY_KEY_COLUMNS: dict[str, str] = {
    "id": "uuid",
    "created_at": "timestamptz",
    "name": "text",
    "secret_prefix": "varchar",
    "hashed_secret": "bytea",
}

AUDIT_COLUMNS: dict[str, str] = {
    "id": "uuid",
    "time": "timestamptz",
    "user_id": "uuid",
    "organization_id": "uuid",
    "ip": "inet",
    "user_agent": "varchar",
    "resource_type": "resource_type",
    "resource_id": "uuid",
    "resource_target": "text",
    "action": "audit_action",
    "diff": "jsonb",
    "status_code": "int4",
    "additional_fields": "jsonb",
    "request_id": "uuid",
    "resource_icon": "text",
}

REQUIRED_CONSTRAINTS = (
    "dbcrypt_keys_pkey",
    "dbcrypt_keys_active_key_digest_key",
    "ai_providers_pkey",
    "ai_providers_name_check",
    "ai_providers_settings_key_id_fkey",
    "ai_provider_keys_pkey",
    "ai_provider_keys_provider_id_fkey",
    "ai_provider_keys_api_key_key_id_fkey",
)

GATEWAY_KEY_CONSTRAINTS = (
    "ai_gateway_keys_pkey",
    "ai_gateway_keys_name_check",
    "ai_gateway_keys_secret_prefix_check",
    "ai_gateway_keys_hashed_secret_check",
)

REQUIRED_INDEXES = ("ai_providers_name_unique",)

GATEWAY_KEY_INDEXES = (
    "ai_gateway_keys_name_idx",
    "ai_gateway_keys_secret_prefix_idx",
    "ai_gateway_keys_hashed_secret_idx",
)


@dataclass(frozen=True)
class Capabilities:
    """Version-dependent parts of Coder's schema, detected at start."""

    has_icon: bool
    """``ai_providers.icon`` exists (migration 000539; v2.36)."""
    has_heartbeat: bool
    """``ai_gateway_keys.last_heartbeat_at`` exists (migration 000532; v2.35.0+)."""
    has_audit: bool
    """``audit_logs`` exists, with the enum values for our resource types."""
    has_gateway_keys: bool = True
    """``ai_gateway_keys`` exists (migration 000514; v2.35.0+)."""
    coder: CoderVersion = NEWEST
    """The Coder release read from ``schema_migrations``."""
    provider_types: frozenset[str] = frozenset(PROVIDER_TYPES)
    """Every ``ai_provider_type`` label in the database (newer Coders may add some)."""

    def require_gateway_keys(self) -> None:
        if not self.has_gateway_keys:
            raise NotSupportedByCoder(
                f"AI Gateway keys need Coder v2.35 or later; this database is {self.coder.label}"
            )


async def detect_coder_version(conn: AsyncConnection[Any]) -> CoderVersion:
    """Read golang-migrate's ``schema_migrations`` and refuse a Coder older than supported
    or mid-migration (``dirty``)."""
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT to_regclass(quote_ident(current_schema()) || '.schema_migrations') IS NULL"
        )
        row = await cur.fetchone()
        if row and row[0]:
            raise SchemaMismatch(
                ["table schema_migrations (Coder's schema migration version)"],
                hint=(
                    "Point AIGW_DATABASE_URL at Coder's database (coderd creates the table on "
                    "its first start)."
                ),
            )
        cur = await conn.execute("SELECT version, dirty FROM schema_migrations")
        rows = await cur.fetchall()
    if len(rows) != 1:
        raise SchemaMismatch(
            [f"exactly one row in schema_migrations (found {len(rows)})"],
            hint="Coder's migrations keep one row there; this is not a database coderd migrated.",
        )
    version = CoderVersion.of(int(rows[0][0]), bool(rows[0][1]))
    if not version.supported:
        raise SchemaMismatch(
            [
                f"a Coder release with AI providers: this database is {version.label}, the "
                f"oldest supported is v2.34 (schema migration {MIN_SUPPORTED_MIGRATION:06d})"
            ],
            hint="Upgrade Coder to v2.34 or later first.",
        )
    if version.dirty:
        raise SchemaMismatch(
            [f"a clean schema: {version.label} is marked dirty (a migration failed midway)"],
            hint="coderd refuses to start in this state too; fix Coder's migration first.",
        )
    return version


async def verify_schema(
    conn: AsyncConnection[Any], coder: CoderVersion | None = None
) -> Capabilities:
    """Check everything ``coder``'s release has and we rely on; raise :class:`SchemaMismatch`
    listing all that is missing. ``coder`` defaults to what ``schema_migrations`` says."""
    if coder is None:
        coder = await detect_coder_version(conn)
    tables = [*REQUIRED_COLUMNS, "ai_gateway_keys", "audit_logs"]
    async with conn.transaction():
        cur = await conn.execute(
            """
            SELECT c.relname, a.attname, t.typname
            FROM pg_attribute a
            JOIN pg_class c ON c.oid = a.attrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_type t ON t.oid = a.atttypid
            WHERE n.nspname = current_schema() AND c.relkind = 'r'
              AND c.relname = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped
            """,
            (tables,),
        )
        columns: dict[str, dict[str, str]] = {}
        for rel, att, typ in await cur.fetchall():
            columns.setdefault(str(rel), {})[str(att)] = str(typ)
        cur = await conn.execute(
            """
            SELECT t.typname, e.enumlabel
            FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid
            JOIN pg_namespace n ON n.oid = t.typnamespace
            WHERE n.nspname = current_schema()
              AND t.typname IN ('ai_provider_type', 'resource_type', 'audit_action')
            """
        )
        enums: dict[str, set[str]] = {}
        for typ, label in await cur.fetchall():
            enums.setdefault(str(typ), set()).add(str(label))
        cur = await conn.execute(
            """
            SELECT conname FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
            WHERE n.nspname = current_schema()
            """
        )
        constraints = {str(r[0]) for r in await cur.fetchall()}
        cur = await conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
        )
        indexes = {str(r[0]): str(r[1]) for r in await cur.fetchall()}

    missing: list[str] = []

    def check_columns(table: str, cols: dict[str, str]) -> None:
        have = columns.get(table)
        if have is None:
            missing.append(f"table {table}")
            return
        for col, typ in cols.items():
            if col not in have:
                missing.append(f"column {table}.{col} ({typ})")
            elif have[col] != typ:
                missing.append(f"column {table}.{col} has type {have[col]}, expected {typ}")

    def column(table: str, col: str, typ: str, required: bool) -> bool:
        """A column some releases have: required by ``coder``'s release, or detected."""
        found = columns.get(table, {}).get(col)
        if found is None:
            if required:
                missing.append(f"column {table}.{col} ({typ}), which {coder.label} has")
            return False
        if found != typ:
            missing.append(f"column {table}.{col} has type {found}, expected {typ}")
            return False
        return True

    # Releases beyond the newest known: detect what exists, write only that.
    known = not coder.newer_than_known
    for table, cols in REQUIRED_COLUMNS.items():
        check_columns(table, cols)
    for value in PROVIDER_TYPES:
        if value not in enums.get("ai_provider_type", set()):
            missing.append(f"enum value ai_provider_type.{value}")
    wanted_constraints = list(REQUIRED_CONSTRAINTS)
    wanted_indexes = list(REQUIRED_INDEXES)
    has_gateway_keys = "ai_gateway_keys" in columns
    if (coder.migration >= 514 and known) or has_gateway_keys:
        check_columns("ai_gateway_keys", GATEWAY_KEY_COLUMNS)
        wanted_constraints += GATEWAY_KEY_CONSTRAINTS
        wanted_indexes += GATEWAY_KEY_INDEXES
    for name in wanted_constraints:
        if name not in constraints:
            missing.append(f"constraint {name}")
    for name in wanted_indexes:
        if name not in indexes:
            missing.append(f"unique index {name}")
    name_unique = indexes.get("ai_providers_name_unique", "")
    if name_unique and ("UNIQUE" not in name_unique or "deleted = false" not in name_unique):
        missing.append(
            "unique index ai_providers_name_unique must be partial (WHERE deleted = false)"
        )
    has_icon = column("ai_providers", "icon", "text", known and coder.migration >= 539)
    has_heartbeat = has_gateway_keys and column(
        "ai_gateway_keys", "last_heartbeat_at", "timestamptz", known and coder.migration >= 532
    )

    audit = columns.get("audit_logs")
    if audit is not None:
        for col, typ in AUDIT_COLUMNS.items():
            if col not in audit:
                missing.append(f"column audit_logs.{col} ({typ})")
            elif audit[col] != typ:
                missing.append(f"column audit_logs.{col} has type {audit[col]}, expected {typ}")
        labels = ["ai_provider", "ai_provider_key"] + (
            ["ai_gateway_key"] if has_gateway_keys else []
        )
        for value in labels:
            if value not in enums.get("resource_type", set()):
                missing.append(f"enum value resource_type.{value}")
        for value in ("create", "write", "delete"):
            if value not in enums.get("audit_action", set()):
                missing.append(f"enum value audit_action.{value}")

    if missing:
        raise SchemaMismatch(
            missing,
            hint=(
                f"The database says it is {coder.label}. Point AIGW_DATABASE_URL at Coder's "
                "database and run a coderd version that has AI providers (v2.34 or later)."
            ),
        )
    return Capabilities(
        has_icon=has_icon,
        has_heartbeat=has_heartbeat,
        has_audit=audit is not None,
        has_gateway_keys=has_gateway_keys,
        coder=coder,
        provider_types=frozenset(enums.get("ai_provider_type", set())),
    )
