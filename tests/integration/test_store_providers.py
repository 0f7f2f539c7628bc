"""Provider upsert/delete on real Postgres 15: identity, keys, no-ops, notify, audit, crashes."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from aigateway_operator.config import Settings
from aigateway_operator.masking import mask_secret
from aigateway_operator.store import (
    BedrockSettings,
    DeletePolicy,
    DesiredProvider,
    DuplicateKey,
    HostnamePeers,
    InvalidKey,
    NameConflict,
    NameTaken,
    OwnerRef,
    ProviderType,
    RevivalUnconfirmed,
    Store,
    StoreError,
    StoreUnavailable,
    provider_row_id,
)
from tests.support.store import fetch, snapshot

pytestmark = pytest.mark.integration

OWNER = OwnerRef(
    kind="AIProvider", namespace="team", name="openai", instance="test", uid="uid-1", generation=1
)
K1, K2, K3, K4 = (f"sk-{i}-test-key-{'x' * 12}-{str(i) * 4}" for i in range(1, 5))


def openai(*keys: str, **kw: Any) -> DesiredProvider:
    return DesiredProvider(
        name=kw.pop("name", "openai"), type=ProviderType.OPENAI, api_keys=keys, **kw
    )


async def stored_keys(store: Store, owner: OwnerRef = OWNER) -> tuple[str, ...]:
    got = await store.get_provider(owner)
    assert got is not None
    return tuple(k.value for k in got.keys)


class Listener:
    """A LISTEN connection; counts notifies up to a marker sent from another connection, so
    "no notify" is proven without sleeping."""

    def __init__(self, listen: psycopg.AsyncConnection[Any], other: psycopg.AsyncConnection[Any]):
        self.listen, self.other = listen, other

    async def drain(self) -> list[str]:
        marker = uuid.uuid4().hex
        await self.other.execute("SELECT pg_notify('ai_providers_changed', %s)", (marker,))
        seen: list[str] = []
        async for n in self.listen.notifies(timeout=10):
            if n.payload == marker:
                return seen
            seen.append(n.payload)
        raise AssertionError("marker notify not received within 10s")


@pytest.fixture
async def store_listener(store_dsn: str, store_db: psycopg.AsyncConnection[Any]) -> Any:
    async with await psycopg.AsyncConnection.connect(store_dsn, autocommit=True) as conn:
        await conn.execute("LISTEN ai_providers_changed")
        yield Listener(conn, store_db)


async def test_create_read_back_and_coder_shape(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    r = await store.upsert_provider(openai(K1, K2, display_name="OpenAI", icon="/i.svg"), OWNER)
    assert r.action == "created"
    assert r.notified
    assert r.audited
    assert r.provider_id == provider_row_id(OWNER)
    assert [k.masked for k in r.keys_added] == [mask_secret(K1), mask_secret(K2)]
    rows = await fetch(
        store_db,
        "SELECT type::text, name, display_name, enabled, deleted, base_url, settings, "
        "settings_key_id, icon FROM ai_providers",
    )
    assert rows == [
        (
            "openai",
            "openai",
            "OpenAI",
            True,
            False,
            "https://api.openai.com/v1/",
            None,
            None,
            "/i.svg",
        ),
    ]
    got = await store.get_provider(OWNER)
    assert got is not None
    assert (got.display_name, got.icon, got.bedrock, got.adopted) == (
        "OpenAI",
        "/i.svg",
        None,
        False,
    )
    assert tuple(k.value for k in got.keys) == (K1, K2)


async def test_same_state_twice_writes_nothing(
    store: Store, store_db: psycopg.AsyncConnection[Any], store_listener: Listener
) -> None:
    bed = DesiredProvider(
        name="bedrock",
        type=ProviderType.BEDROCK,
        bedrock=BedrockSettings(region="us-east-1", role_arn="arn:aws:iam::123456789012:role/R"),
    )
    bed_owner = OwnerRef(
        kind="AIProvider", namespace="ns", name="bed", instance="test", uid="uid-bed"
    )
    await store.upsert_provider(openai(K1, K2), OWNER)
    await store.upsert_provider(bed, bed_owner)
    assert await store_listener.drain() == ["", ""]
    before = await snapshot(store_db)
    r1 = await store.upsert_provider(openai(K1, K2), OWNER)
    r2 = await store.upsert_provider(bed, bed_owner)
    assert (r1.action, r2.action) == ("unchanged", "unchanged")
    assert not (r1.notified)
    assert not (r1.audited)
    assert not (r1.reencrypted)
    assert not (r2.notified)
    assert not (r2.reencrypted)
    assert r1.keys == r1.keys_kept
    assert len(r1.keys) == 2
    assert await snapshot(store_db) == before
    assert await store_listener.drain() == []


async def test_exactly_one_notify_per_change(store: Store, store_listener: Listener) -> None:
    await store.upsert_provider(openai(K1), OWNER)
    assert await store_listener.drain() == [""]
    await store.upsert_provider(openai(K1, K2), OWNER)  # key added
    assert await store_listener.drain() == [""]
    await store.upsert_provider(openai(K1, K2, enabled=False), OWNER)  # column changed
    assert await store_listener.drain() == [""]
    await store.upsert_provider(openai(K1, K2, enabled=False), OWNER)  # no-op
    assert await store_listener.drain() == []
    await store.delete_provider(OWNER)
    assert await store_listener.drain() == [""]
    await store.delete_provider(OWNER)  # already deleted
    assert await store_listener.drain() == []


async def test_key_set_replacement_keeps_unchanged_rows(store: Store) -> None:
    first = await store.upsert_provider(openai(K1, K2, K3), OWNER)
    ids = {k.masked: k.id for k in first.keys}
    r = await store.upsert_provider(openai(K1, K3, K4), OWNER)
    assert [k.masked for k in r.keys_removed] == [mask_secret(K2)]
    assert [k.masked for k in r.keys_added] == [mask_secret(K4)]
    assert {k.id for k in r.keys_kept} == {ids[mask_secret(K1)], ids[mask_secret(K3)]}
    assert not r.keys_reordered
    assert "api_keys" in r.changed_fields
    assert await stored_keys(store) == (K1, K3, K4)
    assert r.changed_fields == ("api_keys",)


async def test_order_follows_the_desired_list(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    await store.upsert_provider(openai(K1, K2), OWNER)
    r = await store.upsert_provider(openai(K2, K1), OWNER)
    assert r.keys_reordered
    assert not r.keys_added
    assert not r.keys_removed
    assert await stored_keys(store) == (K2, K1)
    r = await store.upsert_provider(openai(K2, K3, K1), OWNER)
    assert await stored_keys(store) == (K2, K3, K1)
    # What coderd reads: ORDER BY created_at, id.
    rows = await fetch(store_db, "SELECT id FROM ai_provider_keys ORDER BY created_at, id")
    assert [r_[0] for r_ in rows] == [k.id for k in r.keys]


async def test_random_key_lists_converge(store: Store) -> None:
    rng = random.Random(1234)
    pool = [f"sk-rand-{i:02d}-{'y' * 16}" for i in range(8)]
    ids: dict[str, uuid.UUID] = {}
    for _ in range(25):
        want = tuple(rng.sample(pool, rng.randint(0, 5)))
        r = await store.upsert_provider(openai(*want), OWNER)
        assert await stored_keys(store) == want
        assert [k.masked for k in r.keys] == [mask_secret(k) for k in want]
        now = {value: ref.id for ref, value in zip(r.keys, want, strict=True)}
        # Expected from the two lists alone, not from what the store says it did: a key in
        # both keeps its row, a new one gets a new row, a dropped one loses its row.
        kept = [v for v in want if v in ids]
        assert {v: now[v] for v in kept} == {v: ids[v] for v in kept}
        assert {k.id for k in r.keys_kept} == {ids[v] for v in kept}
        assert {k.id for k in r.keys_added} == {now[v] for v in want if v not in ids}
        assert {k.id for k in r.keys_removed} == {ids[v] for v in ids if v not in want}
        assert len(set(now.values())) == len(want)
        ids = now


async def test_duplicate_and_bad_keys_are_rejected_before_writing(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    with pytest.raises(DuplicateKey):
        await store.upsert_provider(openai(K1, K2, K1), OWNER)
    with pytest.raises(InvalidKey):
        await store.upsert_provider(openai(K1, f"{K2} "), OWNER)
    with pytest.raises(InvalidKey):
        await store.upsert_provider(openai(""), OWNER)
    assert await fetch(store_db, "SELECT count(*) FROM ai_providers") == [(0,)]


async def test_duplicate_rows_written_by_someone_else_are_cleaned(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    await store.upsert_provider(openai(K1), OWNER)
    await store_db.execute(
        "INSERT INTO ai_provider_keys (provider_id, api_key) VALUES (%s, %s)",
        (provider_row_id(OWNER), K1),
    )
    r = await store.upsert_provider(openai(K1), OWNER)
    assert len(r.keys_removed) == 1
    assert await stored_keys(store) == (K1,)


async def test_existing_name_is_a_conflict_unless_adopted(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    rows = await fetch(
        store_db,
        "INSERT INTO ai_providers (type, name, base_url) VALUES ('openai', 'openai', "
        "'https://example.com/v1') RETURNING id, xmin::text",
    )
    foreign_id, xmin = rows[0]
    with pytest.raises(NameConflict) as info:
        await store.upsert_provider(openai(K1), OWNER)
    assert info.value.row_id == str(foreign_id)
    assert await fetch(store_db, "SELECT id, xmin::text FROM ai_providers") == [(foreign_id, xmin)]

    r = await store.upsert_provider(openai(K1), OWNER, adopt=True)
    assert r.action == "adopted"
    assert r.provider_id == foreign_id
    assert "base_url" in r.changed_fields
    # Later reconciles find it by owner, without the flag and without a name lookup.
    again = await store.upsert_provider(openai(K1), OWNER)
    assert again.action == "unchanged"
    assert again.provider_id == foreign_id
    got = await store.get_provider(OWNER)
    assert got is not None
    assert got.adopted
    # Another object cannot take it, even with adopt.
    with pytest.raises(NameTaken, match="held by AIProvider team/openai") as taken:
        await store.upsert_provider(
            openai(K2),
            OwnerRef(
                kind="AIProvider", namespace="ns", name="other", instance="test", uid="uid-other"
            ),
            adopt=True,
        )
    assert taken.value.holder == f"AIProvider {OWNER.namespace}/{OWNER.name}"
    # Release (Orphan): the row stays live and untouched, and stays recorded for OWNER, so
    # the same object applied again takes it back.
    d = await store.delete_provider(OWNER, DeletePolicy.RELEASE)
    assert d.action == "released"
    assert await fetch(store_db, "SELECT deleted FROM ai_providers") == [(False,)]
    got = await store.get_provider(OWNER)
    assert got is not None
    assert got.id == foreign_id


async def test_soft_delete_like_coderd_and_name_reuse(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    r = await store.upsert_provider(openai(K1), OWNER)
    d = await store.delete_provider(OWNER)
    assert d.action == "deleted"
    assert d.provider_id == r.provider_id
    rows = await fetch(
        store_db, "SELECT deleted, enabled, updated_at > created_at FROM ai_providers"
    )
    assert rows == [(True, False, True)]
    # Unlike coderd, the key rows go too: no API key outlives its declaration.
    assert d.keys_removed == 1
    assert await fetch(store_db, "SELECT count(*) FROM ai_provider_keys") == [(0,)]
    audited = await fetch(
        store_db,
        "SELECT resource_type::text, action::text, diff->'api_key'->>'Old' FROM audit_logs "
        "WHERE action = 'delete' ORDER BY resource_type",
    )
    assert audited == [
        ("ai_provider", "delete", None),
        ("ai_provider_key", "delete", mask_secret(K1)),
    ]
    assert (await store.delete_provider(OWNER)).action == "absent"
    other = await store.upsert_provider(
        openai(K2),
        OwnerRef(kind="AIProvider", namespace="ns", name="new", instance="test", uid="uid-new"),
    )
    assert other.action == "created"
    assert other.provider_id != r.provider_id


async def test_row_soft_deleted_in_coder_is_revived(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    r = await store.upsert_provider(openai(K1), OWNER)
    await store_db.execute("UPDATE ai_providers SET deleted = true, enabled = false")
    await store_db.commit()
    # Unconfirmed (the caller has not checked that its object still exists): nothing written.
    before = await fetch(store_db, "SELECT xmin::text FROM ai_providers")
    with pytest.raises(RevivalUnconfirmed):
        await store.upsert_provider(openai(K1), OWNER, revive=False)
    assert await fetch(store_db, "SELECT xmin::text FROM ai_providers") == before
    again = await store.upsert_provider(openai(K1), OWNER, revive=True)
    assert again.action == "revived"
    assert again.provider_id == r.provider_id
    assert {"deleted", "enabled"} <= set(again.changed_fields)
    assert await fetch(store_db, "SELECT deleted, enabled FROM ai_providers") == [(False, True)]


async def test_rename_onto_a_live_name_is_refused(store: Store) -> None:
    await store.upsert_provider(openai(K1, name="a"), OWNER)
    await store.upsert_provider(
        openai(K2, name="b"),
        OwnerRef(kind="AIProvider", namespace="ns", name="b", instance="test", uid="uid-b"),
    )
    with pytest.raises(NameTaken):
        await store.upsert_provider(openai(K1, name="b"), OWNER)
    r = await store.upsert_provider(openai(K1, name="c"), OWNER)
    assert r.changed_fields == ("name",)


@pytest.mark.parametrize(
    "point", ["provider_written", "keys_deleted", "keys_written", "before_commit"]
)
async def test_crash_between_statements_then_reapply(
    store: Store, store_db: psycopg.AsyncConnection[Any], point: str
) -> None:
    class Crash(Exception):
        pass

    async def crash(at: str, conn: psycopg.AsyncConnection[Any]) -> None:
        if at == point:
            raise Crash

    await store.upsert_provider(openai(K1, K2), OWNER)
    before = await snapshot(store_db)
    store._fault_hook = crash
    with pytest.raises(Crash):
        await store.upsert_provider(openai(K3, K1), OWNER)
    assert await snapshot(store_db) == before  # all or nothing
    store._fault_hook = None
    await store.upsert_provider(openai(K3, K1), OWNER)
    await store.upsert_provider(openai(K3, K1), OWNER)
    assert await stored_keys(store) == (K3, K1)
    assert await fetch(store_db, "SELECT count(*) FROM ai_providers") == [(1,)]
    assert await fetch(store_db, "SELECT count(*) FROM ai_provider_keys") == [(2,)]


async def test_connection_killed_mid_create_is_retryable_and_converges(
    store: Store, store_db: psycopg.AsyncConnection[Any], postgres: Any
) -> None:
    async def kill(at: str, conn: psycopg.AsyncConnection[Any]) -> None:
        if at == "before_commit":
            async with await psycopg.AsyncConnection.connect(
                postgres.superuser_dsn, autocommit=True
            ) as admin:
                await admin.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))

    store._fault_hook = kill
    with pytest.raises(StoreUnavailable) as info:
        await store.upsert_provider(openai(K1, K2), OWNER)
    assert info.value.retryable
    assert await fetch(store_db, "SELECT count(*) FROM ai_providers") == [(0,)]
    store._fault_hook = None
    r = await store.upsert_provider(openai(K1, K2), OWNER)
    assert r.action == "created"
    assert await stored_keys(store) == (K1, K2)


async def test_concurrent_upserts_of_one_owner_yield_one_row(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    results = await asyncio.gather(
        *(store.upsert_provider(openai(K1, K2), OWNER) for _ in range(4))
    )
    assert sorted(r.action for r in results) == ["created", "unchanged", "unchanged", "unchanged"]
    assert await fetch(store_db, "SELECT count(*) FROM ai_providers") == [(1,)]
    assert await fetch(store_db, "SELECT count(*) FROM ai_provider_keys") == [(2,)]


async def test_writes_take_advisory_lock_10(store: Store, store_dsn: str) -> None:
    """While coderd (here: another session) holds lock 10, our write waits and times out."""
    async with await psycopg.AsyncConnection.connect(store_dsn) as holder:
        await holder.execute("SELECT pg_advisory_xact_lock(10)")
        fast = await Store.open(
            Settings(
                database_url=store_dsn,
                encryption_keys=None,
                allow_plaintext=True,
                lock_timeout_ms=200,
            )
        )
        try:
            with pytest.raises(StoreUnavailable, match="timed out waiting for a lock"):
                await fast.upsert_provider(openai(K1), OWNER)
        finally:
            await fast.close()
        await holder.rollback()


async def test_audit_rows_are_coder_shaped(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    bed = DesiredProvider(
        name="claude",
        type=ProviderType.ANTHROPIC,
        bedrock=BedrockSettings(region="us-east-1", access_key="AKIAZ", access_key_secret="zz"),
    )
    bo = OwnerRef(
        kind="AIProvider", namespace="ns", name="claude", instance="test", uid="uid-c", generation=2
    )
    await store.upsert_provider(bed, bo)
    await store.upsert_provider(openai(K1, K2), OWNER)
    await store.upsert_provider(openai(K1, K3, display_name="Open"), OWNER)
    await store.delete_provider(OWNER)
    rows = await fetch(
        store_db,
        "SELECT resource_type::text, action::text, resource_target, diff, additional_fields, "
        "organization_id, status_code, resource_icon, user_id, request_id, resource_id "
        'FROM audit_logs ORDER BY "time", resource_type, action',
    )
    text = json.dumps([r[3] for r in rows]) + json.dumps([r[4] for r in rows])
    for secret in (K1, K2, K3, "AKIAZ", '"zz"'):
        assert secret not in text
    for r in rows:
        assert r[5] == uuid.UUID(int=0)
        assert r[6] == 200
        assert r[7] == ""
        assert r[8] == uuid.UUID(int=0)
        assert r[4]["kubernetes"]["uid"] in ("uid-1", "uid-c")
    create_bed = next(r for r in rows if r[2] == "claude")
    assert create_bed[3]["settings"] == {"Old": "", "New": "", "Secret": True}
    # Bedrock is written as its own type, the way coderd's backfill leaves such a row.
    assert create_bed[3]["type"] == {"Old": "", "New": "bedrock", "Secret": False}
    assert "display_name" not in create_bed[3]  # NULL -> NULL renders "null" both sides
    assert create_bed[4]["kubernetes"] == {
        "instance": "test",
        "kind": "AIProvider",
        "uid": "uid-c",
        "namespace": "ns",
        "name": "claude",
        "generation": 2,
        "actor": "unknown",
        "actor_source": "unknown",
        "actor_reason": "not attributed by the operator",
    }
    writes = [r for r in rows if r[0] == "ai_provider" and r[1] == "write"]
    assert len(writes) == 1
    w = writes[0][3]
    assert w["display_name"] == {"Old": "null", "New": "Open", "Secret": False}
    assert writes[0][4]["kept"] == 1
    assert [a["masked"] for a in writes[0][4]["added"]] == [mask_secret(K3)]
    assert [a["masked"] for a in writes[0][4]["removed"]] == [mask_secret(K2)]
    key_rows = [r for r in rows if r[0] == "ai_provider_key"]
    key_events = sorted((r[1], r[3]["api_key"]["New"] or r[3]["api_key"]["Old"]) for r in key_rows)
    assert key_events == sorted(
        [
            ("create", mask_secret(K1)),
            ("create", mask_secret(K2)),
            ("create", mask_secret(K3)),
            ("delete", mask_secret(K2)),
            # the provider's own delete removes its remaining keys
            ("delete", mask_secret(K1)),
            ("delete", mask_secret(K3)),
        ]
    )
    for r in key_rows:
        assert r[2] == str(r[10])  # resource_target is the key's uuid
    delete = next(r for r in rows if r[0] == "ai_provider" and r[1] == "delete")
    # Like coderd's delete: only the old row is set, so the diff is "old vs zero values".
    assert delete[3]["name"] == {"Old": "openai", "New": "", "Secret": False}
    assert "deleted" not in delete[3]
    # One request id per store operation, shared by the provider and its key entries.
    assert len({r[9] for r in rows}) == 4


async def test_no_secret_in_any_exception_message(
    store: Store, store_settings: Callable[..., Settings], store_db: psycopg.AsyncConnection[Any]
) -> None:
    secrets_ = [K1, K2, "AKIASECRET", "aws-secret-value"]
    errors: list[BaseException] = []

    async def attempt(coro: Any) -> None:
        try:
            await coro
        except (StoreError, ValueError) as exc:
            errors.append(exc)

    await attempt(store.upsert_provider(openai(K1, K1), OWNER))
    await attempt(store.upsert_provider(openai(f" {K1}"), OWNER))
    await attempt(
        store.upsert_provider(
            DesiredProvider(
                name="b",
                type=ProviderType.OPENAI,
                bedrock=BedrockSettings(
                    access_key="AKIASECRET", access_key_secret="aws-secret-value"
                ),
            ),
            OWNER,
        )
    )
    await store_db.execute(
        "INSERT INTO ai_providers (type, name, base_url) VALUES ('openai', 'taken', 'https://x')"
    )
    await attempt(store.upsert_provider(openai(K1, name="taken"), OWNER))
    await store_db.execute(
        "UPDATE dbcrypt_keys SET revoked_key_digest = active_key_digest, active_key_digest = NULL"
    )
    await attempt(store.upsert_provider(openai(K2), OWNER))
    dsn = store_settings().require_database_url()
    password = dsn.split(":")[2].split("@")[0]
    await attempt(Store.open(Settings(database_url=dsn.replace(password, "wrong-" + password))))
    assert len(errors) == 6
    for exc in errors:
        text = str(exc) + repr(exc) + str(exc.__cause__ or "") + str(exc.__context__ or "")
        for s in [*secrets_, password]:
            assert s not in text, (type(exc).__name__, text)


async def test_hostname_peers_are_the_live_enabled_rows_on_the_same_host(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    """coderd's duplicate-hostname warning: its AI Bridge proxy routes by hostname."""

    def who(name: str) -> OwnerRef:
        return OwnerRef(kind="AIProvider", namespace="team", name=name, instance="test")

    def compat(name: str, url: str, enabled: bool = True) -> DesiredProvider:
        return DesiredProvider(
            name=name, type=ProviderType.OPENAI_COMPAT, base_url=url, enabled=enabled,
            api_keys=(f"sk-{name}-{'y' * 20}",),
        )  # fmt: skip

    me = await store.upsert_provider(compat("b-me", "https://LLM.example.com:8443/v1/"), who("b"))
    await store.upsert_provider(compat("a-first", "https://llm.example.com/v1/"), who("a"))
    await store.upsert_provider(compat("c-user", "http://u:p@llm.example.com/x"), who("c"))
    await store.upsert_provider(compat("d-off", "https://llm.example.com/", False), who("d"))
    await store.upsert_provider(compat("e-gone", "https://llm.example.com/"), who("e"))
    await store.delete_provider(who("e"))
    await store.upsert_provider(compat("f-other", "https://llm.example.org/v1/"), who("f"))
    peers = await store.hostname_peers(me.provider_id)
    assert peers is not None
    assert (peers.hostname, peers.names, peers.count) == (
        "llm.example.com", ("a-first", "c-user"), 2
    )  # fmt: skip
    for i in range(6):  # many on one host: the first few names, and how many
        await store.upsert_provider(compat(f"z-{i}", "https://llm.example.com/"), who(f"z{i}"))
    many = await store.hostname_peers(me.provider_id)
    assert many is not None
    assert many.count == 2, "two tell 'several' apart; the scan stops there"
    assert len(set(many.names)) == 2
    assert set(many.names) <= {"a-first", "c-user", *(f"z-{i}" for i in range(6))}
    alone = await store.upsert_provider(compat("g-alone", "https://solo.example.net/"), who("g"))
    assert await store.hostname_peers(alone.provider_id) == HostnamePeers("solo.example.net", ())
    off = await store.upsert_provider(compat("d-off", "https://llm.example.com/", False), who("d"))
    assert await store.hostname_peers(off.provider_id) is None, "a disabled row is not served"


async def test_coder_owned_enabled_survives_upserts_checks_and_a_restart(
    store: Store,
    store_settings: Callable[..., Settings],
    store_db: psycopg.AsyncConnection[Any],
    store_listener: Listener,
) -> None:
    """``coder_owned``: an ``enabled = false`` made directly in Coder stays (no write, no
    difference), while a base_url edit is still reverted; a fresh Store (an operator
    restart) keeps to the same rule."""
    desired = openai(K1, display_name="OpenAI", coder_owned=frozenset({"enabled"}))
    created = await store.upsert_provider(desired, OWNER)
    assert created.action == "created"
    assert dict(created.coder_owned) == {"enabled": True}, "the desired value on creation"
    assert await store_listener.drain() == [""]

    await store_db.execute("UPDATE ai_providers SET enabled = false, updated_at = now()")
    before = await snapshot(store_db)
    same = await store.upsert_provider(desired, OWNER)
    assert same.action == "unchanged"
    assert same.differences == ()
    assert dict(same.coder_owned) == {"enabled": False}
    assert not same.notified
    check = await store.check_provider(desired, OWNER)
    assert check is not None
    assert check.differences == ()
    assert dict(check.coder_owned) == {"enabled": False}
    assert await snapshot(store_db) == before, "nothing written"
    assert await store_listener.drain() == []

    # Another column is still the spec's: reverted, and the owned one left as Coder has it.
    await store_db.execute("UPDATE ai_providers SET base_url = 'https://evil.example.com/v1'")
    check = await store.check_provider(desired, OWNER)
    assert check is not None
    assert [str(d) for d in check.differences] == ["base_url"]
    reverted = await store.upsert_provider(desired, OWNER)
    assert reverted.action == "updated"
    assert reverted.changed_fields == ("base_url",)
    assert dict(reverted.coder_owned) == {"enabled": False}
    assert await fetch(store_db, "SELECT enabled, base_url FROM ai_providers") == [
        (False, "https://api.openai.com/v1/")
    ]
    assert await store_listener.drain() == [""]
    # The audit entry of the revert shows only base_url: enabled was not written.
    (write,) = await fetch(
        store_db,
        "SELECT diff FROM audit_logs WHERE action = 'write' AND resource_type = 'ai_provider'",
    )
    assert set(write[0]) == {"base_url"}

    # An operator restart: a fresh Store over the same database keeps the row as it is.
    restarted = await Store.open(store_settings())
    try:
        before = await snapshot(store_db)
        again = await restarted.upsert_provider(desired, OWNER)
        assert again.action == "unchanged"
        assert dict(again.coder_owned) == {"enabled": False}
        check = await restarted.check_provider(desired, OWNER)
        assert check is not None
        assert check.differences == ()
        assert await snapshot(store_db) == before
    finally:
        await restarted.close()
    assert await store_listener.drain() == []

    # No longer Coder-owned: the spec's value comes back (a revert like any other).
    back = await store.upsert_provider(openai(K1, display_name="OpenAI"), OWNER)
    assert back.changed_fields == ("enabled",)
    assert await fetch(store_db, "SELECT enabled FROM ai_providers") == [(True,)]


async def test_coder_owned_columns_on_adopt_and_revive(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    """Adopting keeps the row's own values of Coder-owned columns; a revive (the row was
    soft-deleted in Coder) counts as a creation and writes the desired ones."""
    owned = frozenset({"enabled", "display_name", "icon"})
    await store_db.execute(
        "INSERT INTO ai_providers (type, name, display_name, enabled, base_url, icon) "
        "VALUES ('openai', 'openai', 'Made in Coder', false, 'https://example.com/v1', '/c.svg')"
    )
    desired = openai(K1, display_name="Spec", icon="/spec.svg", coder_owned=owned)
    adopted = await store.upsert_provider(desired, OWNER, adopt=True)
    assert adopted.action == "adopted"
    assert set(adopted.changed_fields) == {"base_url", "api_keys"}
    assert dict(adopted.coder_owned) == {
        "display_name": "Made in Coder",
        "enabled": False,
        "icon": "/c.svg",
    }
    assert await fetch(store_db, "SELECT display_name, enabled, icon FROM ai_providers") == [
        ("Made in Coder", False, "/c.svg")
    ]

    await store_db.execute("UPDATE ai_providers SET deleted = true, enabled = false")
    revived = await store.upsert_provider(desired, OWNER)
    assert revived.action == "revived"
    assert dict(revived.coder_owned) == {
        "display_name": "Spec",
        "enabled": True,
        "icon": "/spec.svg",
    }
    assert await fetch(
        store_db, "SELECT deleted, display_name, enabled, icon FROM ai_providers"
    ) == [(False, "Spec", True, "/spec.svg")]
