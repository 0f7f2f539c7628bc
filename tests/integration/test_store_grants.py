"""The store as a role with exactly the grants of deploy/postgres/grants.sql (verify mode).

Coder's schema is built as its owner (``aigw``), PUBLIC's default privileges are revoked, and
grants.sql is run by psql as in the documented install step. The operator's role then works
(providers and gateway keys, created, changed, deleted); with one grant revoked, it fails
with a message naming exactly that grant, at start and mid-operation.
"""

from __future__ import annotations

import secrets
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from aigateway_operator.config import Settings
from aigateway_operator.store import (
    Actor,
    DesiredProvider,
    InsufficientPrivileges,
    OwnerRef,
    ProviderType,
    Store,
    generate_gateway_secret,
)
from tests.support.store import STORE_KEY_A, b64, fetch
from tools.devenv.coder_schema import create_coder_schema, register_key
from tools.devenv.postgres import PostgresServer, pg_bindir

pytestmark = pytest.mark.integration

GRANTS = Path(__file__).resolve().parents[2] / "deploy" / "postgres" / "grants.sql"
OWNER = OwnerRef(kind="AIProvider", namespace="ns", name="p", instance="test", uid="uid-grants")
K1, K2 = "sk-grants-one-0123456789", "sk-grants-two-0123456789"


@dataclass
class Role:
    name: str
    dsn: str
    owner_dsn: str
    """The database owner (Coder's role here), who grants and revokes."""

    def settings(self, **extra: Any) -> Settings:
        return Settings(
            database_url=self.dsn,
            encryption_keys=b64(STORE_KEY_A),
            pool_min_size=1,
            pool_max_size=2,
            lock_timeout_ms=3000,
            **extra,
        )

    async def owner_sql(self, statement: str) -> None:
        async with await psycopg.AsyncConnection.connect(self.owner_dsn, autocommit=True) as c:
            await c.execute(statement)  # type: ignore[arg-type]


def psql(dsn: str, *args: str) -> str:
    """Run psql like an administrator would; the password travels in the environment, so
    no command line or error shows it. Returns stdout; a failure shows psql's stderr."""
    info = conninfo_to_dict(dsn)
    password = str(info.pop("password", ""))
    proc = subprocess.run(
        [str(pg_bindir() / "psql"), make_conninfo(**info), "-X", *args],  # type: ignore[arg-type]
        capture_output=True,
        text=True,
        timeout=60,
        env={"PGPASSWORD": password, "PATH": "/usr/bin:/bin"},
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"psql exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def run_grants_sql(owner_dsn: str, role: str) -> None:
    psql(owner_dsn, "-q", "-v", "ON_ERROR_STOP=1", "-v", f"role={role}", "-f", str(GRANTS))


async def coder_like_database(owner_dsn: str, version: str = "v2.36") -> None:
    """Coder's schema as coderd leaves it: built by its owner, our key registered by coderd,
    and no PUBLIC defaults to lean on."""
    async with await psycopg.AsyncConnection.connect(owner_dsn, autocommit=True) as conn:
        await create_coder_schema(conn, version)
        await register_key(conn, STORE_KEY_A)
        database = conninfo_to_dict(owner_dsn)["dbname"]
        await conn.execute(f'REVOKE CONNECT ON DATABASE "{database}" FROM PUBLIC')
        await conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        types = "ai_provider_type, resource_type, audit_action"
        await conn.execute(f"REVOKE USAGE ON TYPE {types} FROM PUBLIC")  # type: ignore[arg-type]


@pytest.fixture
async def operator_role(store_dsn: str, postgres: PostgresServer) -> AsyncIterator[Role]:
    """A login role with no privileges of its own yet; dropped with what it owns."""
    name = f"aigw_op_{uuid.uuid4().hex[:10]}"
    password = secrets.token_hex(12)
    database = conninfo_to_dict(store_dsn)["dbname"]
    su_dsn = make_conninfo(postgres.superuser_dsn, dbname=database)
    async with await psycopg.AsyncConnection.connect(su_dsn, autocommit=True) as su:
        await su.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")  # type: ignore[arg-type]
    yield Role(name, make_conninfo(store_dsn, user=name, password=password), store_dsn)
    async with await psycopg.AsyncConnection.connect(su_dsn, autocommit=True) as su:
        await su.execute(f"DROP OWNED BY {name}")  # type: ignore[arg-type]
        await su.execute(f"DROP ROLE {name}")  # type: ignore[arg-type]


@pytest.fixture
async def granted(operator_role: Role) -> Role:
    await coder_like_database(operator_role.owner_dsn)
    run_grants_sql(operator_role.owner_dsn, operator_role.name)
    return operator_role


async def test_the_documented_grants_are_enough(granted: Role) -> None:
    store = await Store.open(granted.settings())
    try:
        desired = DesiredProvider(name="openai", type=ProviderType.OPENAI, api_keys=(K1,))
        assert (await store.upsert_provider(desired, OWNER)).action == "created"
        changed = DesiredProvider(name="openai", type=ProviderType.OPENAI, api_keys=(K2, K1))
        r = await store.upsert_provider(changed, OWNER)
        assert r.action == "updated"
        assert r.audited
        check = await store.check_provider(changed, OWNER)
        assert check is not None
        assert check.differences == ()
        shorter = DesiredProvider(name="openai", type=ProviderType.OPENAI, api_keys=(K2,))
        assert len((await store.upsert_provider(shorter, OWNER)).keys_removed) == 1
        assert (await store.delete_provider(OWNER)).action == "deleted"

        # Gateway keys: journal, insert, rotate (rename), retire, release.
        for rotating in (False, True):
            kid, secret = uuid.uuid4(), generate_gateway_secret()
            await store.begin_gateway_key(OWNER, kid, "gw", secret, rotating=rotating)
            assert (await store.complete_gateway_key(OWNER, kid, "gw", secret)).created
        retired = await store.retire_previous(OWNER)
        assert retired is not None
        assert retired.name == "gw-retiring-1"
        assert len((await store.release_gateway_keys(OWNER, "Delete")).deleted) == 1

        # The requester records of admission: written and read in the operator's schema.
        await store.record_actor(
            object_uid="uid-granted", generation=1, spec_digest="d", kind="AIProvider",
            namespace="ns", name="p", actor=Actor.admitted("system:serviceaccount:ns:sa"),
        )  # fmt: skip
        found = await store.admission_actor("uid-granted", 1, "d")
        assert found.name == "system:serviceaccount:ns:sa"
    finally:
        await store.close()
    # Its bookkeeping went to its own schema, in tables its role owns.
    async with await psycopg.AsyncConnection.connect(granted.owner_dsn) as conn:
        rows = await fetch(
            conn,
            "SELECT relname, relowner::regrole::text FROM pg_class "
            "WHERE relnamespace = 'aigateway_operator'::regnamespace AND relkind = 'r' "
            "ORDER BY relname",
        )
        assert rows == [
            ("actors", granted.name),
            ("migrations", granted.name),
            ("owners", granted.name),
        ]
        # Nothing beyond what the file grants: e.g. no hard delete of providers.
        rows = await fetch(
            conn,
            "SELECT has_table_privilege(%s, 'ai_providers', 'DELETE'), "
            "has_table_privilege(%s, 'dbcrypt_keys', 'UPDATE'), "
            "has_schema_privilege(%s, 'public', 'CREATE')",
            granted.name,
            granted.name,
            granted.name,
        )
        assert rows == [(False, False, False)]


@pytest.mark.parametrize(
    ("revoke", "named"),
    [
        ("DELETE ON ai_provider_keys", "DELETE on table public.ai_provider_keys"),
        ("UPDATE ON ai_providers", "UPDATE on table public.ai_providers"),
        ("SELECT ON dbcrypt_keys", "SELECT on table public.dbcrypt_keys"),
        ("SELECT ON schema_migrations", "SELECT on table public.schema_migrations"),
        ("INSERT ON audit_logs", "INSERT on table public.audit_logs"),
        ("UPDATE ON ai_gateway_keys", "UPDATE on table public.ai_gateway_keys"),
        ("USAGE ON TYPE ai_provider_type", "USAGE on type public.ai_provider_type"),
        ("USAGE ON SCHEMA public", "USAGE on schema public"),
    ],
)
async def test_a_missing_grant_is_named_at_start(granted: Role, revoke: str, named: str) -> None:
    await granted.owner_sql(f"REVOKE {revoke} FROM {granted.name}")
    with pytest.raises(InsufficientPrivileges) as info:
        await Store.open(granted.settings())
    assert named in info.value.missing
    assert "grants.sql" in str(info.value)


async def test_a_grant_revoked_while_running_is_named(granted: Role) -> None:
    store = await Store.open(granted.settings())
    try:
        await store.upsert_provider(
            DesiredProvider(name="openai", type=ProviderType.OPENAI, api_keys=(K1, K2)), OWNER
        )
        await granted.owner_sql(f"REVOKE DELETE ON ai_provider_keys FROM {granted.name}")
        with pytest.raises(InsufficientPrivileges) as info:
            await store.upsert_provider(
                DesiredProvider(name="openai", type=ProviderType.OPENAI, api_keys=(K1,)), OWNER
            )
        assert info.value.missing == ("DELETE on table public.ai_provider_keys",)
        assert K1 not in str(info.value)
        assert K2 not in str(info.value)
        got = await store.get_provider(OWNER)
        assert got is not None
        assert [k.value for k in got.keys] == [K1, K2]  # nothing half-done
    finally:
        await store.close()


async def test_without_its_schema_it_needs_create_on_the_database(
    operator_role: Role,
) -> None:
    await coder_like_database(operator_role.owner_dsn)
    run_grants_sql(operator_role.owner_dsn, operator_role.name)
    await operator_role.owner_sql("DROP SCHEMA aigateway_operator")
    database = conninfo_to_dict(operator_role.dsn)["dbname"]
    with pytest.raises(InsufficientPrivileges) as info:
        await Store.open(operator_role.settings())
    assert info.value.missing == (
        f"CREATE on database {database} (to create schema aigateway_operator)",
    )
    assert f"ON SCHEMA aigateway_operator TO {operator_role.name}" in str(info.value)
    # The alternative the file documents: CREATE on the database; the store creates it.
    await operator_role.owner_sql(f'GRANT CREATE ON DATABASE "{database}" TO {operator_role.name}')
    store = await Store.open(operator_role.settings())
    await store.close()


async def test_grants_sql_runs_on_a_v234_database_without_gateway_keys(
    operator_role: Role,
) -> None:
    await coder_like_database(operator_role.owner_dsn, "v2.34")
    run_grants_sql(operator_role.owner_dsn, operator_role.name)
    store = await Store.open(operator_role.settings())
    try:
        assert not store.capabilities.has_gateway_keys
        r = await store.upsert_provider(
            DesiredProvider(name="openai", type=ProviderType.OPENAI, api_keys=(K1,)), OWNER
        )
        assert r.action == "created"
    finally:
        await store.close()


def test_grants_sql_explains_itself_without_a_role(store_dsn: str) -> None:
    assert "usage: psql -v role=" in psql(store_dsn, "-f", str(GRANTS))
