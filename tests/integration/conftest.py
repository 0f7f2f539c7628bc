"""Fixtures for the storage-layer integration tests (all prefixed ``store_``).

Every test gets a fresh database on the session's real Postgres 15 (CREATE DATABASE is fast),
so no test depends on another's rows or order.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
import pytest

from aigateway_operator.config import Settings
from aigateway_operator.store import Store
from tests.support.store import STORE_KEY_A, b64
from tools.devenv.coder_schema import prepare_coder_database
from tools.devenv.postgres import PostgresServer


@pytest.fixture
async def store_dsn(postgres: PostgresServer) -> AsyncIterator[str]:
    """A fresh, empty database owned by ``aigw``; dropped afterwards."""
    name = f"store_{uuid.uuid4().hex[:16]}"
    async with await psycopg.AsyncConnection.connect(
        postgres.superuser_dsn, autocommit=True
    ) as conn:
        await conn.execute(f"CREATE DATABASE {name} OWNER aigw")
    yield postgres.dsn.replace("/coder?", f"/{name}?")
    async with await psycopg.AsyncConnection.connect(
        postgres.superuser_dsn, autocommit=True
    ) as conn:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def store_settings(store_dsn: str) -> Callable[..., Settings]:
    """Build Settings for the test database: ``store_settings(keys=[...], coderd=..., ...)``.

    ``coderd=True`` (the default) first makes the database what coderd ``release`` with
    ``keys`` leaves (Coder's schema, the primary key registered in ``dbcrypt_keys``:
    ``tools/devenv/coder_schema.py``, idempotent); ``coderd=False`` leaves it as it is.
    """

    def make(
        keys: list[bytes] | None = None,
        coderd: bool = True,
        release: str = "v2.36",
        **extra: Any,
    ) -> Settings:
        ks = [STORE_KEY_A] if keys is None else keys
        if coderd:
            prepare_coder_database(store_dsn, ks[:1], release)
        return Settings(
            database_url=store_dsn,
            encryption_keys=",".join(b64(k) for k in ks),
            pool_min_size=1,
            pool_max_size=4,
            lock_timeout_ms=3000,
            **extra,
        )

    return make


@pytest.fixture
async def store(store_settings: Callable[..., Settings]) -> AsyncIterator[Store]:
    """A Store on Coder's v2.36 schema with key A (registered, as coderd does) as the only key."""
    s = await Store.open(store_settings())
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def store_db(store_dsn: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A plain autocommit connection to the test database, for inspecting rows."""
    async with await psycopg.AsyncConnection.connect(store_dsn, autocommit=True) as conn:
        yield conn
