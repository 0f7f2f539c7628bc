"""Create or verify the part of Coder's schema the operator writes, and detect capabilities.

``verify`` (production): coderd owns and migrates the schema. At start we check every table,
column (with its type), enum value, constraint and index we rely on, and refuse to start
with one message that lists *everything* missing, so an operator pointed at a too-old coderd
(or at the wrong database) fails loudly instead of writing rows coderd cannot read. Optional
columns that vary by coderd version are detected instead: ``ai_providers.icon`` (000539,
main only) and ``ai_gateway_keys.last_heartbeat_at`` (000532, v2.35+), and whether
``audit_logs`` exists at all.

``create`` (standalone dev/test): create exactly that subset of Coder's schema, with Coder's
names, types, defaults, constraints, indexes, foreign keys and enum values (reference §1),
idempotently, inside one transaction serialised by an advisory lock, then verify it like
production does (so the DDL and the checks cannot drift apart).

The one table of our own: ``aigw_owned_rows`` records which Kubernetes object owns which
row. Coder's tables have no spare column for that. Rows we *create* get an id derived from
the owner's uid, so finding them needs no bookkeeping; but a row we *adopt* keeps its
coderd-generated id (chat model configs reference it), so ownership must live somewhere.
The table is created in both modes (``CREATE TABLE IF NOT EXISTS``), is never read or written
by coderd, has no foreign keys into Coder's tables (an FK would make coderd's own deletes
and migrations depend on us), and can be dropped at any time at the cost of forgetting
adoptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from aigateway_operator.store.errors import SchemaMismatch

__all__ = ["OWNED_ROWS_DDL", "SCHEMA_LOCK_ID", "Capabilities", "create_schema", "verify_schema"]

SCHEMA_LOCK_ID = 0x6169_6777_0000_0001
"""Advisory lock for our DDL ("aigw" + 1): far from coderd's small lock ids (1..11)."""

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

RESOURCE_TYPES = (
    "organization", "template", "template_version", "user", "workspace", "git_ssh_key",
    "api_key", "group", "workspace_build", "license", "workspace_proxy", "convert_login",
    "health_settings", "oauth2_provider_app", "oauth2_provider_app_secret", "custom_role",
    "organization_member", "notifications_settings", "notification_template",
    "idp_sync_settings_organization", "idp_sync_settings_group", "idp_sync_settings_role",
    "workspace_agent", "workspace_app", "prebuilds_settings", "task", "ai_seat", "chat",
    "user_secret", "ai_provider", "ai_provider_key", "group_ai_budget", "user_skill",
    "ai_gateway_key", "user_ai_budget_override",
)  # fmt: skip

AUDIT_ACTIONS = (
    "create", "write", "delete", "start", "stop", "login", "logout", "register",
    "request_password_reset", "connect", "disconnect", "open", "close",
)  # fmt: skip

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
    "ai_gateway_keys": {
        "id": "uuid",
        "created_at": "timestamptz",
        "name": "text",
        "secret_prefix": "varchar",
        "hashed_secret": "bytea",
    },
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

OPTIONAL_COLUMNS = {
    ("ai_providers", "icon"): "text",
    ("ai_gateway_keys", "last_heartbeat_at"): "timestamptz",
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
    "ai_gateway_keys_pkey",
    "ai_gateway_keys_name_check",
    "ai_gateway_keys_secret_prefix_check",
    "ai_gateway_keys_hashed_secret_check",
)

REQUIRED_INDEXES = (
    "ai_providers_name_unique",
    "ai_gateway_keys_name_idx",
    "ai_gateway_keys_secret_prefix_idx",
    "ai_gateway_keys_hashed_secret_idx",
)

# --- create mode DDL (mirrors coderd/database/dump.sql, reference §1) -----------------------


def _enum_ddl(name: str, values: tuple[str, ...]) -> str:
    """Create an enum if missing, then add any missing labels (constants only, no input)."""
    labels = ", ".join(f"'{v}'" for v in values)
    adds = "\n".join(f"ALTER TYPE {name} ADD VALUE IF NOT EXISTS '{v}';" for v in values)
    return f"""
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE t.typname = '{name}' AND n.nspname = current_schema()) THEN
        CREATE TYPE {name} AS ENUM ({labels});
    END IF;
END $$;
{adds}
"""  # noqa: S608


CODER_DDL = (
    """
CREATE TABLE IF NOT EXISTS dbcrypt_keys (
    number integer NOT NULL,
    active_key_digest text,
    revoked_key_digest text,
    created_at timestamp with time zone DEFAULT CURRENT_TIMESTAMP,
    revoked_at timestamp with time zone,
    test text NOT NULL,
    CONSTRAINT dbcrypt_keys_pkey PRIMARY KEY (number),
    CONSTRAINT dbcrypt_keys_active_key_digest_key UNIQUE (active_key_digest),
    CONSTRAINT dbcrypt_keys_revoked_key_digest_key UNIQUE (revoked_key_digest)
);
"""
    + _enum_ddl("ai_provider_type", PROVIDER_TYPES)
    + """
CREATE TABLE IF NOT EXISTS ai_providers (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    type ai_provider_type NOT NULL,
    name text NOT NULL,
    display_name text,
    enabled boolean DEFAULT true NOT NULL,
    deleted boolean DEFAULT false NOT NULL,
    base_url text NOT NULL,
    settings text,
    settings_key_id text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    icon text DEFAULT ''::text NOT NULL,
    CONSTRAINT ai_providers_pkey PRIMARY KEY (id),
    CONSTRAINT ai_providers_name_check CHECK (name ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    CONSTRAINT ai_providers_settings_key_id_fkey FOREIGN KEY (settings_key_id)
        REFERENCES dbcrypt_keys(active_key_digest)
);
CREATE UNIQUE INDEX IF NOT EXISTS ai_providers_name_unique
    ON ai_providers USING btree (name) WHERE (deleted = false);
CREATE INDEX IF NOT EXISTS idx_ai_providers_enabled
    ON ai_providers USING btree (enabled) WHERE (deleted = false);

CREATE TABLE IF NOT EXISTS ai_provider_keys (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    provider_id uuid NOT NULL,
    api_key text NOT NULL,
    api_key_key_id text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT ai_provider_keys_pkey PRIMARY KEY (id),
    CONSTRAINT ai_provider_keys_provider_id_fkey FOREIGN KEY (provider_id)
        REFERENCES ai_providers(id) ON DELETE CASCADE,
    CONSTRAINT ai_provider_keys_api_key_key_id_fkey FOREIGN KEY (api_key_key_id)
        REFERENCES dbcrypt_keys(active_key_digest)
);
CREATE INDEX IF NOT EXISTS idx_ai_provider_keys_provider_id
    ON ai_provider_keys USING btree (provider_id);

CREATE TABLE IF NOT EXISTS ai_gateway_keys (
    id uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    name text NOT NULL,
    secret_prefix character varying(11) NOT NULL,
    hashed_secret bytea NOT NULL,
    last_heartbeat_at timestamp with time zone,
    CONSTRAINT ai_gateway_keys_pkey PRIMARY KEY (id),
    CONSTRAINT ai_gateway_keys_name_check
        CHECK (length(name) <= 64 AND name ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    CONSTRAINT ai_gateway_keys_secret_prefix_check CHECK (length(secret_prefix) = 11),
    CONSTRAINT ai_gateway_keys_hashed_secret_check CHECK (length(hashed_secret) > 0)
);
CREATE UNIQUE INDEX IF NOT EXISTS ai_gateway_keys_name_idx
    ON ai_gateway_keys USING btree (lower(name));
CREATE UNIQUE INDEX IF NOT EXISTS ai_gateway_keys_secret_prefix_idx
    ON ai_gateway_keys USING btree (secret_prefix);
CREATE UNIQUE INDEX IF NOT EXISTS ai_gateway_keys_hashed_secret_idx
    ON ai_gateway_keys USING btree (hashed_secret);
"""
    + _enum_ddl("resource_type", RESOURCE_TYPES)
    + _enum_ddl("audit_action", AUDIT_ACTIONS)
    + """
CREATE TABLE IF NOT EXISTS audit_logs (
    id uuid NOT NULL,
    "time" timestamp with time zone NOT NULL,
    user_id uuid NOT NULL,
    organization_id uuid NOT NULL,
    ip inet,
    user_agent character varying(256),
    resource_type resource_type NOT NULL,
    resource_id uuid NOT NULL,
    resource_target text NOT NULL,
    action audit_action NOT NULL,
    diff jsonb NOT NULL,
    status_code integer NOT NULL,
    additional_fields jsonb NOT NULL,
    request_id uuid NOT NULL,
    resource_icon text NOT NULL,
    CONSTRAINT audit_logs_pkey PRIMARY KEY (id)
);
-- Index names as in Coder's dump.sql (unverified against the reference; not checked by verify).
CREATE INDEX IF NOT EXISTS idx_audit_log_organization_id
    ON audit_logs USING btree (organization_id);
CREATE INDEX IF NOT EXISTS idx_audit_log_resource_id ON audit_logs USING btree (resource_id);
CREATE INDEX IF NOT EXISTS idx_audit_log_user_id ON audit_logs USING btree (user_id);
CREATE INDEX IF NOT EXISTS idx_audit_logs_time_desc ON audit_logs USING btree ("time" DESC);
"""
)

OWNED_ROWS_DDL = """
CREATE TABLE IF NOT EXISTS aigw_owned_rows (
    kind text NOT NULL CHECK (kind IN ('ai_provider', 'ai_gateway_key')),
    owner_uid text NOT NULL,
    row_id uuid NOT NULL,
    adopted boolean NOT NULL DEFAULT false,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    CONSTRAINT aigw_owned_rows_pkey PRIMARY KEY (kind, owner_uid),
    CONSTRAINT aigw_owned_rows_row_key UNIQUE (kind, row_id)
);
COMMENT ON TABLE aigw_owned_rows IS
    'aigateway-operator: which Kubernetes object owns which Coder row. Not used by coderd.';
"""


@dataclass(frozen=True)
class Capabilities:
    """Version-dependent parts of Coder's schema, detected at start."""

    has_icon: bool
    """``ai_providers.icon`` exists (migration 000539; coderd main after v2.35.1)."""
    has_heartbeat: bool
    """``ai_gateway_keys.last_heartbeat_at`` exists (migration 000532; v2.35.0+)."""
    has_audit: bool
    """``audit_logs`` exists, with the enum values for our resource types."""


async def create_schema(conn: AsyncConnection[Any]) -> None:
    """Create Coder's subset plus ``aigw_owned_rows``, idempotently, in one locked transaction."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_ID,))
        await conn.execute(CODER_DDL)
        await conn.execute(OWNED_ROWS_DDL)


async def ensure_owned_rows_table(conn: AsyncConnection[Any]) -> None:
    """Create ``aigw_owned_rows`` if needed (verify mode too: it is ours, not Coder's)."""
    import psycopg

    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_ID,))
            await conn.execute(OWNED_ROWS_DDL)
    except psycopg.errors.InsufficientPrivilege:
        raise SchemaMismatch(
            ["table aigw_owned_rows (the operator's ownership table)"],
            hint=(
                "The database user may not create it. Grant CREATE on the schema, or create it "
                "once as the owner with the DDL in aigateway_operator.store.schema.OWNED_ROWS_DDL."
            ),
        ) from None


async def verify_schema(conn: AsyncConnection[Any]) -> Capabilities:
    """Check everything we rely on; raise :class:`SchemaMismatch` listing all that is missing."""
    tables = [*REQUIRED_COLUMNS, "audit_logs", "aigw_owned_rows"]
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
    for table, cols in REQUIRED_COLUMNS.items():
        have = columns.get(table)
        if have is None:
            missing.append(f"table {table}")
            continue
        for col, typ in cols.items():
            if col not in have:
                missing.append(f"column {table}.{col} ({typ})")
            elif have[col] != typ:
                missing.append(f"column {table}.{col} has type {have[col]}, expected {typ}")
    for value in PROVIDER_TYPES:
        if value not in enums.get("ai_provider_type", set()):
            missing.append(f"enum value ai_provider_type.{value}")
    for name in REQUIRED_CONSTRAINTS:
        if name not in constraints:
            missing.append(f"constraint {name}")
    for name in REQUIRED_INDEXES:
        if name not in indexes:
            missing.append(f"unique index {name}")
    name_unique = indexes.get("ai_providers_name_unique", "")
    if name_unique and ("UNIQUE" not in name_unique or "deleted = false" not in name_unique):
        missing.append(
            "unique index ai_providers_name_unique must be partial (WHERE deleted = false)"
        )

    def optional(table: str, col: str) -> bool:
        typ = OPTIONAL_COLUMNS[(table, col)]
        found = columns.get(table, {}).get(col)
        if found is not None and found != typ:
            missing.append(f"column {table}.{col} has type {found}, expected {typ}")
            return False
        return found is not None

    has_icon = optional("ai_providers", "icon")
    has_heartbeat = optional("ai_gateway_keys", "last_heartbeat_at")

    audit = columns.get("audit_logs")
    if audit is not None:
        for col, typ in AUDIT_COLUMNS.items():
            if col not in audit:
                missing.append(f"column audit_logs.{col} ({typ})")
            elif audit[col] != typ:
                missing.append(f"column audit_logs.{col} has type {audit[col]}, expected {typ}")
        for value in ("ai_provider", "ai_provider_key", "ai_gateway_key"):
            if value not in enums.get("resource_type", set()):
                missing.append(f"enum value resource_type.{value}")
        for value in ("create", "write", "delete"):
            if value not in enums.get("audit_action", set()):
                missing.append(f"enum value audit_action.{value}")
    if "aigw_owned_rows" not in columns:
        missing.append("table aigw_owned_rows (the operator's ownership table)")

    if missing:
        raise SchemaMismatch(
            missing,
            hint=(
                "Point AIGW_DATABASE_URL at Coder's database and run a coderd version that has "
                "AI providers and AI Gateway keys (v2.35.0 or later), or use AIGW_SCHEMA=create "
                "for a standalone database."
            ),
        )
    return Capabilities(has_icon=has_icon, has_heartbeat=has_heartbeat, has_audit=audit is not None)
