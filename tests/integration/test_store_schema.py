"""Coder's schema on a real Postgres 15, as the environment builds it for each Coder release
(``tools/devenv/coder_schema.py``) and as the store verifies it: shapes, capabilities."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from aigateway_operator.config import Settings
from aigateway_operator.store import (
    BedrockSettings,
    DesiredProvider,
    InvalidProvider,
    NotSupportedByCoder,
    OwnerRef,
    ProviderType,
    SchemaMismatch,
    Store,
    StoreUnavailable,
    generate_gateway_secret,
)
from aigateway_operator.store.cipher import Cipher
from tests.support.coder_comments import CODER_COMMENTS_BY_RELEASE, COMMENTS_QUERY
from tests.support.store import STORE_KEY_A, fetch

pytestmark = pytest.mark.integration


async def test_create_is_idempotent_and_passes_verify(
    store_settings: Callable[..., Settings], store_db: psycopg.AsyncConnection[Any]
) -> None:
    for _ in range(2):
        s = await Store.open(store_settings())
        await s.close()
    s = await Store.open(store_settings(coderd=False))
    try:
        caps = await s.check_schema()
        assert (caps.has_icon, caps.has_heartbeat, caps.has_audit) == (True, True, True)
        assert s.coder_version.migration == 551
        assert s.coder_version.release.label == "v2.36"
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


async def test_verify_on_a_database_without_schema_migrations_says_so(
    store_settings: Callable[..., Settings],
) -> None:
    with pytest.raises(SchemaMismatch) as info:
        await Store.open(store_settings(coderd=False))
    assert "table schema_migrations (Coder's schema migration version)" in str(info.value)


async def test_verify_on_an_empty_v236_database_lists_everything(
    store_settings: Callable[..., Settings], store_db: psycopg.AsyncConnection[Any]
) -> None:
    await store_db.execute(
        "CREATE TABLE schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL)"
    )
    await store_db.execute("INSERT INTO schema_migrations VALUES (551, false)")
    with pytest.raises(SchemaMismatch) as info:
        await Store.open(store_settings(coderd=False))
    text = str(info.value)
    for item in (
        "table dbcrypt_keys",
        "table ai_providers",
        "table ai_gateway_keys",
        "enum value ai_provider_type.copilot",
        "unique index ai_providers_name_unique",
        "Coder v2.36 (schema migration 000551)",
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
        # v2.36 has the icon column (000539): its absence is a mismatch, not a capability.
        ("ALTER TABLE ai_providers DROP COLUMN icon", "column ai_providers.icon (text)"),
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
        await Store.open(store_settings(coderd=False))
    assert listed in str(info.value)
    assert any(listed in m for m in info.value.missing)


async def test_audit_logs_are_optional(
    store: Store, store_settings: Callable[..., Settings], store_db: psycopg.AsyncConnection[Any]
) -> None:
    await store_db.execute("DROP TABLE audit_logs")
    s = await Store.open(store_settings(coderd=False))
    try:
        assert not s.capabilities.has_audit
        r = await s.upsert_provider(
            DesiredProvider(name="p", type=ProviderType.OPENAI, api_keys=("sk-1",)),
            OwnerRef(kind="AIProvider", namespace="ns", name="a", instance="test", uid="uid-a"),
        )
        assert (r.action, r.audited) == ("created", False)
    finally:
        await s.close()


@pytest.mark.parametrize(
    ("version", "icon", "gateway_keys", "heartbeat"),
    [
        ("v2.34", False, False, False),
        ("v2.35", False, True, True),
        ("v2.36", True, True, True),
    ],
)
async def test_create_builds_the_shape_of_each_coder_version(
    store_settings: Callable[..., Settings],
    store_db: psycopg.AsyncConnection[Any],
    version: str,
    icon: bool,
    gateway_keys: bool,
    heartbeat: bool,
) -> None:
    created = await Store.open(store_settings(release=version))
    await created.close()
    rows = await fetch(
        store_db,
        "SELECT to_regclass('ai_gateway_keys') IS NOT NULL, EXISTS (SELECT 1 FROM "
        "information_schema.columns WHERE table_name = 'ai_providers' AND column_name = 'icon')",
    )
    assert rows == [(gateway_keys, icon)]
    # The same database in production mode: the version decides what is required.
    s = await Store.open(store_settings(coderd=False))
    try:
        caps = s.capabilities
        assert s.coder_version.release.label == version
        assert not s.coder_version.newer_than_known
        assert (caps.has_icon, caps.has_gateway_keys, caps.has_heartbeat) == (
            icon,
            gateway_keys,
            heartbeat,
        )
        assert caps.has_audit
        desired = DesiredProvider(
            name="p", type=ProviderType.OPENAI, api_keys=("sk-1",), icon="/i.svg"
        )
        assert (
            await s.upsert_provider(
                desired,
                OwnerRef(kind="AIProvider", namespace="ns", name="v", instance="test", uid="uid-v"),
            )
        ).action == "created"
        assert (
            await s.upsert_provider(
                desired,
                OwnerRef(kind="AIProvider", namespace="ns", name="v", instance="test", uid="uid-v"),
            )
        ).action == "unchanged"
    finally:
        await s.close()


@pytest.mark.parametrize("version", sorted(CODER_COMMENTS_BY_RELEASE))
async def test_create_writes_the_comments_coderds_schema_has(
    store_settings: Callable[..., Settings],
    store_db: psycopg.AsyncConnection[Any],
    version: str,
) -> None:
    """pg_description of a created schema equals coderd's for each release: every table,
    column and type comment its migrations write, none they do not (twice: idempotent)."""
    for _ in range(2):
        created = await Store.open(store_settings(release=version))
        await created.close()
        rows = await fetch(store_db, COMMENTS_QUERY)
        assert {(kind, name): text for kind, name, text in rows} == (
            CODER_COMMENTS_BY_RELEASE[version]
        )


async def test_verify_does_not_require_coderds_comments(
    store: Store, store_settings: Callable[..., Settings], store_db: psycopg.AsyncConnection[Any]
) -> None:
    for kind, name, _ in await fetch(store_db, COMMENTS_QUERY):
        await store_db.execute(f"COMMENT ON {kind.upper()} {name} IS NULL")  # type: ignore[arg-type]
    assert await fetch(store_db, COMMENTS_QUERY) == []
    s = await Store.open(store_settings(coderd=False))
    await s.close()


async def test_coder_v234_has_no_gateway_keys_and_no_role_arn(
    store_settings: Callable[..., Settings],
) -> None:
    s = await Store.open(store_settings(release="v2.34"))
    try:
        with pytest.raises(NotSupportedByCoder, match=r"v2\.35 or later.*v2\.34"):
            await s.begin_gateway_key(
                OwnerRef(kind="AIGatewayCoderdKey", namespace="ns", name="g", instance="test"),
                uuid.uuid4(),
                "gw",
                generate_gateway_secret(),
                rotating=False,
            )
        with pytest.raises(InvalidProvider, match=r"roleARN is not supported by Coder v2\.34"):
            await s.upsert_provider(
                DesiredProvider(
                    name="b",
                    type=ProviderType.BEDROCK,
                    bedrock=BedrockSettings(
                        region="us-east-1", role_arn="arn:aws:iam::123456789012:role/R"
                    ),
                ),
                OwnerRef(kind="AIProvider", namespace="ns", name="b", instance="test", uid="uid-b"),
            )
    finally:
        await s.close()


async def test_coder_v235_gets_only_the_settings_fields_it_reads(
    store_settings: Callable[..., Settings], store_db: psycopg.AsyncConnection[Any]
) -> None:
    """v2.35 reads role_arn but not external_id or protocol: no external id is generated,
    ``invoke-model`` (the default) is left out, ``mantle`` is refused."""
    s = await Store.open(store_settings(release="v2.35"))
    role = "arn:aws:iam::123456789012:role/R"
    try:
        r = await s.upsert_provider(
            DesiredProvider(
                name="b",
                type=ProviderType.BEDROCK,
                bedrock=BedrockSettings(region="us-east-1", role_arn=role, protocol="invoke-model"),
            ),
            OwnerRef(kind="AIProvider", namespace="ns", name="b", instance="test", uid="uid-b"),
        )
        assert r.action == "created"
        with pytest.raises(InvalidProvider, match=r"protocol is not supported by Coder v2\.35"):
            await s.upsert_provider(
                DesiredProvider(
                    name="m",
                    type=ProviderType.BEDROCK,
                    base_url="https://bedrock-mantle.us-east-1.api.aws/anthropic",
                    bedrock=BedrockSettings(region="us-east-1", protocol="mantle"),
                ),
                OwnerRef(kind="AIProvider", namespace="ns", name="m", instance="test", uid="uid-m"),
            )
    finally:
        await s.close()
    ((blob,),) = await fetch(store_db, "SELECT settings FROM ai_providers")
    stored = json.loads(Cipher(STORE_KEY_A).decrypt(blob))
    assert set(stored) == {"_type", "_version", "region", "role_arn", "model", "small_fast_model"}


@pytest.mark.parametrize(
    ("version", "dirty", "named"),
    [
        (494, False, "Coder v2.33 or older (schema migration 000494)"),
        (500, False, "development build before v2.34 (schema migration 000500)"),
        (551, True, "Coder v2.36 (schema migration 000551) is marked dirty"),
    ],
)
async def test_a_coder_older_than_supported_or_dirty_refuses_to_start(
    store: Store,
    store_settings: Callable[..., Settings],
    store_db: psycopg.AsyncConnection[Any],
    version: int,
    dirty: bool,
    named: str,
) -> None:
    await store_db.execute(
        "UPDATE schema_migrations SET version = %s, dirty = %s", (version, dirty)
    )
    with pytest.raises(SchemaMismatch) as info:
        await Store.open(store_settings(coderd=False))
    assert named in str(info.value)


async def test_a_newer_coder_starts_warns_once_and_writes_what_it_knows(
    store: Store,
    store_settings: Callable[..., Settings],
    store_db: psycopg.AsyncConnection[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A future Coder: a later migration, a column and an enum label we do not know.
    await store_db.execute("UPDATE schema_migrations SET version = 612")
    await store_db.execute("ALTER TABLE ai_providers ADD COLUMN future_flag boolean DEFAULT true")
    await store_db.execute("ALTER TYPE ai_provider_type ADD VALUE 'bedrock-mantle'")
    caplog.set_level(logging.WARNING, logger="aigateway_operator.store.core")
    s = await Store.open(store_settings(coderd=False))
    try:
        assert s.coder_version.newer_than_known
        assert s.coder_version.migration == 612
        desired = DesiredProvider(name="p", type=ProviderType.OPENAI, api_keys=("sk-1",))
        assert (
            await s.upsert_provider(
                desired,
                OwnerRef(kind="AIProvider", namespace="ns", name="n", instance="test", uid="uid-n"),
            )
        ).action == "created"
        assert (
            await s.upsert_provider(
                desired,
                OwnerRef(kind="AIProvider", namespace="ns", name="n", instance="test", uid="uid-n"),
            )
        ).action == "unchanged"
        await s.check_schema()
    finally:
        await s.close()
    warnings = [r.getMessage() for r in caplog.records if "newer than any Coder" in r.getMessage()]
    assert len(warnings) == 1
    assert "000612" in warnings[0]


async def test_unreachable_database_is_retryable_and_hides_password(
    store_settings: Callable[..., Settings],
) -> None:
    good = store_settings()
    dsn = good.require_database_url()
    password = dsn.split(":")[2].split("@")[0]
    bad = Settings(
        database_url=dsn.replace(dsn.split("@")[1].split("/")[0], "127.0.0.1:1"),
        connect_timeout_s=2,
    )
    with pytest.raises(StoreUnavailable) as info:
        await Store.open(bad)
    assert info.value.retryable
    assert password not in str(info.value)
