"""coderd and the operator never fight over a row: Bedrock as ``type = bedrock`` (what
coderd's backfill leaves, reference §6.6), and invoke-model always with both models."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from aigateway_operator.store import (
    BedrockSettings,
    DesiredProvider,
    DifferenceKind,
    OwnerRef,
    ProviderType,
    Store,
)
from aigateway_operator.store.canonical import (
    DEFAULT_BEDROCK_MODEL,
    DEFAULT_BEDROCK_SMALL_FAST_MODEL,
)
from aigateway_operator.store.cipher import Cipher, KeyRing
from tests.support.store import STORE_KEY_A, fetch, snapshot

pytestmark = pytest.mark.integration

OWNER = OwnerRef(
    kind="AIProvider", namespace="ns", name="claude", instance="test", uid="uid-compat"
)
ANTHROPIC_ON_BEDROCK = DesiredProvider(
    name="claude",
    type=ProviderType.ANTHROPIC,
    bedrock=BedrockSettings(region="us-east-1", access_key="AKIACOMPAT", access_key_secret="s"),
)


async def coderd_backfill(conn: psycopg.AsyncConnection[Any]) -> int:
    """What coderd does at every start (reference §6.6): live ``anthropic`` rows whose
    settings decode to Bedrock are re-saved as ``type = bedrock`` through its dbcrypt
    wrapper (so re-encrypted, with a fresh nonce) by its update query (``updated_at``)."""
    ring = KeyRing([STORE_KEY_A])
    cur = await conn.execute(
        "SELECT id, settings, settings_key_id FROM ai_providers "
        "WHERE type = 'anthropic' AND NOT deleted AND settings IS NOT NULL"
    )
    changed = 0
    for row_id, settings, key_id in await cur.fetchall():
        plain = ring.decrypt_field(settings, key_id, "backfill")
        if json.loads(plain).get("_type") != "bedrock":
            continue
        stored, new_key_id = ring.encrypt_field(plain)
        await conn.execute(
            "UPDATE ai_providers SET type = 'bedrock', settings = %s, settings_key_id = %s, "
            "updated_at = now() WHERE id = %s",
            (stored, new_key_id, row_id),
        )
        changed += 1
    return changed


async def test_anthropic_with_bedrock_is_written_as_bedrock_and_the_backfill_finds_nothing(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    created = await store.upsert_provider(ANTHROPIC_ON_BEDROCK, OWNER)
    assert await fetch(store_db, "SELECT type::text FROM ai_providers") == [("bedrock",)]
    before = await snapshot(store_db)
    assert await coderd_backfill(store_db) == 0
    again = await store.upsert_provider(ANTHROPIC_ON_BEDROCK, OWNER)
    assert again.action == "unchanged"
    assert again.version == created.version
    assert await snapshot(store_db) == before
    check = await store.check_provider(ANTHROPIC_ON_BEDROCK, OWNER)
    assert check is not None
    assert check.differences == ()


async def test_a_row_an_earlier_release_left_as_anthropic_is_not_fought_over(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    """An earlier operator wrote ``type = anthropic``; coderd's backfill turns it into
    ``bedrock`` (re-encrypted, updated_at bumped): the next pass finds nothing to write."""
    await store.upsert_provider(ANTHROPIC_ON_BEDROCK, OWNER)
    await store_db.execute("UPDATE ai_providers SET type = 'anthropic'")
    assert await coderd_backfill(store_db) == 1
    before = await snapshot(store_db)
    r = await store.upsert_provider(ANTHROPIC_ON_BEDROCK, OWNER)
    assert (r.action, r.notified, r.audited) == ("unchanged", False, False)
    assert await snapshot(store_db) == before
    assert await fetch(store_db, "SELECT type::text FROM ai_providers") == [("bedrock",)]


async def test_invoke_model_bedrock_always_carries_both_models(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    await store.upsert_provider(ANTHROPIC_ON_BEDROCK, OWNER)

    async def stored_settings() -> dict[str, Any]:
        ((blob,),) = await fetch(store_db, "SELECT settings FROM ai_providers")
        return dict(json.loads(Cipher(STORE_KEY_A).decrypt(blob)))

    settings = await stored_settings()
    assert (settings["model"], settings["small_fast_model"]) == (
        DEFAULT_BEDROCK_MODEL,
        DEFAULT_BEDROCK_SMALL_FAST_MODEL,
    )
    # Someone empties the models (coderd's runtime would then drop the provider): drift,
    # reverted with the defaults again.
    emptied = {k: v for k, v in settings.items() if k not in ("model", "small_fast_model")}
    await store_db.execute(
        "UPDATE ai_providers SET settings = %s",
        (Cipher(STORE_KEY_A).encrypt(json.dumps(emptied).encode()),),
    )
    check = await store.check_provider(ANTHROPIC_ON_BEDROCK, OWNER)
    assert check is not None
    assert [d.kind for d in check.differences] == [DifferenceKind.SETTINGS]
    r = await store.upsert_provider(ANTHROPIC_ON_BEDROCK, OWNER)
    assert r.changed_fields == ("settings",)
    settings = await stored_settings()
    assert settings["model"] == DEFAULT_BEDROCK_MODEL
    assert settings["small_fast_model"] == DEFAULT_BEDROCK_SMALL_FAST_MODEL
