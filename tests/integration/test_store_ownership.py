"""Ownership by identity on a real Postgres: every provider row is recorded for (instance,
kind, namespace, name); only the recorded identity may change it; a rebuilt cluster takes its
rows back; a newcomer waits for the current owner; adoption never changes a type; the
garbage collector applies the policy recorded with the row."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from aigateway_operator.store import (
    AppliedInputs,
    DeletePolicy,
    DesiredProvider,
    NameConflict,
    NameTaken,
    ProviderType,
    Store,
    TypeMismatch,
    VerificationRecord,
)
from aigateway_operator.store.cipher import Cipher
from tests.support.store import OWNERS, STORE_KEY_A, fetch, owner, snapshot

pytestmark = pytest.mark.integration

K1 = "sk-ownership-AAAAAAAAAAAAAAAAAAAA-0001"
K2 = "sk-ownership-BBBBBBBBBBBBBBBBBBBB-0002"


def openai(*keys: str, name: str = "shared") -> DesiredProvider:
    return DesiredProvider(name=name, type=ProviderType.OPENAI, api_keys=keys)


async def records(conn: psycopg.AsyncConnection[Any]) -> list[tuple[Any, ...]]:
    return await fetch(
        conn,
        f"SELECT instance_id, kind, namespace, name, object_uid, adopted, deletion_policy "  # noqa: S608
        f"FROM {OWNERS} WHERE row_table = 'ai_providers' ORDER BY namespace, name",
    )


async def test_every_row_is_recorded_for_its_identity(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    a = owner("a", namespace="team-a", uid="uid-1")
    await store.upsert_provider(openai(K1), a, policy=DeletePolicy.RELEASE)
    assert await records(store_db) == [
        ("test", "AIProvider", "team-a", "a", "uid-1", False, "Orphan")
    ]
    # The policy follows the spec: the record is updated, Coder's row is not.
    before = await fetch(store_db, "SELECT xmin::text FROM ai_providers")
    assert (await store.upsert_provider(openai(K1), a)).action == "unchanged"
    assert (await records(store_db))[0][6] == "Delete"
    assert await fetch(store_db, "SELECT xmin::text FROM ai_providers") == before


async def test_a_rebuilt_cluster_takes_its_rows_back(store: Store) -> None:
    """Same instance, kind, namespace and name, new uid (a cluster restored from Git)."""
    first = await store.upsert_provider(openai(K1), owner("p", uid="uid-old"))
    again = await store.upsert_provider(openai(K1), owner("p", uid="uid-new"))
    assert again.action == "unchanged"
    assert again.provider_id == first.provider_id


async def test_the_current_owner_keeps_the_name_until_it_is_gone(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    holder = owner("holder", namespace="team-a")
    newcomer = owner("newcomer", namespace="team-b")
    await store.upsert_provider(openai(K1), holder)
    before = await snapshot(store_db)
    with pytest.raises(NameTaken, match="held by AIProvider team-a/holder") as info:
        await store.upsert_provider(openai(K2), newcomer, adopt=True)
    assert info.value.holder == "AIProvider team-a/holder"
    assert await snapshot(store_db) == before
    # Another operator install against the same Coder: named as such, never as an object.
    other = owner("holder", namespace="team-a", instance="staging")
    with pytest.raises(NameTaken, match="operator instance 'test'"):
        await store.upsert_provider(openai(K2), other)
    # The holder goes: the name is free and the newcomer creates its own row.
    assert (await store.delete_provider(holder)).action == "deleted"
    created = await store.upsert_provider(openai(K2), newcomer)
    assert created.action == "created"


async def test_adoption_never_changes_the_type_and_is_audited(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    await store_db.execute(
        "INSERT INTO ai_providers (type, name, base_url) "
        "VALUES ('anthropic', 'shared', 'https://api.anthropic.com/')"
    )
    adopter = owner("adopter")
    with pytest.raises(NameConflict):
        await store.upsert_provider(openai(K1), adopter)  # not asked to adopt
    before = await snapshot(store_db)
    with pytest.raises(TypeMismatch, match=r"'anthropic'.*'openai'"):
        await store.upsert_provider(openai(K1), adopter, adopt=True)
    assert await snapshot(store_db) == before
    same_type = DesiredProvider(name="shared", type=ProviderType.ANTHROPIC, api_keys=(K1,))
    adopted = await store.upsert_provider(same_type, adopter, adopt=True)
    assert adopted.action == "adopted"
    assert (await records(store_db))[0][5] is True
    rows = await fetch(
        store_db,
        "SELECT action::text, additional_fields FROM audit_logs "
        "WHERE resource_type = 'ai_provider' ORDER BY time",
    )
    assert [a for a, _ in rows] == ["write"]
    assert rows[0][1]["adopted"] is True
    assert rows[0][1]["kubernetes"]["name"] == "adopter"


async def test_collect_applies_the_recorded_policy(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    kept = owner("kept")
    gone = owner("gone")
    await store.upsert_provider(openai(K1, name="kept"), kept, policy=DeletePolicy.RELEASE)
    await store.upsert_provider(openai(K2, name="gone"), gone)
    recorded = await store.owner_records("test")
    assert sorted(r.owner.name for r in recorded) == ["gone", "kept"]
    assert {r.owner.name: r.deletion_policy for r in recorded} == {
        "kept": "Orphan",
        "gone": "Delete",
    }
    before = await snapshot(store_db)
    assert (await store.collect_provider(kept)).action == "absent"  # Orphan: left in place
    assert await snapshot(store_db) == before
    assert (await store.collect_provider(gone)).action == "deleted"
    live = await fetch(store_db, "SELECT name, deleted FROM ai_providers ORDER BY name")
    assert live == [("gone", True), ("kept", False)]
    assert [r.owner.name for r in await store.owner_records("test")] == ["kept"]
    assert await fetch(store_db, "SELECT count(*) FROM ai_provider_keys") == [(1,)]  # kept's
    # The orphaned row is still kept's: nobody else takes the name, kept re-created does.
    with pytest.raises(NameTaken, match="held by AIProvider ns/kept"):
        await store.upsert_provider(openai(K1, name="kept"), owner("other"), adopt=True)
    back = await store.upsert_provider(openai(K1, name="kept"), owner("kept", uid="uid-new"))
    assert back.action == "unchanged"


async def test_the_same_identity_comes_back_after_its_row_was_deleted(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    """Deleted (Delete policy, or collected), then re-applied: the identity's row id is the
    same, so the soft-deleted row is revived, never a duplicate-key failure."""
    me = owner("p")
    first = await store.upsert_provider(openai(K1), me)
    assert (await store.delete_provider(me)).action == "deleted"
    again = await store.upsert_provider(openai(K2), me)
    assert again.provider_id == first.provider_id
    rows = await fetch(store_db, "SELECT deleted, enabled FROM ai_providers")
    assert rows == [(False, True)]
    assert [r.owner.key for r in await store.owner_records("test")] == [me.key]


async def test_collecting_a_deleted_object_spares_its_successor(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    """The delete event of an object arrives after the same name was re-created: the record
    now names the new object, so collecting for the old uid changes nothing."""
    old, new = owner("p", uid="uid-old"), owner("p", uid="uid-new")
    await store.upsert_provider(openai(K1), old)
    await store.upsert_provider(openai(K1), new)
    assert (await store.collect_provider(old)).action == "absent"
    assert await fetch(store_db, "SELECT deleted FROM ai_providers") == [(False,)]
    assert (await store.collect_provider(new)).action == "deleted"
    assert await fetch(store_db, "SELECT deleted FROM ai_providers") == [(True,)]


# --- what was applied: the operator's own record, never the status (#23) ---------------------


async def test_what_a_write_applied_is_recorded_with_it(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    p = owner("applied", uid="uid-1")
    assert await store.applied_inputs(p) is None
    first = AppliedInputs("uid-1", 1, "spec-1", "rev-1")
    await store.upsert_provider(openai(K1, name="applied"), p, applied=first)
    assert await store.applied_inputs(p) == first
    # A new generation whose row is already right: recorded, Coder's row not touched.
    before = await fetch(store_db, "SELECT xmin::text FROM ai_providers")
    second = AppliedInputs("uid-1", 2, "spec-2", "rev-1")
    result = await store.upsert_provider(openai(K1, name="applied"), p, applied=second)
    assert result.action == "unchanged"
    assert await store.applied_inputs(p) == second
    assert await fetch(store_db, "SELECT xmin::text FROM ai_providers") == before
    # Another identity's record is its own.
    assert await store.applied_inputs(owner("other")) is None


async def test_a_write_that_fails_records_nothing_applied(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    """The record and the row change in one transaction: a write that does not commit leaves
    both as they were (a later pass then still sees the generation as not applied)."""
    p = owner("atomic", uid="uid-1")
    first = AppliedInputs("uid-1", 1, "spec-1", "rev-1")
    await store.upsert_provider(openai(K1, name="atomic"), p, applied=first)

    async def crash(point: str, conn: Any) -> None:
        if point == "provider_written":
            raise RuntimeError("crash after the provider row was written")

    store._fault_hook = crash
    try:
        with pytest.raises(RuntimeError):
            await store.upsert_provider(
                openai(K1, K2, name="atomic"), p, applied=AppliedInputs("uid-1", 2, "s2", "r2")
            )
    finally:
        store._fault_hook = None
    assert await store.applied_inputs(p) == first
    assert await fetch(store_db, "SELECT count(*) FROM ai_provider_keys") == [(1,)]


async def test_a_row_left_alone_records_nothing_applied(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    p = owner("future", uid="uid-1")
    first = AppliedInputs("uid-1", 1, "spec-1", "rev-1")
    desired = DesiredProvider(name="future", type=ProviderType.ANTHROPIC, api_keys=(K1,))
    await store.upsert_provider(desired, p, applied=first)
    # A newer Coder's settings variant this operator does not know: the row is left alone.
    cipher = Cipher(STORE_KEY_A)
    blob = '{"_type":"claude_platform_aws","_version":1,"region":"us-east-1"}'
    await store_db.execute(
        "UPDATE ai_providers SET settings = %s, settings_key_id = %s WHERE name = 'future'",
        (cipher.encrypt(blob.encode()), cipher.digest),
    )
    desired = DesiredProvider(name="future", type=ProviderType.ANTHROPIC, api_keys=(K1,))
    result = await store.upsert_provider(
        desired, p, applied=AppliedInputs("uid-1", 2, "spec-2", "rev-1")
    )
    assert result.action == "left_alone"
    assert await store.applied_inputs(p) == first


async def test_the_sts_verification_is_recorded_with_the_row(store: Store) -> None:
    p = owner("verified", uid="uid-1")
    at = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    record = VerificationRecord("uid-1/1/rev", "digest", at)
    assert not await store.record_provider_verification(p, record), "no row, no record"
    assert await store.provider_verification(p) is None
    await store.upsert_provider(openai(K1, name="verified"), p)
    assert await store.record_provider_verification(p, record)
    assert await store.provider_verification(p) == record
    assert await store.provider_verification(owner("other")) is None
