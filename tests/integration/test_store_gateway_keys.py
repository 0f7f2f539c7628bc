"""AI Gateway keys on real Postgres 15: insert, rename, delete, heartbeat, collisions, audit."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from aigateway_operator.config import Settings
from aigateway_operator.store import (
    GatewayKeyConflict,
    InvalidName,
    NameTaken,
    NotFound,
    OwnerRef,
    SecretCollision,
    Store,
    retiring_name,
)
from aigateway_operator.store import gateway_keys as gk

pytestmark = pytest.mark.integration

OWNER = OwnerRef(kind="AIGatewayKey", namespace="ns", name="gw", instance="test", uid="uid-gw")


async def fetch(conn: psycopg.AsyncConnection[Any], query: str) -> list[tuple[Any, ...]]:
    cur = await conn.execute(query)  # type: ignore[arg-type]
    return await cur.fetchall()


async def test_insert_stores_prefix_and_raw_sha256(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    kid = uuid.uuid4()
    issued = await store.create_gateway_key(kid, "gateway-1", OWNER)
    assert issued.created
    assert issued.id == kid
    assert len(issued.secret) == 43
    assert issued.secret.startswith("cgw_")
    assert issued.secret_prefix == issued.secret[:11]
    assert issued.secret not in repr(issued)
    rows = await fetch(
        store_db,
        "SELECT id, name, secret_prefix, hashed_secret, last_heartbeat_at FROM ai_gateway_keys",
    )
    assert rows == [
        (
            kid,
            "gateway-1",
            issued.secret_prefix,
            hashlib.sha256(issued.secret.encode()).digest(),
            None,
        )
    ]
    info = await store.get_gateway_key(kid)
    assert info is not None
    assert info.last_heartbeat_at is None
    assert info.name == "gateway-1"
    assert await store.get_gateway_key_by_name("GATEWAY-1") == info


async def test_heartbeat_is_read_back(store: Store, store_db: psycopg.AsyncConnection[Any]) -> None:
    kid = uuid.uuid4()
    await store.create_gateway_key(kid, "gw", OWNER)
    await store_db.execute("UPDATE ai_gateway_keys SET last_heartbeat_at = NOW()")
    info = await store.get_gateway_key(kid)
    assert info is not None
    assert info.last_heartbeat_at is not None


async def test_heartbeat_is_none_without_the_column(
    store: Store, store_settings: Callable[..., Settings], store_db: psycopg.AsyncConnection[Any]
) -> None:
    # A Coder between 000514 and 000532: the column was still called last_used_at.
    await store_db.execute(
        "ALTER TABLE ai_gateway_keys RENAME COLUMN last_heartbeat_at TO last_used_at"
    )
    await store_db.execute("UPDATE schema_migrations SET version = 520")
    old = await Store.open(store_settings(mode="verify"))
    try:
        assert not old.capabilities.has_heartbeat
        kid = uuid.uuid4()
        await old.create_gateway_key(kid, "gw", OWNER)
        info = await old.get_gateway_key(kid)
        assert info is not None
        assert info.last_heartbeat_at is None
    finally:
        await old.close()


async def test_rename_for_rotation_and_delete(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    old_id, new_id = uuid.uuid4(), uuid.uuid4()
    await store.create_gateway_key(old_id, "team-gw", OWNER)
    retired = await store.rename_gateway_key(old_id, retiring_name("team-gw", 1), OWNER)
    assert retired.name == "team-gw-retiring-1"
    await store.create_gateway_key(new_id, "team-gw", OWNER)
    assert await store.delete_gateway_key(old_id, OWNER) is True
    assert await store.delete_gateway_key(old_id, OWNER) is False  # idempotent
    assert await fetch(store_db, "SELECT id, name FROM ai_gateway_keys") == [(new_id, "team-gw")]
    with pytest.raises(NotFound):
        await store.rename_gateway_key(old_id, "x", OWNER)
    long = "a" * 64
    await store.rename_gateway_key(new_id, long, OWNER)
    info = await store.rename_gateway_key(new_id, retiring_name(long, 3), OWNER)
    assert len(info.name) == 64


async def test_name_rules(store: Store) -> None:
    await store.create_gateway_key(uuid.uuid4(), "dup", OWNER)
    with pytest.raises(NameTaken):
        await store.create_gateway_key(uuid.uuid4(), "dup", OWNER)
    other = uuid.uuid4()
    await store.create_gateway_key(other, "other", OWNER)
    with pytest.raises(NameTaken):
        await store.rename_gateway_key(other, "dup", OWNER)
    for bad in ("Dup", "a" * 65, "-a", "a--b"):
        with pytest.raises(InvalidName):
            await store.create_gateway_key(uuid.uuid4(), bad, OWNER)


async def test_collision_retries_with_a_new_secret(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await store.create_gateway_key(uuid.uuid4(), "first", OWNER)
    same_prefix = first.secret[:11] + "Z" * 32
    queue = [first.secret, same_prefix, "cgw_" + "q" * 39]

    def fake() -> str:
        return queue.pop(0)

    monkeypatch.setattr(gk, "generate_gateway_secret", fake)
    issued = await store.create_gateway_key(uuid.uuid4(), "second", OWNER)
    assert issued.secret == "cgw_" + "q" * 39
    assert queue == []

    def always() -> Iterator[str]:
        while True:
            yield first.secret

    it = always()
    monkeypatch.setattr(gk, "generate_gateway_secret", lambda: next(it))
    with pytest.raises(SecretCollision, match="7 time"):
        await store.create_gateway_key(uuid.uuid4(), "third", OWNER)


async def test_supplied_secret_makes_create_replayable(store: Store) -> None:
    kid = uuid.uuid4()
    secret = gk.generate_gateway_secret()
    a = await store.create_gateway_key(kid, "replay", OWNER, secret=secret)
    b = await store.create_gateway_key(kid, "replay", OWNER, secret=secret)
    assert a.created
    assert not b.created
    assert a.created_at == b.created_at
    with pytest.raises(GatewayKeyConflict) as info:
        await store.create_gateway_key(kid, "replay", OWNER, secret=gk.generate_gateway_secret())
    assert secret not in str(info.value)
    with pytest.raises(GatewayKeyConflict):
        await store.create_gateway_key(kid, "replay", OWNER)  # generated secret: never a replay


async def test_gateway_key_audit_shape(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    kid = uuid.uuid4()
    issued = await store.create_gateway_key(kid, "audited", OWNER)
    await store.rename_gateway_key(kid, "audited-2", OWNER)
    await store.delete_gateway_key(kid, OWNER)
    rows = await fetch(
        store_db,
        "SELECT action::text, resource_target, diff, additional_fields FROM audit_logs "
        "WHERE resource_type = 'ai_gateway_key' ORDER BY \"time\", action",
    )
    by_action = {r[0]: r for r in rows}
    assert set(by_action) == {"create", "write", "delete"}
    create = by_action["create"][2]
    assert create["hashed_secret"] == {"Old": "", "New": "", "Secret": True}
    assert create["secret_prefix"]["New"] == issued.secret_prefix
    assert by_action["write"][2] == {
        "name": {"Old": "audited", "New": "audited-2", "Secret": False}
    }
    assert by_action["delete"][1] == "audited-2"
    assert by_action["create"][3]["kubernetes"]["kind"] == "AIGatewayKey"
    assert issued.secret not in str(rows)
