"""Coder's database as coderd leaves it, for the local environment and the tests: the subset
of Coder's schema the operator uses, and coderd's encryption key registered.

The operator never creates Coder's schema (coderd owns and migrates it; the operator only
verifies it: ``aigateway_operator.store.schema``). Where no coderd runs (the local
environment, the demo, the tests, the benchmarks), this module plays coderd's part before an
operator starts: :func:`create_coder_schema` builds exactly that subset for a chosen release
(v2.34, v2.35 or v2.36: :data:`CREATE_RELEASES`), with Coder's names, types, defaults,
constraints, indexes, foreign keys and enum values (reference §1), plus a
``schema_migrations`` row like coderd's, idempotently, inside one transaction serialised by
an advisory lock. It also writes the ``COMMENT ON`` statements coderd's migrations carry for
these objects (:data:`CODER_COMMENTS`, each with the migration that introduced it), so a
created schema's ``pg_description`` equals coderd's for them. :func:`register_key` does what
coderd does at start with its primary key: an active ``dbcrypt_keys`` row whose ``test``
decrypts to ``coder``.

The operator's verification (``verify_schema``) is run against every schema built here by
the integration tests, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg import AsyncConnection

from aigateway_operator.store.cipher import DBCRYPT_TEST_VALUE, Cipher
from aigateway_operator.store.operator_schema import SCHEMA_LOCK_ID
from aigateway_operator.store.schema import PROVIDER_TYPES
from aigateway_operator.store.versions import NEWEST_KNOWN_MIGRATION

__all__ = [
    "CODER_COMMENTS",
    "CREATE_RELEASES",
    "CoderComment",
    "coder_comments",
    "coder_ddl",
    "create_coder_schema",
    "prepare_coder_database",
    "register_key",
]

CREATE_RELEASES: dict[str, int] = {"v2.34": 506, "v2.35": 532, "v2.36": NEWEST_KNOWN_MIGRATION}
"""Shapes :func:`create_coder_schema` can build, and the migration number it records for each
(the lowest number known to be in that release, or main's last for v2.36)."""

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

# --- the DDL (mirrors coderd/database/dump.sql, reference §1) -------------------------------


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


# --- coderd's comments on these objects -----------------------------------------------------


@dataclass(frozen=True)
class CoderComment:
    """One ``COMMENT ON`` statement of coderd's migrations, for an object this module builds."""

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
"""coderd's comments on the objects this module builds (from ``coder/coder``'s migrations, the
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


async def create_coder_schema(conn: AsyncConnection[Any], release: str = "v2.36") -> None:
    """Create Coder's subset as ``release`` has it, idempotently, in one locked transaction,
    and record the release's migration number (unless ``schema_migrations`` has one)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_ID,))
        await conn.execute(coder_ddl(release))
        await conn.execute(_RECORD_MIGRATION, (CREATE_RELEASES[release],))


_RECORD_MIGRATION = (
    "INSERT INTO schema_migrations (version, dirty) SELECT %s, false "
    "WHERE NOT EXISTS (SELECT 1 FROM schema_migrations)"
)
_REGISTER_KEY = (
    "INSERT INTO dbcrypt_keys (number, active_key_digest, test) "
    "SELECT coalesce(max(number), 0) + 1, %(digest)s, %(test)s FROM dbcrypt_keys "
    "HAVING NOT coalesce(bool_or(%(digest)s IN (active_key_digest, revoked_key_digest)), false)"
)


async def register_key(conn: AsyncConnection[Any], key: bytes) -> None:
    """Register ``key`` as an active ``dbcrypt_keys`` key, as coderd does at start with its
    primary key (the next number; nothing when it is active already, or revoked: coderd
    refuses to start with a revoked key rather than register it again)."""
    cipher = Cipher(key)
    async with conn.transaction():
        await conn.execute("LOCK TABLE dbcrypt_keys IN SHARE ROW EXCLUSIVE MODE")
        await conn.execute(
            _REGISTER_KEY,
            {"digest": cipher.digest, "test": cipher.encrypt(DBCRYPT_TEST_VALUE)},
        )


def prepare_coder_database(dsn: str, keys: Sequence[bytes] = (), release: str = "v2.36") -> None:
    """Coder's database at ``dsn`` as coderd ``release`` leaves it with ``keys`` configured
    (the first is its primary: the one registered). Idempotent; a blocking call."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_ID,))
            conn.execute(coder_ddl(release))
            conn.execute(_RECORD_MIGRATION, (CREATE_RELEASES[release],))
        if keys:
            cipher = Cipher(keys[0])
            with conn.transaction():
                conn.execute("LOCK TABLE dbcrypt_keys IN SHARE ROW EXCLUSIVE MODE")
                conn.execute(
                    _REGISTER_KEY,
                    {"digest": cipher.digest, "test": cipher.encrypt(DBCRYPT_TEST_VALUE)},
                )
