"""One contract, two stores: the claim scenarios of ``upsert_provider`` (create, update,
unchanged, adopt, revive, a name held by another owner, the store's refusals in the order the
store meets them) and ``preview_provider`` (the same claim, nothing written), run against the
in-memory :class:`~tests.support.fakes.FakeProviderStore` AND the real store on Postgres.

The unit tests of the AIProvider pass run on the fake; whatever they prove holds for the
product only as far as the fake keeps the store's rules. This module is that proof: every
scenario's outcome (the action, the exception and what it names, which row a write lands on)
must be the same on both, and a rule changed in one and not the other fails here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from aigateway_operator.store import (
    DeletePolicy,
    DesiredProvider,
    NameConflict,
    NameTaken,
    ProviderType,
    RevivalUnconfirmed,
    Store,
    TypeMismatch,
)
from tests.support.fakes import Clock, FakeProviderStore
from tests.support.store import owner

pytestmark = pytest.mark.integration

K1 = "sk-contract-AAAAAAAAAAAAAAAAAAAA-0001"
K2 = "sk-contract-BBBBBBBBBBBBBBBBBBBB-0002"


def provider(
    *keys: str, name: str = "shared", type_: ProviderType = ProviderType.OPENAI, **kw: Any
) -> DesiredProvider:
    return DesiredProvider(name=name, type=type_, api_keys=keys, **kw)


@dataclass
class Backend:
    """A store under the contract, and the two things only Coder does to its rows: make one
    in its UI, and soft-delete one."""

    name: str
    store: Any  # Store or FakeProviderStore: the same methods, the same results
    dsn: str | None = None
    fake: FakeProviderStore | None = None

    async def made_in_coder(self, name: str, type_: ProviderType) -> uuid.UUID:
        if self.fake is not None:
            return self.fake.add_foreign(provider(name=name, type_=type_)).id
        assert self.dsn is not None
        async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
            cur = await conn.execute(
                "INSERT INTO ai_providers (type, name, display_name, base_url) "
                "VALUES (%s, %s, 'Made in the UI', 'https://api.openai.com/v1/') RETURNING id",
                (type_.value, name),
            )
            row = await cur.fetchone()
        assert row is not None
        return uuid.UUID(str(row[0]))

    async def deleted_in_coder(self, row_id: uuid.UUID) -> None:
        if self.fake is not None:
            self.fake.rows[row_id].deleted = True
            return
        assert self.dsn is not None
        async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
            await conn.execute("UPDATE ai_providers SET deleted = true WHERE id = %s", (row_id,))


@pytest.fixture(params=["fake", "postgres"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "fake":
        fake = FakeProviderStore(clock=Clock())
        return Backend("fake", fake, fake=fake)
    # Only the Postgres case starts Postgres (the fake runs without it).
    store: Store = request.getfixturevalue("store")
    return Backend("postgres", store, dsn=request.getfixturevalue("store_dsn"))


async def test_create_then_unchanged_then_update(backend: Backend) -> None:
    me = owner("a")
    assert (await backend.store.preview_provider(provider(K1), me)).action == "create"
    first = await backend.store.upsert_provider(provider(K1), me)
    assert first.action == "created"
    assert (await backend.store.preview_provider(provider(K1), me)).action == "unchanged"
    again = await backend.store.upsert_provider(provider(K1), me)
    assert (again.action, again.provider_id) == ("unchanged", first.provider_id)
    edited = provider(K1, K2, display_name="Edited")
    preview = await backend.store.preview_provider(edited, me)
    assert (preview.action, preview.columns) == ("update", ("display_name",))
    updated = await backend.store.upsert_provider(edited, me)
    assert (updated.action, updated.provider_id) == ("updated", first.provider_id)
    assert "display_name" in updated.changed_fields
    assert [k.masked for k in updated.keys_added] == [k.masked for k in updated.keys[1:]]
    assert len(updated.keys_kept) == 1


async def test_a_row_made_in_coder_is_a_conflict_until_adopted_and_never_of_another_type(
    backend: Backend,
) -> None:
    me = owner("a")
    ui = await backend.made_in_coder("shared", ProviderType.OPENAI)
    for call in (backend.store.preview_provider, backend.store.upsert_provider):
        with pytest.raises(NameConflict):
            await call(provider(K1), me)
        with pytest.raises(TypeMismatch):
            await call(provider(K1, type_=ProviderType.ANTHROPIC), me, adopt=True)
    # Without adopt, the type is never looked at: the conflict comes first.
    with pytest.raises(NameConflict):
        await backend.store.upsert_provider(provider(K1, type_=ProviderType.ANTHROPIC), me)
    assert (await backend.store.preview_provider(provider(K1), me, adopt=True)).action == "adopt"
    adopted = await backend.store.upsert_provider(provider(K1), me, adopt=True)
    assert (adopted.action, adopted.provider_id) == ("adopted", ui)
    again = await backend.store.upsert_provider(provider(K1), me)
    assert (again.action, again.provider_id) == ("unchanged", ui)


async def test_a_row_deleted_in_coder_is_revived_only_when_confirmed(backend: Backend) -> None:
    me = owner("a")
    first = await backend.store.upsert_provider(provider(K1), me)
    await backend.deleted_in_coder(first.provider_id)
    assert (await backend.store.preview_provider(provider(K1), me)).action == "revive"
    with pytest.raises(RevivalUnconfirmed):
        await backend.store.upsert_provider(provider(K1), me, revive=False)
    revived = await backend.store.upsert_provider(provider(K1), me, revive=True)
    assert (revived.action, revived.provider_id) == ("revived", first.provider_id)
    assert "deleted" in revived.changed_fields


async def test_a_name_held_by_another_owner_is_refused_before_anything_else(
    backend: Backend,
) -> None:
    holder = owner("holder", namespace="team-a")
    newcomer = owner("newcomer", namespace="team-b")
    await backend.store.upsert_provider(provider(K1), holder)
    # Held by an object: NameTaken naming it, whatever else the request asks (adopt, another
    # type): the holder is the first refusal, before adoption and type.
    for call in (backend.store.preview_provider, backend.store.upsert_provider):
        for desired, adopt in (
            (provider(K2), False),
            (provider(K2), True),
            (provider(K2, type_=ProviderType.ANTHROPIC), True),
        ):
            with pytest.raises(NameTaken) as info:
                await call(desired, newcomer, adopt=adopt)
            assert info.value.holder == "AIProvider team-a/holder"
    # Another operator install against the same Coder: named as an instance, not an object.
    with pytest.raises(NameTaken, match="operator instance 'test'"):
        await backend.store.upsert_provider(
            provider(K2), owner("holder", namespace="team-a", instance="staging")
        )


async def test_renaming_onto_a_live_name_is_refused(backend: Backend) -> None:
    me, other = owner("a"), owner("b")
    await backend.store.upsert_provider(provider(K1, name="first"), me)
    await backend.store.upsert_provider(provider(K2, name="second"), other)
    for call in (backend.store.preview_provider, backend.store.upsert_provider):
        with pytest.raises(NameTaken):
            await call(provider(K1, name="second"), me)


async def test_the_name_is_free_once_its_owner_is_deleted(backend: Backend) -> None:
    holder, newcomer = owner("holder"), owner("newcomer")
    first = await backend.store.upsert_provider(provider(K1), holder)
    assert (await backend.store.delete_provider(holder)).action == "deleted"
    assert (await backend.store.delete_provider(holder)).action == "absent"
    taken = await backend.store.upsert_provider(provider(K2), newcomer)
    assert taken.action == "created"
    assert taken.provider_id != first.provider_id


async def test_an_orphaned_row_stays_and_keeps_its_name(backend: Backend) -> None:
    holder = owner("holder")
    first = await backend.store.upsert_provider(provider(K1), holder)
    released = await backend.store.delete_provider(holder, DeletePolicy.RELEASE)
    assert (released.action, released.provider_id) == ("released", first.provider_id)
    with pytest.raises(NameTaken):
        await backend.store.upsert_provider(provider(K2), owner("newcomer"))


async def test_the_same_identity_takes_its_deleted_row_back(backend: Backend) -> None:
    """Deleted (policy Delete), then applied again by the same identity (a cluster rebuilt
    from Git, a re-created object)."""
    me = owner("a")
    first = await backend.store.upsert_provider(provider(K1), me)
    assert (await backend.store.delete_provider(me)).action == "deleted"
    assert (await backend.store.preview_provider(provider(K2), me)).action == "revive"
    back = await backend.store.upsert_provider(provider(K2), me)
    assert (back.action, back.provider_id) == ("revived", first.provider_id)
