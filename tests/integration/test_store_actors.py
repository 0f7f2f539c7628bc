"""Who made each spec generation (``aigateway_operator.actors``) and the audit rows that name
them, on a real Postgres: recording, lookup, pruning, and ``user_agent`` /
``additional_fields.kubernetes`` of every audit row the store writes."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from typing import Any

import psycopg
import pytest

from aigateway_operator.store import (
    Actor,
    DesiredProvider,
    ProviderType,
    Store,
    generate_gateway_secret,
)
from aigateway_operator.store.actors import KEEP_GENERATIONS
from aigateway_operator.store.audit import USER_AGENT
from tests.support.store import ACTORS, fetch, owner

pytestmark = pytest.mark.integration

SA = "system:serviceaccount:team-a:deployer"
GROUPS = ("system:serviceaccounts", "system:serviceaccounts:team-a", "system:authenticated")
KEY = "sk-actor-test-0123456789abcdef"


async def record(
    store: Store,
    uid: str,
    generation: int,
    actor: Actor,
    digest: str = "d1",
    name: str = "openai",
) -> None:
    await store.record_actor(
        object_uid=uid,
        generation=generation,
        spec_digest=digest,
        kind="AIProvider",
        namespace="team-a",
        name=name,
        actor=actor,
    )


async def test_recorded_requester_is_found_by_uid_generation_and_spec(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    await record(store, "uid-1", 1, Actor.admitted(SA, GROUPS))
    assert await store.admission_actor("uid-1", 1, "d1") == Actor.admitted(SA, GROUPS)
    # Another generation, another object: no record, and the reason says so.
    assert await store.admission_actor("uid-1", 2, "d1") == Actor.unknown(
        "no admission record for generation 2"
    )
    assert (await store.admission_actor("uid-2", 1, "d1")).name == "unknown"
    # A request admitted but never stored (its spec is not the one the pass applies).
    got = await store.admission_actor("uid-1", 1, "d-other")
    assert got.name == "unknown"
    assert "of another spec" in got.reason
    # Two admitted requests for the same generation (one lost a conflict): each found by its
    # spec; the same spec again replaces its requester.
    await record(store, "uid-1", 1, Actor.admitted("bob"), digest="d-other")
    assert (await store.admission_actor("uid-1", 1, "d-other")).name == "bob"
    assert (await store.admission_actor("uid-1", 1, "d1")).name == SA
    await record(store, "uid-1", 1, Actor.admitted("carol"), digest="d-other")
    assert (await store.admission_actor("uid-1", 1, "d-other")).name == "carol"
    rows = await fetch(
        store_db,
        f"SELECT object_uid, generation, kind, namespace, name, actor, actor_groups "  # noqa: S608
        f"FROM {ACTORS} ORDER BY spec_digest",
    )
    assert rows == [
        ("uid-1", 1, "AIProvider", "team-a", "openai", "carol", []),  # d-other
        ("uid-1", 1, "AIProvider", "team-a", "openai", SA, list(GROUPS)),  # d1
    ]


async def test_old_generations_and_released_objects_are_pruned(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    for generation in range(1, 8):
        await record(store, "uid-1", generation, Actor.admitted(f"user-{generation}"))
    await record(store, "uid-other", 1, Actor.admitted("other"))
    kept = await fetch(
        store_db,
        f"SELECT generation FROM {ACTORS} WHERE object_uid = 'uid-1' ORDER BY 1",  # noqa: S608
    )
    assert [g for (g,) in kept] == list(range(8 - KEEP_GENERATIONS, 8))

    # Records of objects gone long ago (no ownership record) go with the next recording.
    await store_db.execute(
        f"UPDATE {ACTORS} SET recorded_at = now() - interval '31 days' "  # noqa: S608
        "WHERE object_uid = 'uid-other'"
    )
    await store_db.commit()
    await record(store, "uid-1", 8, Actor.admitted("user-8"))
    uids = await fetch(store_db, f"SELECT DISTINCT object_uid FROM {ACTORS}")  # noqa: S608
    assert uids == [("uid-1",)]

    # Deleting the object's provider drops its records.
    who = owner("openai", uid="uid-1", namespace="team-a")
    await store.upsert_provider(
        DesiredProvider(name="openai", type=ProviderType.OPENAI, api_keys=(KEY,)), who
    )
    await store.delete_provider(who)
    assert await fetch(store_db, f"SELECT count(*) FROM {ACTORS}") == [(0,)]  # noqa: S608


async def test_gateway_key_release_drops_the_objects_records(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    who = owner("gw", kind="AIGatewayCoderdKey", uid="uid-gw")
    await record(store, "uid-gw", 1, Actor.admitted(SA), name="gw")
    await record(store, "uid-keep", 1, Actor.admitted(SA), name="keep")
    await store.release_gateway_keys(who, "Delete")
    uids = await fetch(store_db, f"SELECT object_uid FROM {ACTORS}")  # noqa: S608
    assert uids == [("uid-keep",)]


async def audit_rows(db: psycopg.AsyncConnection[Any]) -> list[tuple[Any, ...]]:
    return await fetch(
        db,
        "SELECT resource_type::text, action::text, user_id, user_agent, additional_fields "
        'FROM audit_logs ORDER BY "time", resource_type, action',
    )


async def test_every_audit_row_names_the_actor_and_the_object(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    base = owner("openai", uid="uid-p", namespace="team-a", generation=1)
    admitted = replace(base, actor=Actor.admitted(SA, GROUPS))
    await store.upsert_provider(
        DesiredProvider(name="openai", type=ProviderType.OPENAI, api_keys=(KEY,)), admitted
    )
    edited = replace(base, generation=2, actor=Actor.admitted("bob@example.com"))
    await store.upsert_provider(
        DesiredProvider(
            name="openai", type=ProviderType.OPENAI, display_name="Open", api_keys=(KEY + "2",)
        ),
        edited,
    )
    await store.delete_provider(replace(base, generation=2, actor=Actor.unknown("deleted")))
    gw = replace(
        owner("gw", kind="AIGatewayCoderdKey", uid="uid-g", generation=1),
        actor=Actor.operator("scheduled rotation"),
    )
    kid, secret = uuid.uuid4(), generate_gateway_secret()
    await store.begin_gateway_key(gw, kid, "gw", secret, rotating=False)
    await store.complete_gateway_key(gw, kid, "gw", secret)

    rows = await audit_rows(store_db)
    assert KEY not in json.dumps([r[4] for r in rows])
    assert secret not in str(rows)
    by = {(r[0], r[1], r[4]["kubernetes"]["generation"]): r for r in rows}
    create = by[("ai_provider", "create", 1)]
    assert create[2] == uuid.UUID(int=0)  # the nil user: a non-human actor, as before
    assert create[3] == f"{USER_AGENT} (kubernetes: {SA})"
    assert create[4]["kubernetes"] == {
        "instance": "test",
        "kind": "AIProvider",
        "namespace": "team-a",
        "name": "openai",
        "uid": "uid-p",
        "generation": 1,
        "actor": SA,
        "actor_source": "admission",
        "actor_groups": list(GROUPS),
    }
    # The key rows of the same change carry the same actor.
    key_create = by[("ai_provider_key", "create", 1)]
    assert key_create[3] == create[3]
    assert key_create[4]["kubernetes"]["actor"] == SA
    # An update keeps coderd's key summary next to ours.
    write = by[("ai_provider", "write", 2)]
    assert write[3] == f"{USER_AGENT} (kubernetes: bob@example.com)"
    assert set(write[4]) == {"added", "removed", "kept", "kubernetes"}
    assert write[4]["kubernetes"]["actor"] == "bob@example.com"
    delete = by[("ai_provider", "delete", 2)]
    assert delete[3] == f"{USER_AGENT} (kubernetes: unknown)"
    assert delete[4]["kubernetes"]["actor_reason"] == "deleted"
    assert delete[4]["kubernetes"]["actor_source"] == "unknown"
    key = by[("ai_gateway_key", "create", 1)]
    assert key[3] == f"{USER_AGENT} (kubernetes: aigateway-operator (scheduled rotation))"
    assert key[4]["kubernetes"]["actor_source"] == "operator"


async def test_a_long_actor_fits_user_agent(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    long = "oidc:" + "a" * 300
    who = replace(owner("long", uid="uid-l"), actor=Actor.admitted(long))
    await store.upsert_provider(
        DesiredProvider(name="long", type=ProviderType.OPENAI, api_keys=(KEY,)), who
    )
    (agent,) = {r[3] for r in await audit_rows(store_db)}
    assert len(agent) == 256
    assert agent.startswith(f"{USER_AGENT} (kubernetes: oidc:aaa")
