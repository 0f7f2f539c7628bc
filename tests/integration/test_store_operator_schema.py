"""The operator's own schema: created, migrated, atomically."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from aigateway_operator.config import Settings
from aigateway_operator.store import Store
from tests.support.store import fetch

pytestmark = pytest.mark.integration

#: The migrations a fresh database gets (1, a uid-keyed table of development builds that were
#: never released, is gone and its number not reused).
MIGRATED = [(2,), (3,), (4,)]


async def test_create_mode_creates_the_schema_and_nothing_in_coders(
    store: Store, store_db: psycopg.AsyncConnection[Any]
) -> None:
    rows = await fetch(
        store_db,
        "SELECT to_regclass('aigateway_operator.owners') IS NOT NULL, "
        "to_regclass('aigateway_operator.actors') IS NOT NULL, "
        "to_regclass('aigateway_operator.owned_rows') IS NULL, "
        "to_regclass('public.owners') IS NULL",
    )
    assert rows == [(True, True, True, True)]
    assert await fetch(store_db, "SELECT version FROM aigateway_operator.migrations") == MIGRATED


async def test_replicas_starting_together_migrate_once(
    store_settings: Callable[..., Settings], store_db: psycopg.AsyncConnection[Any]
) -> None:
    """A database without the operator's schema, three replicas starting at once: the schema
    and each migration are applied once (the advisory lock), and all three start."""
    first = await Store.open(store_settings())
    await first.close()
    await store_db.execute("DROP SCHEMA aigateway_operator CASCADE")
    stores = await asyncio.gather(*(Store.open(store_settings(coderd=False)) for _ in range(3)))
    for s in stores:
        await s.close()
    assert await fetch(store_db, "SELECT version FROM aigateway_operator.migrations") == MIGRATED
