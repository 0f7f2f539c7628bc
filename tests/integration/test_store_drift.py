"""Rows stay what the operator wrote: key-row and settings edits made in SQL are seen by the
cheap version check and by compare, and repaired by upsert; rows the operator does not
understand are reported and left alone (real Postgres 15)."""

from __future__ import annotations

import base64
import os
from typing import Any

import psycopg
import pytest

from aigateway_operator.masking import mask_secret
from aigateway_operator.store import (
    BedrockSettings,
    DesiredProvider,
    DifferenceKind,
    OwnerRef,
    ProviderResult,
    ProviderType,
    Store,
)
from aigateway_operator.store.cipher import Cipher
from tests.support.store import STORE_KEY_A, fetch, snapshot

pytestmark = pytest.mark.integration

OWNER = OwnerRef(kind="AIProvider", namespace="ns", name="p", instance="test", uid="uid-drift")
K1, K2, K3 = (f"sk-drift-{n}-0123456789abcdef" for n in ("one", "two", "three"))
CIPHER = Cipher(STORE_KEY_A)
INT1 = "coderd needs the integer 1"
STR = "coderd needs a string"


def openai(*keys: str) -> DesiredProvider:
    return DesiredProvider(name="openai", type=ProviderType.OPENAI, api_keys=keys)


BEDROCK = DesiredProvider(
    name="bedrock",
    type=ProviderType.BEDROCK,
    bedrock=BedrockSettings(region="us-east-1", access_key="AKIADRIFT", access_key_secret="sek"),
)


async def assert_seen_and_repaired(
    store: Store,
    desired: DesiredProvider,
    first: ProviderResult,
    kind: DifferenceKind,
    detail: str,
) -> ProviderResult:
    """The edit changed the row version, compare names it, upsert repairs it once."""
    seen = await store.provider_row_versions([first.provider_id])
    assert seen[first.provider_id] != first.version  # the cheap check notices
    check = await store.check_provider(desired, OWNER)
    assert check is not None
    assert [(d.kind, d.detail) for d in check.differences] == [(kind, detail)]
    assert not check.left_alone
    assert check.version == seen[first.provider_id]
    repaired = await store.upsert_provider(desired, OWNER)
    assert repaired.action == "updated"
    assert [(d.kind, d.detail) for d in repaired.differences] == [(kind, detail)]
    after = await store.check_provider(desired, OWNER)
    assert after is not None
    assert after.differences == ()
    # Our own repair leaves a version the cheap check recognises as ours.
    assert (await store.provider_row_versions([first.provider_id]))[first.provider_id] == (
        repaired.version
    )
    again = await store.upsert_provider(desired, OWNER)
    assert again.action == "unchanged"
    return repaired


async def test_a_deleted_key_row_is_seen_and_restored(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    first = await store.upsert_provider(openai(K1, K2), OWNER)
    await store_db.execute("DELETE FROM ai_provider_keys WHERE id = %s", (first.keys[1].id,))
    check = await store.check_provider(openai(K1, K2), OWNER)
    assert check is not None
    assert [str(d) for d in check.differences] == ["api_keys (1 stored, 2 desired)"]
    r = await assert_seen_and_repaired(
        store, openai(K1, K2), first, DifferenceKind.KEYS, "1 stored, 2 desired"
    )
    assert [k.masked for k in r.keys_added] == [mask_secret(K2)]
    got = await store.get_provider(OWNER)
    assert got is not None
    assert [k.value for k in got.keys] == [K1, K2]


async def test_another_validly_encrypted_key_swapped_in_is_seen_and_reverted(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    first = await store.upsert_provider(openai(K1, K2), OWNER)
    await store_db.execute(
        "UPDATE ai_provider_keys SET api_key = %s WHERE id = %s",
        (CIPHER.encrypt(K3.encode()), first.keys[0].id),
    )
    r = await assert_seen_and_repaired(
        store, openai(K1, K2), first, DifferenceKind.KEYS, "a value differs"
    )
    assert [k.masked for k in r.keys_removed] == [mask_secret(K3)]
    got = await store.get_provider(OWNER)
    assert got is not None
    assert [k.value for k in got.keys] == [K1, K2]


async def test_a_corrupt_ciphertext_is_seen_and_rewritten_instead_of_failing(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    first = await store.upsert_provider(openai(K1, K2), OWNER)
    broken = first.keys[1].id
    # Valid base64, right key id, but no valid GCM tag: coderd cannot decrypt it either.
    garbage = base64.b64encode(os.urandom(48)).decode()
    await store_db.execute(
        "UPDATE ai_provider_keys SET api_key = %s WHERE id = %s", (garbage, broken)
    )
    got = await store.get_provider(OWNER)  # reading never raises for it
    assert got is not None
    assert [d.kind for d in got.issues] == [DifferenceKind.KEY_UNDECRYPTABLE]
    r = await assert_seen_and_repaired(
        store,
        openai(K1, K2),
        first,
        DifferenceKind.KEY_UNDECRYPTABLE,
        f"row {broken} does not decrypt",
    )
    assert [(k.id, k.masked) for k in r.keys_removed] == [(broken, "")]
    got = await store.get_provider(OWNER)
    assert got is not None
    assert [k.value for k in got.keys] == [K1, K2]
    assert got.issues == ()


async def test_a_reordered_key_list_is_seen_and_restored(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    first = await store.upsert_provider(openai(K1, K2), OWNER)
    await store_db.execute(
        "UPDATE ai_provider_keys SET created_at = created_at - interval '1 hour' WHERE id = %s",
        (first.keys[1].id,),
    )
    await assert_seen_and_repaired(store, openai(K1, K2), first, DifferenceKind.KEYS, "order")


async def test_versions_move_only_with_writes(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    first = await store.upsert_provider(openai(K1), OWNER)
    assert first.version is not None
    pid = first.provider_id
    assert (await store.provider_row_versions([pid]))[pid] == first.version
    same = await store.upsert_provider(openai(K1), OWNER)
    assert same.version == first.version
    # A row lock (what our own passes take) is not a write.
    async with store_db.transaction():
        await store_db.execute("SELECT 1 FROM ai_providers FOR UPDATE")
        await store_db.execute("SELECT 1 FROM ai_provider_keys FOR UPDATE")
    assert (await store.provider_row_versions([pid]))[pid] == first.version
    changed = await store.upsert_provider(openai(K1, K2), OWNER)
    assert changed.version != first.version
    assert (await store.provider_row_versions([pid]))[pid] == changed.version
    deleted = await store.delete_provider(OWNER)
    assert deleted.action == "deleted"
    now = (await store.provider_row_versions([pid]))[pid]
    assert now.deleted
    assert now != changed.version


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        ('{"_type":"bedrock","_version":true}', "_version is a JSON bool, " + INT1),
        ('{"_type":"bedrock","_version":1.0}', "_version is a JSON number, " + INT1),
        ('{"_type":"bedrock","_version":"1"}', "_version is a JSON string, " + INT1),
        ('{"_version":1,"region":"us-east-1"}', "settings missing _type discriminator"),
        ('{"_type":"bedrock","_version":1,"region":1}', "field region is a JSON number, " + STR),
        (
            '{"_type":"bedrock","_version":1,"access_KEY":5}',
            "field access_key is a JSON number, " + STR,
        ),
        ("[1]", "the blob is a JSON array, coderd needs an object"),
        ('{"_type":"bedrock","_version":1,"region":NaN}', "not valid JSON (NaN or Infinity)"),
    ],
)
async def test_settings_coderd_cannot_decode_are_seen_and_rewritten(
    store: Store, store_db: psycopg.AsyncConnection[Any], blob: str, reason: str
) -> None:
    first = await store.upsert_provider(BEDROCK, OWNER)
    await store_db.execute(
        "UPDATE ai_providers SET settings = %s", (CIPHER.encrypt(blob.encode()),)
    )
    r = await assert_seen_and_repaired(
        store,
        BEDROCK,
        first,
        DifferenceKind.SETTINGS_UNDECODABLE,
        f"undecodable by coderd: {reason}",
    )
    assert r.changed_fields == ("settings",)
    got = await store.get_provider(OWNER)
    assert got is not None
    assert got.bedrock is not None
    assert got.bedrock.access_key == "AKIADRIFT"


async def test_settings_that_do_not_decrypt_are_rewritten(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    first = await store.upsert_provider(BEDROCK, OWNER)
    garbage = base64.b64encode(os.urandom(64)).decode()
    await store_db.execute("UPDATE ai_providers SET settings = %s", (garbage,))
    await assert_seen_and_repaired(
        store,
        BEDROCK,
        first,
        DifferenceKind.SETTINGS_UNDECODABLE,
        f"undecodable by coderd: does not decrypt under key {CIPHER.digest}",
    )


async def test_an_unknown_settings_type_is_reported_and_left_alone(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    """A newer Coder's variant (Claude Platform for AWS on type anthropic) on our row."""
    desired = DesiredProvider(name="claude", type=ProviderType.ANTHROPIC, api_keys=(K1,))
    await store.upsert_provider(desired, OWNER)
    blob = '{"_type":"claude_platform_aws","_version":1,"region":"us-east-1"}'
    await store_db.execute(
        "UPDATE ai_providers SET settings = %s, settings_key_id = %s",
        (CIPHER.encrypt(blob.encode()), CIPHER.digest),
    )
    before = await snapshot(store_db)
    r = await store.upsert_provider(desired, OWNER)
    assert r.action == "left_alone"
    assert not r.changed
    assert not r.notified
    assert [d.kind for d in r.differences] == [DifferenceKind.UNKNOWN_SETTINGS_TYPE]
    assert "'claude_platform_aws'" in str(r.differences[0])
    assert await snapshot(store_db) == before  # nothing written, not even a key row
    check = await store.check_provider(desired, OWNER)
    assert check is not None
    assert check.left_alone
    assert any("left alone" in str(d) for d in check.differences)
    got = await store.get_provider(OWNER)
    assert got is not None
    assert got.bedrock is None
    assert [d.kind for d in got.issues] == [DifferenceKind.UNKNOWN_SETTINGS_TYPE]


async def test_an_unknown_provider_type_is_reported_and_left_alone(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    await store.upsert_provider(openai(K1), OWNER)
    await store_db.execute("ALTER TYPE ai_provider_type ADD VALUE 'bedrock-mantle'")
    await store_db.execute("UPDATE ai_providers SET type = 'bedrock-mantle'")
    before = await snapshot(store_db)
    r = await store.upsert_provider(openai(K1, K2), OWNER)
    assert r.action == "left_alone"
    assert [d.kind for d in r.differences] == [
        DifferenceKind.UNKNOWN_TYPE,
        DifferenceKind.KEYS,
    ]
    assert "'bedrock-mantle'" in str(r.differences[0])
    assert await snapshot(store_db) == before
    got = await store.get_provider(OWNER)
    assert got is not None
    assert (got.type, got.type_label) == (None, "bedrock-mantle")
    assert [k.value for k in got.keys] == [K1]
    # Adopting a row of an unknown type: left alone too, and not recorded as ours.
    await store_db.execute(
        "INSERT INTO ai_providers (type, name, base_url) "
        "VALUES ('bedrock-mantle', 'mantle', 'https://bedrock-mantle.us-east-1.api.aws/v1')"
    )
    adopter = OwnerRef(
        kind="AIProvider", namespace="ns", name="adopt", instance="test", uid="uid-adopt"
    )
    r = await store.upsert_provider(
        DesiredProvider(name="mantle", type=ProviderType.OPENAI, api_keys=(K3,)),
        adopter,
        adopt=True,
    )
    assert r.action == "left_alone"
    assert await store.get_provider(adopter) is None
    assert await fetch(
        store_db,
        "SELECT count(*) FROM aigateway_operator.owners WHERE name = %s",
        adopter.name,
    ) == [(0,)]
