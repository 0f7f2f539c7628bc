"""Schema create/verify on a real Postgres 15, and capability detection."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from aigateway_operator.config import Settings
from aigateway_operator.store import SchemaMismatch, Store, StoreUnavailable

pytestmark = pytest.mark.integration


async def test_create_is_idempotent_and_passes_verify(
    store_settings: Callable[..., Settings], store_db: psycopg.AsyncConnection[Any]
) -> None:
    for _ in range(2):
        s = await Store.open(store_settings(mode="create"))
        await s.close()
    s = await Store.open(store_settings(mode="verify"))
    try:
        caps = await s.check_schema()
        assert (caps.has_icon, caps.has_heartbeat, caps.has_audit) == (True, True, True)
    finally:
        await s.close()
    cur = await store_db.execute(
        "SELECT enum_range(NULL::ai_provider_type)::text, (SELECT count(*) FROM dbcrypt_keys)"
    )
    assert await cur.fetchone() == (
        "{openai,anthropic,azure,bedrock,google,openai-compat,openrouter,vercel,copilot}",
        1,
    )


async def test_created_constraints_behave_like_coders(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    await store_db.execute(
        "INSERT INTO ai_providers (type, name, base_url, deleted) VALUES ('openai', 'x', 'u', true)"
    )
    # The partial unique index lets a live row reuse a soft-deleted name, but not a live one.
    await store_db.execute(
        "INSERT INTO ai_providers (type, name, base_url) VALUES ('openai', 'x', 'u')"
    )
    with pytest.raises(psycopg.errors.UniqueViolation):
        await store_db.execute(
            "INSERT INTO ai_providers (type, name, base_url) VALUES ('openai', 'x', 'u')"
        )
    with pytest.raises(psycopg.errors.CheckViolation):
        await store_db.execute(
            "INSERT INTO ai_providers (type, name, base_url) VALUES ('openai', 'Bad', 'u')"
        )
    with pytest.raises(psycopg.errors.CheckViolation):
        await store_db.execute(
            "INSERT INTO ai_gateway_keys (id, created_at, name, secret_prefix, hashed_secret) "
            "VALUES (gen_random_uuid(), now(), %s, 'abcdefghijk', '\\x01')",
            ("a" * 65,),
        )


async def test_verify_on_an_empty_database_lists_everything(
    store_settings: Callable[..., Settings],
) -> None:
    with pytest.raises(SchemaMismatch) as info:
        await Store.open(store_settings(mode="verify"))
    text = str(info.value)
    for item in (
        "table dbcrypt_keys",
        "table ai_providers",
        "table ai_gateway_keys",
        "enum value ai_provider_type.copilot",
        "unique index ai_providers_name_unique",
    ):
        assert item in text


@pytest.mark.parametrize(
    ("ddl", "listed"),
    [
        (
            "ALTER TABLE ai_provider_keys DROP COLUMN api_key_key_id",
            "column ai_provider_keys.api_key_key_id",
        ),
        ("ALTER TABLE ai_providers DROP COLUMN settings", "column ai_providers.settings (text)"),
        ("DROP INDEX ai_gateway_keys_name_idx", "unique index ai_gateway_keys_name_idx"),
        (
            "ALTER TABLE ai_providers DROP CONSTRAINT ai_providers_name_check",
            "constraint ai_providers_name_check",
        ),
    ],
)
async def test_verify_refuses_a_schema_missing_something(
    store: Store,
    store_settings: Callable[..., Settings],
    store_db: psycopg.AsyncConnection[Any],
    ddl: str,
    listed: str,
) -> None:
    await store_db.execute(ddl)
    with pytest.raises(SchemaMismatch) as info:
        await Store.open(store_settings(mode="verify"))
    assert listed in str(info.value)
    assert listed in info.value.missing[0] or any(listed in m for m in info.value.missing)


async def test_optional_columns_and_audit_are_detected(
    store: Store, store_settings: Callable[..., Settings], store_db: psycopg.AsyncConnection[Any]
) -> None:
    # coderd v2.35.x: no icon column; v2.34-like audit absence also tolerated.
    await store_db.execute("ALTER TABLE ai_providers DROP COLUMN icon")
    await store_db.execute("ALTER TABLE ai_gateway_keys DROP COLUMN last_heartbeat_at")
    await store_db.execute("DROP TABLE audit_logs")
    s = await Store.open(store_settings(mode="verify"))
    try:
        assert (s.capabilities.has_icon, s.capabilities.has_heartbeat) == (False, False)
        assert not s.capabilities.has_audit
    finally:
        await s.close()


async def test_verify_creates_only_our_side_table(
    store: Store, store_settings: Callable[..., Settings], store_db: psycopg.AsyncConnection[Any]
) -> None:
    await store_db.execute("DROP TABLE aigw_owned_rows")
    s = await Store.open(store_settings(mode="verify"))
    await s.close()
    cur = await store_db.execute("SELECT to_regclass('aigw_owned_rows') IS NOT NULL")
    assert await cur.fetchone() == (True,)


async def test_unreachable_database_is_retryable_and_hides_password(
    store_settings: Callable[..., Settings],
) -> None:
    good = store_settings()
    dsn = good.require_database_url()
    password = dsn.split(":")[2].split("@")[0]
    bad = Settings(
        database_url=dsn.replace(dsn.split("@")[1].split("/")[0], "127.0.0.1:1"),
        schema_mode="create",
        connect_timeout_s=2,
    )
    with pytest.raises(StoreUnavailable) as info:
        await Store.open(bad)
    assert info.value.retryable
    assert password not in str(info.value)
