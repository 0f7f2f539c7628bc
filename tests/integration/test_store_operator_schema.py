"""The operator's own schema: created, migrated from the previous release, atomically."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from aigateway_operator.config import Settings
from aigateway_operator.store import (
    DesiredProvider,
    InsufficientPrivileges,
    NameConflict,
    OwnerRef,
    ProviderType,
    Store,
)
from tests.support.store import OWNED_ROWS, OWNERS, fetch
from tools.devenv.postgres import PostgresServer

pytestmark = pytest.mark.integration

ADOPTER = OwnerRef(
    kind="AIProvider", namespace="ns", name="adopter", instance="test", uid="uid-adopter"
)
CREATOR = OwnerRef(
    kind="AIProvider", namespace="ns", name="creator", instance="test", uid="uid-creator"
)
KEY = "sk-operator-schema-0123456789"

#: The ownership table as the release before the own schema created it, in Coder's schema.
LEGACY_DDL = """
CREATE TABLE aigw_owned_rows (
    kind text NOT NULL CHECK (kind IN ('ai_provider', 'ai_gateway_key')),
    owner_uid text NOT NULL,
    row_id uuid NOT NULL,
    adopted boolean NOT NULL DEFAULT false,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    CONSTRAINT aigw_owned_rows_pkey PRIMARY KEY (kind, owner_uid),
    CONSTRAINT aigw_owned_rows_row_key UNIQUE (kind, row_id)
);
"""


OWNED_SELECT = (
    "SELECT kind, owner_uid, row_id, adopted, created_at FROM aigateway_operator.owned_rows "
    "ORDER BY 2"
)


def openai(name: str) -> DesiredProvider:
    return DesiredProvider(name=name, type=ProviderType.OPENAI, api_keys=(KEY,))


async def written_by_the_previous_release(
    store_settings: Callable[..., Settings], conn: psycopg.AsyncConnection[Any]
) -> list[tuple[Any, ...]]:
    """A database as the release before the own schema leaves it: an adopted and a created
    provider, ownership by object uid in ``aigw_owned_rows`` in Coder's schema, no
    ``aigateway_operator`` schema. The rows are written by today's store, then their records
    are turned into that release's (the same rows, keyed by uid)."""
    s = await Store.open(store_settings())
    try:
        await conn.execute(
            "INSERT INTO ai_providers (type, name, base_url) "
            "VALUES ('openai', 'manual', 'https://x')"
        )
        assert (await s.upsert_provider(openai("manual"), ADOPTER, adopt=True)).action == (
            "adopted"
        )
        assert (await s.upsert_provider(openai("mine"), CREATOR)).action == "created"
    finally:
        await s.close()
    await conn.execute(LEGACY_DDL)
    await conn.execute(
        f"INSERT INTO aigw_owned_rows (kind, owner_uid, row_id, adopted, created_at) "  # noqa: S608
        f"SELECT 'ai_provider', object_uid, row_id, adopted, created_at FROM {OWNERS}"
    )
    await conn.execute("DROP SCHEMA aigateway_operator CASCADE")
    return await fetch(
        conn,
        "SELECT kind, owner_uid, row_id, adopted, created_at FROM aigw_owned_rows ORDER BY 2",
    )


async def test_create_mode_creates_the_schema_and_nothing_in_coders(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    rows = await fetch(
        store_db,
        "SELECT to_regclass('aigateway_operator.owned_rows') IS NOT NULL, "
        "to_regclass('public.aigw_owned_rows') IS NULL",
    )
    assert rows == [(True, True)]
    assert await fetch(store_db, "SELECT version FROM aigateway_operator.migrations") == [
        (1,),
        (2,),
        (3,),
        (4,),
    ]


async def test_the_previous_releases_table_is_moved_at_start(
    store_settings: Callable[..., Settings], store_db: psycopg.AsyncConnection[Any]
) -> None:
    owned = await written_by_the_previous_release(store_settings, store_db)
    providers = await fetch(store_db, "SELECT id, xmin::text FROM ai_providers ORDER BY id")
    s = await Store.open(store_settings(mode="verify"))
    try:
        # The uid-keyed records moved into the operator's schema as they were ...
        assert await fetch(store_db, OWNED_SELECT) == owned
        # ... and until the operator maps uids to objects, such a row is nobody's to adopt.
        with pytest.raises(NameConflict, match="earlier release"):
            await s.upsert_provider(openai("manual"), ADOPTER, adopt=True)
        stranger = OwnerRef(kind="AIProvider", namespace="x", name="y", instance="test", uid="z")
        moved = await s.migrate_legacy_owners(
            {ADOPTER.uid: ADOPTER, CREATOR.uid: CREATOR, stranger.uid: stranger}
        )
        assert (moved.moved, moved.unknown) == (2, 0)
        # Ownership survived the move: the adopted row is still ours, found by identity.
        again = await s.upsert_provider(openai("manual"), ADOPTER)
        assert again.action == "unchanged"
        assert again.provider_id == next(r[2] for r in owned if r[1] == ADOPTER.uid)
        assert (await s.upsert_provider(openai("mine"), CREATOR)).action == "unchanged"
        got = await s.get_provider(ADOPTER)
        assert got is not None
        assert got.adopted
        assert (await s.migrate_legacy_owners({})).moved == 0  # once
    finally:
        await s.close()
    assert await fetch(store_db, OWNED_SELECT) == []
    assert await fetch(store_db, "SELECT to_regclass('aigw_owned_rows')") == [(None,)]
    # Coder's rows were not touched by the move.
    assert await fetch(store_db, "SELECT id, xmin::text FROM ai_providers ORDER BY id") == (
        providers
    )


async def test_a_move_that_cannot_finish_changes_nothing(
    store_settings: Callable[..., Settings],
    store_db: psycopg.AsyncConnection[Any],
    store_dsn: str,
    postgres: PostgresServer,
) -> None:
    """The old table belongs to another role that lets us not even read it: the move fails
    as a whole, naming why."""
    owned = await written_by_the_previous_release(store_settings, store_db)
    other = f"aigw_other_{uuid.uuid4().hex[:8]}"
    su_dsn = make_conninfo(postgres.superuser_dsn, dbname=conninfo_to_dict(store_dsn)["dbname"])
    async with await psycopg.AsyncConnection.connect(su_dsn, autocommit=True) as su:
        await su.execute(f"CREATE ROLE {other}")  # type: ignore[arg-type]
        await su.execute(f"ALTER TABLE aigw_owned_rows OWNER TO {other}")  # type: ignore[arg-type]
        try:
            with pytest.raises(InsufficientPrivileges) as info:
                await Store.open(store_settings(mode="verify"))
            assert info.value.missing[0].startswith(
                "SELECT on table aigw_owned_rows in Coder's schema (to move it into schema "
                "aigateway_operator"
            )
            # One transaction: no schema created, no row copied, the old table intact.
            assert await fetch(
                store_db, "SELECT to_regnamespace('aigateway_operator') IS NULL"
            ) == [(True,)]
            assert (
                await fetch(
                    su,
                    "SELECT kind, owner_uid, row_id, adopted, created_at FROM aigw_owned_rows "
                    "ORDER BY 2",
                )
                == owned
            )
        finally:
            await su.execute(f"DROP OWNED BY {other}")  # type: ignore[arg-type]
            await su.execute(f"DROP ROLE {other}")  # type: ignore[arg-type]


async def test_replicas_starting_together_migrate_once(
    store_settings: Callable[..., Settings], store_db: psycopg.AsyncConnection[Any]
) -> None:
    owned = await written_by_the_previous_release(store_settings, store_db)
    stores = await asyncio.gather(*(Store.open(store_settings(mode="verify")) for _ in range(3)))
    for s in stores:
        await s.close()
    assert await fetch(store_db, "SELECT version FROM aigateway_operator.migrations") == [
        (1,),
        (2,),
        (3,),
        (4,),
    ]
    assert len(await fetch(store_db, f"SELECT 1 FROM {OWNED_ROWS}")) == len(owned)  # noqa: S608
