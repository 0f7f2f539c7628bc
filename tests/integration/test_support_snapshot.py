"""The "nothing was written" snapshot (``tests/support/db.py``) sees a write to every table
the operator may write, in Coder's schema and its own, even one that changes no value: the
tenancy, bad-input, fault and quiet-restart tests rely on it."""

from __future__ import annotations

import psycopg
import pytest

from aigateway_operator.store import Actor, DesiredProvider, ProviderType, Store
from tests.support.db import changed_tables, snapshot_tables, table_versions
from tests.support.store import owner

pytestmark = pytest.mark.integration

#: Tables the operator writes that an earlier, hand-written list left out of some snapshots.
ONCE_MISSED = ("ai_gateway_keys", "dbcrypt_keys", "aigateway_operator.actors")


async def test_the_snapshot_covers_every_table_of_both_schemas(
    store: Store, store_dsn: str
) -> None:
    with psycopg.connect(store_dsn) as conn:
        tables = snapshot_tables(conn)
        every = [
            t
            for (t,) in conn.execute(
                "SELECT CASE WHEN schemaname = current_schema() THEN tablename "
                "ELSE schemaname || '.' || tablename END FROM pg_tables "
                "WHERE schemaname IN (current_schema(), 'aigateway_operator')"
            ).fetchall()
        ]
    assert sorted(tables) == sorted(every)
    assert set(ONCE_MISSED) <= set(tables)
    assert {"ai_providers", "ai_provider_keys", "audit_logs", "aigateway_operator.owners"} <= set(
        tables
    )


async def test_a_write_that_changes_no_value_shows_in_its_table(
    store: Store, store_dsn: str
) -> None:
    """Rows written through the store (a provider with a key, an admission record), then in
    each table that has one an UPDATE setting a column to itself: the snapshot differs for
    exactly that table."""
    await store.upsert_provider(
        DesiredProvider(name="p", type=ProviderType.OPENAI, api_keys=("sk-snapshot-0001",)),
        owner("p"),
    )
    await store.record_actor(
        object_uid="uid-p", generation=1, spec_digest="d", kind="AIProvider",
        namespace="ns", name="p", actor=Actor("someone", "admission"),
    )  # fmt: skip
    touched = []
    with psycopg.connect(store_dsn, autocommit=True) as conn:
        for table in snapshot_tables(conn):
            count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
            if not count or not count[0]:
                continue
            first = conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass "
                "AND attnum > 0 AND NOT attisdropped ORDER BY attnum LIMIT 1",
                (table,),
            ).fetchone()
            assert first is not None, table
            column = first[0]
            before = table_versions(store_dsn)
            conn.execute(
                f'UPDATE {table} SET "{column}" = "{column}" '  # noqa: S608
                f"WHERE ctid = (SELECT ctid FROM {table} LIMIT 1)"
            )
            assert list(changed_tables(before, table_versions(store_dsn))) == [table], table
            touched.append(table)
    assert {"dbcrypt_keys", "aigateway_operator.actors", "audit_logs"} <= set(touched), touched
