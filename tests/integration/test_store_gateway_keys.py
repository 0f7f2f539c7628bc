"""AI Gateway keys on real Postgres 15, owned: the journal (begin/complete), rotation,
retirement, release, the owner identity, name holders, collisions, audit, and the migration
of a database written by the release before ownership records."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from aigateway_operator.config import Settings
from aigateway_operator.store import (
    GatewayKeyConflict,
    InvalidName,
    NameTaken,
    OwnerRef,
    SecretCollision,
    Store,
    generate_gateway_secret,
)
from tests.support.store import OWNERS, fetch, owner

pytestmark = pytest.mark.integration

KIND = "AIGatewayCoderdKey"
A = owner("gw-a", kind=KIND, namespace="team-a")
B = owner("gw-b", kind=KIND, namespace="team-b")


def sha(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


async def begin(
    store: Store, who: OwnerRef, name: str, *, rotating: bool = False
) -> tuple[uuid.UUID, str]:
    """Journal a fresh key for ``who``."""
    kid, secret = uuid.uuid4(), generate_gateway_secret()
    await store.begin_gateway_key(who, kid, name, secret, rotating=rotating)
    return kid, secret


async def issue(
    store: Store, who: OwnerRef, name: str, *, rotating: bool = False
) -> tuple[uuid.UUID, str]:
    """What the controller does: journal, (deliver), complete."""
    kid, secret = await begin(store, who, name, rotating=rotating)
    issued = await store.complete_gateway_key(who, kid, name, secret)
    assert issued.created
    return kid, secret


async def key_rows(db: psycopg.AsyncConnection[Any]) -> dict[uuid.UUID, tuple[Any, ...]]:
    """id -> (name, secret_prefix, hashed_secret) of every ai_gateway_keys row."""
    rows = await fetch(db, "SELECT id, name, secret_prefix, hashed_secret FROM ai_gateway_keys")
    return {r[0]: (r[1], r[2], bytes(r[3])) for r in rows}


async def records(db: psycopg.AsyncConnection[Any]) -> set[tuple[Any, ...]]:
    """(namespace, name, role, row_id) of every gateway-key ownership record."""
    rows = await fetch(
        db,
        f"SELECT namespace, name, role, row_id FROM {OWNERS} "  # noqa: S608
        "WHERE row_table = 'ai_gateway_keys'",
    )
    return {tuple(r) for r in rows}


async def test_begin_journals_only_the_hash_and_writes_nothing_in_coder(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    kid, secret = uuid.uuid4(), generate_gateway_secret()
    pending = await store.begin_gateway_key(A, kid, "gw-a", secret, rotating=False)
    assert (pending.id, pending.secret_prefix, pending.rotating) == (kid, secret[:11], False)
    assert pending.matches(secret)
    assert not pending.matches(secret[:-1] + ("A" if secret[-1] != "A" else "B"))
    assert secret not in repr(pending)
    assert await key_rows(store_db) == {}
    (row,) = await fetch(
        store_db,
        f"SELECT role, row_id, secret_hash, secret_prefix, instance_id, object_uid "  # noqa: S608
        f"FROM {OWNERS}",
    )
    assert row == ("pending", kid, sha(secret), secret[:11], "test", "uid-gw-a")
    state = await store.gateway_key_state(A)
    assert state.pending == pending
    assert (state.current, state.current_recorded_id, state.recorded) == (None, None, True)
    # Replayed: the same record. A new begin replaces the older pending key.
    assert await store.begin_gateway_key(A, kid, "gw-a", secret, rotating=False) == pending
    kid2, secret2 = uuid.uuid4(), generate_gateway_secret()
    await store.begin_gateway_key(A, kid2, "gw-a", secret2, rotating=False)
    assert await records(store_db) == {("team-a", "gw-a", "pending", kid2)}
    assert await store.discard_pending(A) is True
    assert await store.discard_pending(A) is False
    assert await records(store_db) == set()


async def test_complete_inserts_the_journaled_key_and_replays(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    kid, secret = uuid.uuid4(), generate_gateway_secret()
    await store.begin_gateway_key(A, kid, "gw-a", secret, rotating=False)
    issued = await store.complete_gateway_key(A, kid, "gw-a", secret)
    assert (issued.id, issued.name, issued.secret_prefix, issued.created) == (
        kid,
        "gw-a",
        secret[:11],
        True,
    )
    assert await key_rows(store_db) == {kid: ("gw-a", secret[:11], sha(secret))}
    assert await records(store_db) == {("team-a", "gw-a", "current", kid)}
    (hash_left,) = await fetch(store_db, f"SELECT secret_hash FROM {OWNERS}")  # noqa: S608
    assert hash_left == (None,)  # the row holds the hash now; the journal entry is gone
    state = await store.gateway_key_state(A)
    assert state.current is not None
    assert (state.current.id, state.current_recorded_id, state.pending) == (kid, kid, None)
    assert state.matches(secret)
    assert await store.gateway_key_matches(A, secret)
    assert not await store.gateway_key_matches(A, generate_gateway_secret())
    # A crash after the commit: the same call again finds the row (no second row).
    again = await store.complete_gateway_key(A, kid, "gw-a", secret)
    assert (again.created, again.created_at) == (False, issued.created_at)
    assert len(await key_rows(store_db)) == 1


async def test_complete_refuses_anything_but_the_journaled_secret(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    kid, secret = uuid.uuid4(), generate_gateway_secret()
    await store.begin_gateway_key(A, kid, "gw-a", secret, rotating=False)
    chosen = "cgw_" + "T" * 39  # a value the tenant chose
    with pytest.raises(GatewayKeyConflict) as info:
        await store.complete_gateway_key(A, kid, "gw-a", chosen)
    assert chosen not in str(info.value)
    assert secret not in str(info.value)
    with pytest.raises(GatewayKeyConflict):  # a fresh id of the tenant's choosing
        await store.complete_gateway_key(A, uuid.uuid4(), "gw-a", chosen)
    with pytest.raises(GatewayKeyConflict):  # another owner's pending key
        await store.complete_gateway_key(B, kid, "gw-a", secret)
    assert await key_rows(store_db) == {}
    assert await records(store_db) == {("team-a", "gw-a", "pending", kid)}


async def test_rotation_keeps_the_previous_renamed_then_retires_it(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    first, s1 = await issue(store, A, "gw-a")
    second, s2 = await issue(store, A, "gw-a", rotating=True)
    rows = await key_rows(store_db)
    assert rows[first][0] == "gw-a-retiring-1"
    assert rows[second] == ("gw-a", s2[:11], sha(s2))
    assert await records(store_db) == {
        ("team-a", "gw-a", "previous", first),
        ("team-a", "gw-a", "current", second),
    }
    state = await store.gateway_key_state(A)
    assert state.previous is not None
    assert (state.previous.id, state.previous_recorded_id) == (first, first)
    assert state.previous_since is not None
    assert state.matches(s2)
    assert not state.matches(s1)
    # A second rotation during the grace period: the key before last goes first.
    third, _ = await issue(store, A, "gw-a", rotating=True)
    rows = await key_rows(store_db)
    assert set(rows) == {second, third}
    assert rows[second][0] == "gw-a-retiring-1"
    retired = await store.retire_previous(A)
    assert retired is not None
    assert retired.id == second
    assert set(await key_rows(store_db)) == {third}
    assert await store.retire_previous(A) is None
    assert await records(store_db) == {("team-a", "gw-a", "current", third)}


async def heartbeat(db: psycopg.AsyncConnection[Any], secret: str, ago_s: float = 0) -> int:
    """What coderd does for a connected gateway: ``last_heartbeat_at`` by the key's hash."""
    cur = await db.execute(
        "UPDATE ai_gateway_keys SET last_heartbeat_at = now() - make_interval(secs => %s) "
        "WHERE hashed_secret = %s",
        (ago_s, sha(secret)),
    )
    await db.commit()
    return cur.rowcount


async def test_heartbeats_of_both_keys_are_read_on_the_database_clock(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    """Issue #22 item 6: the rotation rule reads when coderd last saw each key, by hash, and
    the database's own clock to measure it by (not the operator's)."""
    _, s1 = await issue(store, A, "gw-a")
    _, s2 = await issue(store, A, "gw-a", rotating=True)
    state = await store.gateway_key_state(A)
    assert state.previous is not None
    assert state.current is not None
    assert (state.previous.last_heartbeat_at, state.current.last_heartbeat_at) == (None, None)
    assert await heartbeat(store_db, s1, ago_s=20) == 1
    assert await heartbeat(store_db, s2) == 1
    (db_now,) = (await fetch(store_db, "SELECT now()"))[0]
    state = await store.gateway_key_state(A)
    assert state.observed_at is not None
    assert state.previous is not None
    assert state.current is not None
    assert state.previous.last_heartbeat_at is not None
    assert state.current.last_heartbeat_at is not None
    old_age = (state.observed_at - state.previous.last_heartbeat_at).total_seconds()
    assert 20 <= old_age < 30
    assert state.current.last_heartbeat_at >= state.current.created_at
    assert state.observed_at >= db_now
    # Another owner's records carry nothing of ours.
    assert (await store.gateway_key_state(B)).observed_at is None


async def test_retiring_rechecks_the_previous_keys_heartbeat_under_its_lock(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    """The decision was made from an earlier read: a gateway that beat meanwhile keeps its
    key; one silent for longer than the window loses it; no window (force) always deletes."""
    window = timedelta(seconds=90)
    first, s1 = await issue(store, A, "gw-a")
    second, s2 = await issue(store, A, "gw-a", rotating=True)
    assert await heartbeat(store_db, s1, ago_s=30) == 1
    assert await store.retire_previous(A, unless_used_within=window) is None
    assert set(await key_rows(store_db)) == {first, second}
    assert ("team-a", "gw-a", "previous", first) in await records(store_db)
    assert await heartbeat(store_db, s1, ago_s=91) == 1
    retired = await store.retire_previous(A, unless_used_within=window)
    assert retired is not None
    assert retired.id == first
    assert set(await key_rows(store_db)) == {second}
    # Never used at all: nothing to wait for.
    third, _ = await issue(store, A, "gw-a", rotating=True)
    retired = await store.retire_previous(A, unless_used_within=window)
    assert retired is not None
    assert retired.id == second
    # Forced (no window): deleted however recent its heartbeat.
    fourth, _ = await issue(store, A, "gw-a", rotating=True)
    assert await heartbeat(store_db, s2) == 0  # long gone
    cur = await store_db.execute(
        "UPDATE ai_gateway_keys SET last_heartbeat_at = now() WHERE id = %s", (third,)
    )
    await store_db.commit()
    assert cur.rowcount == 1
    assert await store.retire_previous(A, unless_used_within=window) is None
    retired = await store.retire_previous(A)
    assert retired is not None
    assert retired.id == third
    assert set(await key_rows(store_db)) == {fourth}
    assert await records(store_db) == {("team-a", "gw-a", "current", fourth)}


async def test_reissue_without_rotation_replaces_the_current_row(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    old, _ = await issue(store, A, "gw-a")
    new, secret = await issue(store, A, "gw-a")
    assert await key_rows(store_db) == {new: ("gw-a", secret[:11], sha(secret))}
    assert await records(store_db) == {("team-a", "gw-a", "current", new)}
    assert old != new


async def test_a_row_deleted_in_coder_shows_as_recorded_but_missing(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    kid, secret = await issue(store, A, "gw-a")
    await store_db.execute("DELETE FROM ai_gateway_keys WHERE id = %s", (kid,))
    state = await store.gateway_key_state(A)
    assert (state.current, state.current_recorded_id, state.current_revoked) == (None, kid, True)
    assert not state.matches(secret)
    new, _ = await issue(store, A, "gw-a")  # the record of the missing row goes with it
    assert await records(store_db) == {("team-a", "gw-a", "current", new)}


async def test_names_held_by_others_are_refused_naming_the_holder(
    store: Store,
    store_settings: Callable[..., Settings],
    store_db: psycopg.AsyncConnection[Any],
) -> None:
    b_id, b_secret = await issue(store, B, "shared")
    await store_db.execute(
        "INSERT INTO ai_gateway_keys (id, created_at, name, secret_prefix, hashed_secret) "
        "VALUES (%s, now(), 'made-in-coder', 'abcdefghijk', %s)",
        (uuid.uuid4(), sha("coderd")),
    )
    with pytest.raises(NameTaken, match=r"AIGatewayCoderdKey team-b/gw-b") as info:
        await begin(store, A, "shared")
    assert info.value.holder == "AIGatewayCoderdKey team-b/gw-b"
    with pytest.raises(NameTaken, match="made in Coder"):
        await begin(store, A, "made-in-coder")
    other = await Store.open(store_settings(instance_id="staging"))
    try:
        staging = OwnerRef(kind=KIND, namespace="team-b", name="gw-b", instance="staging")
        with pytest.raises(NameTaken, match="operator instance 'test'"):
            await begin(other, staging, "shared")
    finally:
        await other.close()
    # The name was free at begin and taken before complete: refused at complete too.
    kid, secret = uuid.uuid4(), generate_gateway_secret()
    await store.begin_gateway_key(A, kid, "late", secret, rotating=False)
    await issue(store, owner("gw-c", kind=KIND, namespace="team-c"), "late")
    with pytest.raises(NameTaken, match="team-c/gw-c"):
        await store.complete_gateway_key(A, kid, "late", secret)
    rows = await key_rows(store_db)
    assert rows[b_id] == ("shared", b_secret[:11], sha(b_secret))  # B's rows untouched
    assert not [r for r in rows.values() if r[2] == sha(secret)]
    assert ("team-a", "gw-a", "pending", kid) in await records(store_db)


async def test_release_acts_only_on_recorded_rows(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    b_id, _ = await issue(store, B, "gw-b")
    a_old, _ = await issue(store, A, "gw-a")
    a_new, _ = await issue(store, A, "gw-a", rotating=True)
    await begin(store, A, "gw-a", rotating=True)
    result = await store.release_gateway_keys(A, "Delete")
    assert {k.id for k in result.deleted} == {a_old, a_new}
    assert (result.released, result.records) == ((), 3)
    assert set(await key_rows(store_db)) == {b_id}
    assert await records(store_db) == {("team-b", "gw-b", "current", b_id)}
    again = await store.release_gateway_keys(A, "Delete")
    assert (again.deleted, again.records) == ((), 0)
    # Orphan: the records go, the row stays in Coder (and belongs to nobody).
    orphaned = await store.release_gateway_keys(B, "Orphan")
    assert (orphaned.deleted, orphaned.released) == ((), (b_id,))
    assert set(await key_rows(store_db)) == {b_id}
    assert await records(store_db) == set()


async def test_owner_is_instance_kind_namespace_name_not_uid(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    kid, _ = await issue(store, A, "gw-a")
    recreated = OwnerRef(kind=KIND, namespace="team-a", name="gw-a", instance="test", uid="new")
    state = await store.gateway_key_state(recreated)
    assert state.current is not None
    assert state.current.id == kid
    # Another instance, another namespace (same name), another kind: other owners.
    for other in (
        OwnerRef(kind=KIND, namespace="team-a", name="gw-a", instance="prod"),
        OwnerRef(kind=KIND, namespace="team-b", name="gw-a", instance="test"),
        OwnerRef(kind="AIProvider", namespace="team-a", name="gw-a", instance="test"),
    ):
        assert not (await store.gateway_key_state(other)).recorded
        assert await store.retire_previous(other) is None
        assert (await store.release_gateway_keys(other, "Delete")).deleted == ()
        await begin(store, other, "gw-b")
        assert await store.discard_pending(other)
    assert set(await key_rows(store_db)) == {kid}
    assert await records(store_db) == {("team-a", "gw-a", "current", kid)}


async def test_deletion_policy_is_kept_with_the_records(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    kid, secret = uuid.uuid4(), generate_gateway_secret()
    await store.begin_gateway_key(A, kid, "gw-a", secret, rotating=False, deletion_policy="Orphan")
    await store.complete_gateway_key(A, kid, "gw-a", secret)
    assert (await store.gateway_key_state(A)).deletion_policy == "Orphan"
    assert await store.record_deletion_policy(A, "Delete") == 1
    assert await store.record_deletion_policy(A, "Delete") == 0
    assert (await store.gateway_key_state(A)).deletion_policy == "Delete"
    # A journal entry under another policy: the records disagree, so none is reported.
    await begin(store, A, "gw-a")
    await store.record_deletion_policy(A, "Delete")
    await store_db.execute(
        f"UPDATE {OWNERS} SET deletion_policy = 'Orphan' WHERE role = 'pending'"  # noqa: S608
    )
    assert (await store.gateway_key_state(A)).deletion_policy is None
    assert await store.record_deletion_policy(A, "Orphan") == 1


async def test_heartbeat_is_read_back(store: Store, store_db: psycopg.AsyncConnection[Any]) -> None:
    await issue(store, A, "gw-a")
    state = await store.gateway_key_state(A)
    assert state.current is not None
    assert state.current.last_heartbeat_at is None
    await store_db.execute("UPDATE ai_gateway_keys SET last_heartbeat_at = NOW()")
    state = await store.gateway_key_state(A)
    assert state.current is not None
    assert state.current.last_heartbeat_at is not None


async def test_heartbeat_is_none_without_the_column(
    store: Store, store_settings: Callable[..., Settings], store_db: psycopg.AsyncConnection[Any]
) -> None:
    # A Coder between 000514 and 000532: the column was still called last_used_at.
    await store_db.execute(
        "ALTER TABLE ai_gateway_keys RENAME COLUMN last_heartbeat_at TO last_used_at"
    )
    await store_db.execute("UPDATE schema_migrations SET version = 520")
    old = await Store.open(store_settings(coderd=False))
    try:
        assert not old.capabilities.has_heartbeat
        await issue(old, A, "gw-a")
        await issue(old, A, "gw-a", rotating=True)
        state = await old.gateway_key_state(A)
        assert state.current is not None
        assert state.previous is not None
        assert state.current.last_heartbeat_at is None
        assert (await old.retire_previous(A)) is not None
    finally:
        await old.close()


async def test_name_and_secret_rules(store: Store) -> None:
    for bad in ("Dup", "a" * 65, "-a", "a--b"):
        with pytest.raises(InvalidName):
            await begin(store, A, bad)
    with pytest.raises(GatewayKeyConflict):
        await store.begin_gateway_key(A, uuid.uuid4(), "gw-a", "short", rotating=False)
    # A long name still leaves room for its retiring names.
    long = "a" * 64
    await issue(store, A, long)
    await issue(store, A, long, rotating=True)
    state = await store.gateway_key_state(A)
    assert state.previous is not None
    assert len(state.previous.name) == 64
    assert state.previous.name.endswith("-retiring-1")


async def test_a_colliding_secret_is_refused_and_writes_nothing(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    b_id, b_secret = await issue(store, B, "gw-b")
    same_prefix = b_secret[:11] + "Z" * 32
    kid = uuid.uuid4()
    await store.begin_gateway_key(A, kid, "gw-a", same_prefix, rotating=False)
    with pytest.raises(SecretCollision):
        await store.complete_gateway_key(A, kid, "gw-a", same_prefix)
    assert set(await key_rows(store_db)) == {b_id}
    assert ("team-a", "gw-a", "pending", kid) in await records(store_db)


async def test_gateway_key_audit_shape(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    first, s1 = await issue(store, A, "audited")
    _, s2 = await issue(store, A, "audited", rotating=True)
    await store.retire_previous(A)
    rows = await fetch(
        store_db,
        "SELECT action::text, resource_id, resource_target, diff, additional_fields "
        "FROM audit_logs WHERE resource_type = 'ai_gateway_key' ORDER BY \"time\", action",
    )
    assert [r[0] for r in rows].count("create") == 2
    (write,) = [r for r in rows if r[0] == "write"]
    assert write[1:4] == (
        first,
        "audited-retiring-1",
        {"name": {"Old": "audited", "New": "audited-retiring-1", "Secret": False}},
    )
    (delete,) = [r for r in rows if r[0] == "delete"]
    assert (delete[1], delete[2]) == (first, "audited-retiring-1")
    create = next(r for r in rows if r[0] == "create")
    assert create[3]["hashed_secret"] == {"Old": "", "New": "", "Secret": True}
    assert create[3]["secret_prefix"]["New"] == s1[:11]
    assert create[4]["kubernetes"] == {
        "instance": "test",
        "kind": KIND,
        "namespace": "team-a",
        "name": "gw-a",
        "uid": "uid-gw-a",
        "actor": "unknown",
        "actor_source": "unknown",
        "actor_reason": "not attributed by the operator",
    }
    assert s1 not in str(rows)
    assert s2 not in str(rows)
    # Journaling and discarding are the operator's bookkeeping, not Coder changes.
    before = len(rows)
    await begin(store, A, "audited")
    await store.discard_pending(A)
    (count,) = await fetch(store_db, "SELECT count(*) FROM audit_logs")
    assert count == (before,)


async def test_collect_spares_a_recreated_object_and_applies_the_recorded_policy(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    """The garbage collector's call: a late delete event of an earlier object of the same
    identity changes nothing once the re-created object's pass recorded its uid; the records
    of an object that is really gone go per their policy (Orphan only when all say so)."""
    old = OwnerRef(kind=KIND, namespace="team-a", name="gw-a", instance="test", uid="old")
    new = OwnerRef(kind=KIND, namespace="team-a", name="gw-a", instance="test", uid="new")
    kid, _ = await issue(store, old, "gw-a")
    assert (await store.gateway_key_state(new)).object_uid == "old"
    assert await store.record_deletion_policy(new, "Delete") == 1  # the new object's pass
    assert (await store.gateway_key_state(new)).object_uid == "new"
    spared = await store.collect_gateway_keys(old)
    assert (spared.deleted, spared.records) == ((), 0)
    assert set(await key_rows(store_db)) == {kid}
    gone = await store.collect_gateway_keys(new)
    assert [k.id for k in gone.deleted] == [kid]
    assert await key_rows(store_db) == {}
    assert await records(store_db) == set()
    # Orphan recorded: the row stays in Coder, the records go.
    b_id, secret = uuid.uuid4(), generate_gateway_secret()
    await store.begin_gateway_key(B, b_id, "gw-b", secret, rotating=False, deletion_policy="Orphan")
    await store.complete_gateway_key(B, b_id, "gw-b", secret)
    kept = await store.collect_gateway_keys(B)
    assert (kept.deleted, kept.released) == ((), (b_id,))
    assert set(await key_rows(store_db)) == {b_id}


async def test_the_rotation_generation_is_recorded_with_the_key(store: Store) -> None:
    """#23: which spec.rotation.generation a key was issued for is the operator's record
    (journaled with the pending key, kept when it becomes current, and the rotation's key
    carries its own), never the status or the Secret."""
    owner_ = owner("gw-rot", kind=KIND, namespace="team-r")
    kid, secret = uuid.uuid4(), generate_gateway_secret()
    pending = await store.begin_gateway_key(
        owner_, kid, "gw-rot", secret, rotating=False, rotation_generation=0
    )
    assert pending.rotation_generation == 0
    state = await store.gateway_key_state(owner_)
    assert state.pending is not None
    assert state.pending.rotation_generation == 0
    assert state.current_rotation_generation is None
    await store.complete_gateway_key(owner_, kid, "gw-rot", secret)
    assert (await store.gateway_key_state(owner_)).current_rotation_generation == 0
    # A rotation for generation 3: the new current key says 3, the previous one is kept.
    new, new_secret = uuid.uuid4(), generate_gateway_secret()
    await store.begin_gateway_key(
        owner_, new, "gw-rot", new_secret, rotating=True, rotation_generation=3
    )
    assert (await store.gateway_key_state(owner_)).current_rotation_generation == 0
    await store.complete_gateway_key(owner_, new, "gw-rot", new_secret)
    state = await store.gateway_key_state(owner_)
    assert (state.current_recorded_id, state.current_rotation_generation) == (new, 3)
    assert state.previous_recorded_id == kid
