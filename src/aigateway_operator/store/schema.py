"""Create or verify the part of Coder's schema the operator writes, and detect capabilities.

``verify`` (production): coderd owns and migrates the schema. At start we read Coder's
migration version (``schema_migrations``, golang-migrate) and map it to a release
(``versions``); a release older than supported refuses to start, a newer one starts with a
warning. Then we check every table, column (with its type), enum value, constraint and
index that release has and we rely on, and refuse to start with one message that lists
*everything* missing, so an operator pointed at a too-old coderd (or at the wrong database)
fails loudly instead of writing rows coderd cannot read. What differs between releases is
chosen from the version: ``ai_gateway_keys`` (000514, v2.35+), its ``last_heartbeat_at``
(000532, v2.35+) and ``ai_providers.icon`` (000539, v2.36). Beyond the newest known
migration those columns are detected instead of required. ``audit_logs`` is optional.

``create`` (standalone dev/test): create exactly that subset of Coder's schema for a chosen
release (``AIGW_CREATE_CODER_VERSION``: v2.34, v2.35 or v2.36), with Coder's names, types,
defaults, constraints, indexes, foreign keys and enum values (reference §1), plus a
``schema_migrations`` row like coderd's, idempotently, inside one transaction serialised by
an advisory lock, then verify it like production does (so the DDL and the checks cannot
drift apart). It also writes the ``COMMENT ON`` statements coderd's migrations carry for
these objects (``CODER_COMMENTS``, each with the migration that introduced it), so a created
schema's ``pg_description`` equals coderd's for them; ``verify`` does not look at comments.

The operator's own table lives in its own schema: see ``operator_schema``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from psycopg import AsyncConnection

from aigateway_operator.store.errors import NotSupportedByCoder, SchemaMismatch
from aigateway_operator.store.operator_schema import SCHEMA_LOCK_ID
from aigateway_operator.store.versions import (
    CREATE_RELEASES,
    MIN_SUPPORTED_MIGRATION,
    NEWEST,
    CoderVersion,
)

__all__ = [
    "CODER_COMMENTS",
    "SCHEMA_LOCK_ID",
    "Capabilities",
    "CoderComment",
    "coder_comments",
    "create_schema",
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


_DBCRYPT_DDL = """
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

_PROVIDERS_DDL = """
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

"""

# 000539 (v2.36): the provider icon. Added like the migration does, after the table exists.
_ICON_DDL = """
ALTER TABLE ai_providers ADD COLUMN IF NOT EXISTS icon text DEFAULT ''::text NOT NULL;
"""

# 000514 (v2.35): gateway keys; 000532 renamed last_used_at to last_heartbeat_at.
_GATEWAY_KEYS_DDL = """
CREATE TABLE IF NOT EXISTS ai_gateway_keys (
    id uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    name text NOT NULL,
    secret_prefix character varying(11) NOT NULL,
    hashed_secret bytea NOT NULL,
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
ALTER TABLE ai_gateway_keys ADD COLUMN IF NOT EXISTS last_heartbeat_at timestamp with time zone;
"""

_AUDIT_DDL = """
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

#: golang-migrate's bookkeeping table, as coderd has it.
_MIGRATIONS_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version bigint NOT NULL,
    dirty boolean NOT NULL,
    CONSTRAINT schema_migrations_pkey PRIMARY KEY (version)
);
"""


# --- coderd's comments on these objects (create mode only) ----------------------------------


@dataclass(frozen=True)
class CoderComment:
    """One ``COMMENT ON`` statement of coderd's migrations, for an object create mode builds."""

    kind: Literal["TABLE", "COLUMN", "TYPE"]
    target: str
    """``table``, ``table.column`` or ``type``, in Coder's schema."""
    text: str
    """The comment, character for character as coderd's migration writes it."""
    migration: int
    """The Coder migration that introduced it: present in every release from there on."""

    def sql(self) -> str:
        literal = "'" + self.text.replace("'", "''") + "'"
        return f"COMMENT ON {self.kind} {self.target} IS {literal};\n"


CODER_COMMENTS: tuple[CoderComment, ...] = (
    # 000154_dbcrypt_key_ids: the table and each of its columns.
    CoderComment(
        "TABLE", "dbcrypt_keys", "A table used to store the keys used to encrypt the database.", 154
    ),
    CoderComment("COLUMN", "dbcrypt_keys.number", "An integer used to identify the key.", 154),
    CoderComment(
        "COLUMN",
        "dbcrypt_keys.active_key_digest",
        "If the key is active, the digest of the active key.",
        154,
    ),
    CoderComment(
        "COLUMN",
        "dbcrypt_keys.revoked_key_digest",
        "If the key has been revoked, the digest of the revoked key.",
        154,
    ),
    CoderComment(
        "COLUMN", "dbcrypt_keys.created_at", "The time at which the key was created.", 154
    ),
    CoderComment(
        "COLUMN", "dbcrypt_keys.revoked_at", "The time at which the key was revoked.", 154
    ),
    CoderComment("COLUMN", "dbcrypt_keys.test", "A column used to test the encryption.", 154),
    # 000334_connection_logs (coder/coder PR #18340) moved connection events out of the
    # audit log and said so on the enum; audit_logs and resource_type carry no comment.
    CoderComment(
        "TYPE",
        "audit_action",
        "NOTE: `connect`, `disconnect`, `open`, and `close` are deprecated and no longer used "
        "- these events are now tracked in the connection_logs table.",
        334,
    ),
    # 000495_ai_providers. ai_provider_type has none (nor after 000499 rebuilt it, or 000506).
    CoderComment(
        "TABLE",
        "ai_providers",
        "Runtime configuration for AI providers. Authoritative source for the provider set "
        "served by aibridged. Replaces deployment-time CODER_AIBRIDGE_* environment variables.",
        495,
    ),
    CoderComment(
        "COLUMN",
        "ai_providers.settings",
        "Encrypted JSON blob holding type-specific configuration (e.g. AWS Bedrock region, "
        "model, access key secret). Plaintext is a JSON object. NULL when no type-specific "
        "settings are required.",
        495,
    ),
    CoderComment(
        "COLUMN",
        "ai_providers.settings_key_id",
        "The ID of the key used to encrypt settings. If this is NULL, settings is not encrypted.",
        495,
    ),
    CoderComment(
        "COLUMN",
        "ai_providers.deleted",
        "Soft delete flag. Soft-deleted rows are preserved for audit and FK history but do not "
        "block name reuse by future live rows.",
        495,
    ),
    CoderComment(
        "COLUMN",
        "ai_providers.display_name",
        "Optional human-readable label. When NULL, callers should fall back to name.",
        495,
    ),
    CoderComment(
        "TABLE",
        "ai_provider_keys",
        "API keys associated with AI providers. Bedrock providers have zero keys (they "
        "authenticate via settings). OpenAI and Anthropic providers have one or more keys for "
        "failover.",
        495,
    ),
    CoderComment(
        "COLUMN",
        "ai_provider_keys.api_key",
        "API key used to authenticate with the upstream AI provider. Encrypted at rest via "
        "dbcrypt when api_key_key_id is set.",
        495,
    ),
    CoderComment(
        "COLUMN",
        "ai_provider_keys.api_key_key_id",
        "The ID of the key used to encrypt the provider API key. If this is NULL, the API key "
        "is not encrypted.",
        495,
    ),
    # 000514_ai_gateway_keys (v2.35+). 000532's rename of last_used_at and 000539's
    # ai_providers.icon add no comment (a pre-merge draft of 000539 seen elsewhere had one on
    # icon; the file at coder/coder's path 000539_ai_provider_icons.up.sql has none).
    CoderComment(
        "TABLE",
        "ai_gateway_keys",
        "Hashed bearer secrets used by AI Gateway standalone replicas to authenticate into coderd.",
        514,
    ),
    CoderComment(
        "COLUMN",
        "ai_gateway_keys.secret_prefix",
        "Public token prefix for display and audit correlation. Auth uses hashed_secret.",
        514,
    ),
)
"""coderd's comments on the objects create mode builds (from ``coder/coder``'s migrations, the
number of each given with it; the texts of 000154 and 000334 also as in ``dump.sql``).
Object names and comment texts are facts about Coder's schema, needed for a created schema to
compare equal to coderd's; nothing else of those files is used. Tables and types without a
comment there (``audit_logs``, ``resource_type``, ``ai_provider_type``,
``schema_migrations``) get none here."""


def coder_comments(release: str) -> tuple[CoderComment, ...]:
    """The comments ``release`` (a key of ``CREATE_RELEASES``) has: those of its migrations."""
    migration = CREATE_RELEASES[release]
    return tuple(c for c in CODER_COMMENTS if c.migration <= migration)


def coder_ddl(release: str) -> str:
    """The DDL of Coder's subset as ``release`` (a key of ``CREATE_RELEASES``) has it."""
    migration = CREATE_RELEASES[release]
    resource_types: tuple[str, ...] = RESOURCE_TYPES
    if migration < 514:  # ai_gateway_key (and labels after it) came with 000514 or later
        resource_types = RESOURCE_TYPES[: RESOURCE_TYPES.index("ai_gateway_key")]
    parts = [_DBCRYPT_DDL, _enum_ddl("ai_provider_type", PROVIDER_TYPES), _PROVIDERS_DDL]
    if migration >= 539:
        parts.append(_ICON_DDL)
    if migration >= 514:
        parts.append(_GATEWAY_KEYS_DDL)
    parts += [
        _enum_ddl("resource_type", resource_types),
        _enum_ddl("audit_action", AUDIT_ACTIONS),
        _AUDIT_DDL,
        _MIGRATIONS_DDL,
    ]
    # Last, once every object they name exists (COMMENT ON replaces: idempotent too).
    parts += [c.sql() for c in coder_comments(release)]
    return "".join(parts)


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


async def create_schema(conn: AsyncConnection[Any], release: str = "v2.36") -> None:
    """Create Coder's subset as ``release`` has it, idempotently, in one locked transaction,
    and record the release's migration number (unless ``schema_migrations`` has one)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_ID,))
        await conn.execute(coder_ddl(release))
        await conn.execute(
            "INSERT INTO schema_migrations (version, dirty) SELECT %s, false "
            "WHERE NOT EXISTS (SELECT 1 FROM schema_migrations)",
            (CREATE_RELEASES[release],),
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
                    "its first start), or use AIGW_SCHEMA=create for a standalone database."
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
                "database and run a coderd version that has AI providers (v2.34 or later), or "
                "use AIGW_SCHEMA=create for a standalone database."
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
