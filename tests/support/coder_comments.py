"""The comments coderd's schema carries on the objects ``tools/devenv/coder_schema.py`` builds.

Written down from coder/coder (``coderd/database/migrations/`` and ``dump.sql``) for the
tests, on purpose apart from ``tools.devenv.coder_schema.CODER_COMMENTS``: a test that
compared the created schema with the constants that created it would prove nothing.

Keys are ``("table", name)``, ``("column", "table.column")`` or ``("type", name)``; an object
missing here has no comment in coderd's schema (``audit_logs``, ``resource_type``,
``ai_provider_type``, ``ai_providers.icon``, ``ai_gateway_keys.last_heartbeat_at``, ...).
"""

from __future__ import annotations

CommentKey = tuple[str, str]

#: 000154_dbcrypt_key_ids.
_DBCRYPT: dict[CommentKey, str] = {
    ("table", "dbcrypt_keys"): "A table used to store the keys used to encrypt the database.",
    ("column", "dbcrypt_keys.number"): "An integer used to identify the key.",
    ("column", "dbcrypt_keys.active_key_digest"): (
        "If the key is active, the digest of the active key."
    ),
    ("column", "dbcrypt_keys.revoked_key_digest"): (
        "If the key has been revoked, the digest of the revoked key."
    ),
    ("column", "dbcrypt_keys.created_at"): "The time at which the key was created.",
    ("column", "dbcrypt_keys.revoked_at"): "The time at which the key was revoked.",
    ("column", "dbcrypt_keys.test"): "A column used to test the encryption.",
}

#: 000334_connection_logs: the audit actions connection logs replaced.
_AUDIT: dict[CommentKey, str] = {
    ("type", "audit_action"): (
        "NOTE: `connect`, `disconnect`, `open`, and `close` are deprecated and no longer "
        "used - these events are now tracked in the connection_logs table."
    ),
}

#: 000495_ai_providers.
_PROVIDERS: dict[CommentKey, str] = {
    ("table", "ai_providers"): (
        "Runtime configuration for AI providers. Authoritative source for the provider set "
        "served by aibridged. Replaces deployment-time CODER_AIBRIDGE_* environment variables."
    ),
    ("column", "ai_providers.settings"): (
        "Encrypted JSON blob holding type-specific configuration (e.g. AWS Bedrock region, "
        "model, access key secret). Plaintext is a JSON object. NULL when no type-specific "
        "settings are required."
    ),
    ("column", "ai_providers.settings_key_id"): (
        "The ID of the key used to encrypt settings. If this is NULL, settings is not encrypted."
    ),
    ("column", "ai_providers.deleted"): (
        "Soft delete flag. Soft-deleted rows are preserved for audit and FK history but do "
        "not block name reuse by future live rows."
    ),
    ("column", "ai_providers.display_name"): (
        "Optional human-readable label. When NULL, callers should fall back to name."
    ),
    ("table", "ai_provider_keys"): (
        "API keys associated with AI providers. Bedrock providers have zero keys (they "
        "authenticate via settings). OpenAI and Anthropic providers have one or more keys "
        "for failover."
    ),
    ("column", "ai_provider_keys.api_key"): (
        "API key used to authenticate with the upstream AI provider. Encrypted at rest via "
        "dbcrypt when api_key_key_id is set."
    ),
    ("column", "ai_provider_keys.api_key_key_id"): (
        "The ID of the key used to encrypt the provider API key. If this is NULL, the API "
        "key is not encrypted."
    ),
}

#: 000514_ai_gateway_keys (Coder v2.35 and later).
_GATEWAY_KEYS: dict[CommentKey, str] = {
    ("table", "ai_gateway_keys"): (
        "Hashed bearer secrets used by AI Gateway standalone replicas to authenticate into coderd."
    ),
    ("column", "ai_gateway_keys.secret_prefix"): (
        "Public token prefix for display and audit correlation. Auth uses hashed_secret."
    ),
}

#: Every comment in Coder's schema on the objects ``coder_schema`` builds, per Coder release.
CODER_COMMENTS_BY_RELEASE: dict[str, dict[CommentKey, str]] = {
    "v2.34": {**_DBCRYPT, **_AUDIT, **_PROVIDERS},
    "v2.35": {**_DBCRYPT, **_AUDIT, **_PROVIDERS, **_GATEWAY_KEYS},
    "v2.36": {**_DBCRYPT, **_AUDIT, **_PROVIDERS, **_GATEWAY_KEYS},
}

#: Every comment on a table, a column of a table or a type in Coder's schema
#: (``current_schema()``), as ``(kind, name, text)``.
COMMENTS_QUERY = """
SELECT 'table', c.relname, obj_description(c.oid, 'pg_class')
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND obj_description(c.oid, 'pg_class') IS NOT NULL
UNION ALL
SELECT 'column', c.relname || '.' || a.attname, col_description(c.oid, a.attnum)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND a.attnum > 0
  AND NOT a.attisdropped AND col_description(c.oid, a.attnum) IS NOT NULL
UNION ALL
SELECT 'type', t.typname, obj_description(t.oid, 'pg_type')
FROM pg_type t
JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = current_schema() AND obj_description(t.oid, 'pg_type') IS NOT NULL
"""
