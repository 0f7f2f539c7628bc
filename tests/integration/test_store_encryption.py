"""Key continuity with coderd (fail closed) and re-encryption of rows under old keys."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from aigateway_operator.config import Settings
from aigateway_operator.store import (
    BedrockSettings,
    DesiredProvider,
    EncryptionKeyMismatch,
    OwnerRef,
    PlaintextRefused,
    ProviderType,
    Store,
    UnknownKeyReference,
    generate_gateway_secret,
)
from aigateway_operator.store.cipher import Cipher, key_digest
from tests.support.db import table_versions
from tests.support.store import STORE_KEY_A, STORE_KEY_B, STORE_KEY_C, b64

pytestmark = pytest.mark.integration

OWNER = OwnerRef(kind="AIProvider", namespace="ns", name="p", instance="test", uid="uid-enc")
KEYS = ("sk-first-key-0000000000", "sk-second-key-000000000")
DESIRED = DesiredProvider(name="openai", type=ProviderType.OPENAI, api_keys=KEYS)
BEDROCK = DesiredProvider(
    name="bedrock",
    type=ProviderType.BEDROCK,
    bedrock=BedrockSettings(region="us-east-1", access_key="AKIAX", access_key_secret="sek"),
)


async def count(conn: psycopg.AsyncConnection[Any], table: str) -> int:
    cur = await conn.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - test constant
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def key_ids(conn: psycopg.AsyncConnection[Any]) -> set[str | None]:
    cur = await conn.execute(
        "SELECT settings_key_id FROM ai_providers WHERE settings IS NOT NULL "
        "UNION ALL SELECT api_key_key_id FROM ai_provider_keys"
    )
    return {r[0] for r in await cur.fetchall()}


async def test_the_key_coderd_registered_is_proven_not_registered_again(
    store: Store, store_settings: Callable[..., Settings], store_db: psycopg.AsyncConnection[Any]
) -> None:
    """The environment registers key A as coderd does (``coder_schema``); the store proves it
    and opening again adds nothing."""
    second = await Store.open(store_settings(coderd=False))
    await second.close()
    cur = await store_db.execute("SELECT number, active_key_digest, test FROM dbcrypt_keys")
    rows = await cur.fetchall()
    assert len(rows) == 1
    number, digest, test = rows[0]
    assert (number, digest) == (1, key_digest(STORE_KEY_A))
    assert Cipher(STORE_KEY_A).decrypt(test) == b"coder"
    assert store.key_status.active_digests == (key_digest(STORE_KEY_A),)


async def test_the_store_never_inserts_a_key_and_fails_closed(
    store: Store, store_settings: Callable[..., Settings], store_dsn: str
) -> None:
    """coderd has key A; the operator is given key B: refuse, name digests, write nothing."""
    await store.upsert_provider(DESIRED, OWNER)  # something there to be touched
    before = table_versions(store_dsn)
    with pytest.raises(EncryptionKeyMismatch) as info:
        await Store.open(store_settings(keys=[STORE_KEY_B], coderd=False))
    text = str(info.value)
    assert key_digest(STORE_KEY_B) in text
    assert key_digest(STORE_KEY_A) in text
    assert "nothing was written" in text
    assert table_versions(store_dsn) == before  # not a row of any table the operator writes


async def test_same_digest_different_key_is_refused(
    store: Store, store_settings: Callable[..., Settings], store_db: psycopg.AsyncConnection[Any]
) -> None:
    # Forge the test column: the digest row claims our key but was written with another.
    await store_db.execute(
        "UPDATE dbcrypt_keys SET test = %s", (Cipher(STORE_KEY_C).encrypt(b"coder"),)
    )
    with pytest.raises(EncryptionKeyMismatch, match="different key"):
        await Store.open(store_settings(coderd=False))


async def test_revoked_primary_is_refused(
    store: Store, store_settings: Callable[..., Settings], store_db: psycopg.AsyncConnection[Any]
) -> None:
    await store_db.execute(
        "UPDATE dbcrypt_keys SET revoked_key_digest = active_key_digest, "
        "active_key_digest = NULL, revoked_at = now()"
    )
    with pytest.raises(EncryptionKeyMismatch, match="revoked"):
        await Store.open(store_settings())


async def test_key_revoked_after_start_stops_writes(
    store: Store, store_db: psycopg.AsyncConnection[Any], store_dsn: str
) -> None:
    await store_db.execute(
        "UPDATE dbcrypt_keys SET revoked_key_digest = active_key_digest, "
        "active_key_digest = NULL, revoked_at = now()"
    )
    before = table_versions(store_dsn)
    with pytest.raises(EncryptionKeyMismatch) as info:
        await store.upsert_provider(DESIRED, OWNER)
    assert key_digest(STORE_KEY_A) in str(info.value)
    assert all(k not in str(info.value) for k in KEYS)
    assert table_versions(store_dsn) == before  # no provider, key, audit or ownership row


async def test_rows_are_encrypted_as_coderd_reads_them(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    await store.upsert_provider(BEDROCK, OWNER)
    cur = await store_db.execute("SELECT settings, settings_key_id FROM ai_providers")
    settings, key_id = await cur.fetchone()  # type: ignore[misc]
    assert key_id == key_digest(STORE_KEY_A)
    plain = Cipher(STORE_KEY_A).decrypt(settings).decode()
    assert plain.startswith('{"_type":"bedrock","_version":1,"access_key":"AKIAX"')
    assert "AKIAX" not in settings


async def test_old_key_rows_are_reencrypted_on_next_write_without_notify(
    store: Store, store_settings: Callable[..., Settings], store_db: psycopg.AsyncConnection[Any]
) -> None:
    await store.upsert_provider(DESIRED, OWNER)
    bed_owner = OwnerRef(
        kind="AIProvider", namespace="ns", name="bedrock", instance="test", uid="uid-bedrock"
    )
    await store.upsert_provider(BEDROCK, bed_owner)
    assert await key_ids(store_db) == {key_digest(STORE_KEY_A)}
    cur = await store_db.execute("SELECT updated_at FROM ai_providers ORDER BY name")
    stamps = await cur.fetchall()

    # Rotation: B becomes primary, A still decrypts (coderd: CODER_EXTERNAL_..._KEYS=B,A).
    rotated = await Store.open(store_settings(keys=[STORE_KEY_B, STORE_KEY_A]))
    try:
        await store_db.execute("LISTEN ai_providers_changed")
        r1 = await rotated.upsert_provider(DESIRED, OWNER)
        r2 = await rotated.upsert_provider(BEDROCK, bed_owner)
        assert (r1.action, r2.action) == ("unchanged", "unchanged")
        assert r1.reencrypted
        assert r2.reencrypted
        assert not r1.notified
        assert {k.key_id for k in r1.keys} == {key_digest(STORE_KEY_B)}
        assert r2.settings_key_id == key_digest(STORE_KEY_B)
        assert await key_ids(store_db) == {key_digest(STORE_KEY_B)}
        cur = await store_db.execute("SELECT updated_at FROM ai_providers ORDER BY name")
        assert await cur.fetchall() == stamps
        got = await rotated.get_provider(OWNER)
        assert got is not None
        assert tuple(k.value for k in got.keys) == KEYS
        # Next call is a true no-op again.
        r3 = await rotated.upsert_provider(DESIRED, OWNER)
        assert not r3.reencrypted
        # A marker notify proves no notify was queued by the re-encryption.
        await store_db.execute("NOTIFY ai_providers_changed, 'marker'")
        payloads = [n.payload async for n in store_db.notifies(timeout=5, stop_after=1)]
        assert payloads == ["marker"]
    finally:
        await rotated.close()


async def test_plaintext_rows_get_encrypted_once_keys_are_configured(
    store_settings: Callable[..., Settings], store_db: psycopg.AsyncConnection[Any]
) -> None:
    plain = await Store.open(store_settings(keys=[], allow_plaintext=True))
    try:
        assert plain.primary_key_digest is None
        await plain.upsert_provider(DESIRED, OWNER)
    finally:
        await plain.close()
    cur = await store_db.execute("SELECT api_key, api_key_key_id FROM ai_provider_keys")
    assert {r[0] for r in await cur.fetchall()} == set(KEYS)  # coderd-without-keys shape
    enc = await Store.open(store_settings(keys=[STORE_KEY_A]))
    try:
        result = await enc.upsert_provider(DESIRED, OWNER)
        assert result.action == "unchanged"
        assert result.reencrypted
    finally:
        await enc.close()
    cur = await store_db.execute("SELECT api_key, api_key_key_id FROM ai_provider_keys")
    rows = await cur.fetchall()
    assert {r[1] for r in rows} == {key_digest(STORE_KEY_A)}
    assert not {r[0] for r in rows} & set(KEYS)


async def test_rows_under_an_unknown_key_fail_closed(
    store: Store, store_settings: Callable[..., Settings], store_dsn: str
) -> None:
    await store.upsert_provider(DESIRED, OWNER)
    before = table_versions(store_dsn)
    only_b = await Store.open(store_settings(keys=[STORE_KEY_B]))
    try:
        changed = DesiredProvider(name="openai", type=ProviderType.OPENAI, api_keys=KEYS[:1])
        with pytest.raises(UnknownKeyReference) as info:
            await only_b.upsert_provider(changed, OWNER)
        assert info.value.digest == key_digest(STORE_KEY_A)
    finally:
        await only_b.close()
    after = table_versions(store_dsn)
    # coderd registering key B (the fixture plays it: one new dbcrypt_keys row, the old one
    # untouched) is the only change; the refused write changed nothing anywhere.
    assert set(before["dbcrypt_keys"]) < set(after["dbcrypt_keys"])
    assert len(after["dbcrypt_keys"]) == len(before["dbcrypt_keys"]) + 1
    del before["dbcrypt_keys"], after["dbcrypt_keys"]
    assert after == before


# --- no plaintext by accident ---------------------------------------------------------------


async def test_without_keys_and_without_choosing_plaintext_the_store_does_not_start(
    store_settings: Callable[..., Settings], store_db: psycopg.AsyncConnection[Any]
) -> None:
    with pytest.raises(PlaintextRefused) as info:
        await Store.open(store_settings(keys=[]))
    text = str(info.value)
    assert "AIGW_ALLOW_PLAINTEXT=true" in text
    assert "AIGW_ENCRYPTION_KEYS" in text
    assert "coderd has no active dbcrypt key" in text
    assert await count(store_db, "ai_providers") == 0


async def test_without_keys_while_coderd_encrypts_the_store_does_not_start(
    store: Store, store_settings: Callable[..., Settings]
) -> None:
    """coderd has key A active (the ``store`` fixture registered it, as coderd does)."""
    with pytest.raises(PlaintextRefused) as info:
        await Store.open(store_settings(keys=[], coderd=False))
    text = str(info.value) + repr(info.value)
    assert info.value.active_digests == (key_digest(STORE_KEY_A),)
    assert key_digest(STORE_KEY_A) in text
    assert "AIGW_ENCRYPTION_KEYS" in text
    assert b64(STORE_KEY_A) not in text  # digests, never keys


async def test_choosing_plaintext_never_writes_a_secret_while_coderd_encrypts(
    store: Store, store_settings: Callable[..., Settings], store_db: psycopg.AsyncConnection[Any]
) -> None:
    plain = await Store.open(store_settings(keys=[], coderd=False, allow_plaintext=True))
    try:
        before = await count(store_db, "ai_providers")
        for desired in (DESIRED, BEDROCK):
            with pytest.raises(PlaintextRefused) as info:
                await plain.upsert_provider(
                    desired,
                    OwnerRef(
                        kind="AIProvider",
                        namespace="ns",
                        name=f"{desired.name}",
                        instance="test",
                        uid=f"uid-{desired.name}",
                    ),
                )
            assert key_digest(STORE_KEY_A) in str(info.value)
            assert all(k not in str(info.value) for k in KEYS)
        assert await count(store_db, "ai_providers") == before
        assert await count(store_db, "ai_provider_keys") == 0
        # What holds no secret is still written: a Copilot provider, a gateway key.
        copilot = DesiredProvider(name="copilot", type=ProviderType.COPILOT)
        assert (await plain.upsert_provider(copilot, OWNER)).action == "created"
        kid, secret = uuid.uuid4(), generate_gateway_secret()
        await plain.begin_gateway_key(OWNER, kid, "gw", secret, rotating=False)
        assert (await plain.complete_gateway_key(OWNER, kid, "gw", secret)).created
    finally:
        await plain.close()


async def test_a_key_coderd_registers_after_a_plaintext_start_stops_plaintext_writes(
    store_settings: Callable[..., Settings], store_db: psycopg.AsyncConnection[Any]
) -> None:
    plain = await Store.open(store_settings(keys=[], allow_plaintext=True))
    try:
        assert (await plain.upsert_provider(DESIRED, OWNER)).action == "created"
        # coderd starts with CODER_EXTERNAL_TOKEN_ENCRYPTION_KEYS and registers its key.
        await store_db.execute(
            "INSERT INTO dbcrypt_keys (number, active_key_digest, test) VALUES (1, %s, %s)",
            (key_digest(STORE_KEY_B), Cipher(STORE_KEY_B).encrypt(b"coder")),
        )
        more = DesiredProvider(name="openai", type=ProviderType.OPENAI, api_keys=(*KEYS, "sk-3"))
        with pytest.raises(PlaintextRefused, match=key_digest(STORE_KEY_B)):
            await plain.upsert_provider(more, OWNER)
        assert await count(store_db, "ai_provider_keys") == len(KEYS)
    finally:
        await plain.close()


async def test_plaintext_settings_and_keys_we_own_get_encrypted_once_keys_are_given(
    store_settings: Callable[..., Settings], store_db: psycopg.AsyncConnection[Any]
) -> None:
    plain = await Store.open(store_settings(keys=[], allow_plaintext=True))
    bed_owner = OwnerRef(
        kind="AIProvider", namespace="ns", name="bedrock", instance="test", uid="uid-bedrock"
    )
    try:
        await plain.upsert_provider(DESIRED, OWNER)
        await plain.upsert_provider(BEDROCK, bed_owner)
    finally:
        await plain.close()
    assert await key_ids(store_db) == {None}  # coderd-without-keys shape: NULL key ids
    enc = await Store.open(store_settings(keys=[STORE_KEY_A]))
    try:
        for desired, owner in ((DESIRED, OWNER), (BEDROCK, bed_owner)):
            r = await enc.upsert_provider(desired, owner)
            assert (r.action, r.reencrypted, r.notified) == ("unchanged", True, False)
        assert await key_ids(store_db) == {key_digest(STORE_KEY_A)}
        cur = await store_db.execute("SELECT settings FROM ai_providers WHERE settings IS NOT NULL")
        (settings,) = await cur.fetchone()  # type: ignore[misc]
        assert "AKIAX" not in settings
        assert Cipher(STORE_KEY_A).decrypt(settings).startswith(b'{"_type":"bedrock"')
        got = await enc.get_provider(bed_owner)
        assert got is not None
        assert got.bedrock is not None
        assert got.bedrock.access_key == "AKIAX"
    finally:
        await enc.close()
