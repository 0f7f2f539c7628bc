"""Store throughput vs. plain INSERTs: ``PYTHONPATH=. python bench/bench_store.py [--providers N]``
(from the repository root, as ``make bench`` runs it: the local environment is ``tools.devenv``).

Starts its own throwaway Postgres 15, then measures, on fresh databases with the same schema:

* ``store upsert``: N providers with 2 keys each through :meth:`Store.upsert_provider`, one
  call at a time (what a reconcile loop does): advisory lock 10, key-continuity check,
  ownership lookup, insert, keys, audit rows, notify, each in its own transaction.
* ``store no-op``: the same N calls again (state already matches: read + compare only).
* ``plain INSERT, txn/provider``: the same rows with the same encrypted payloads (encrypted
  before the clock starts), inserted with bare INSERTs, one transaction per provider.
* ``plain INSERT, one txn``: the same, all rows in a single transaction (a bulk-load ceiling).

Rows/second counts provider rows plus key rows (3 per provider). The headline ratio is
store upsert vs. plain INSERT with one transaction per provider. Results go to
``bench/results/store.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from aigateway_operator.config import Settings
from aigateway_operator.store import DesiredProvider, OwnerRef, ProviderType, Store
from aigateway_operator.store.cipher import KeyRing
from tools.devenv.coder_schema import prepare_coder_database
from tools.devenv.postgres import PostgresServer

KEY = bytes(range(32))
RESULTS = Path(__file__).resolve().parent / "results" / "store.json"


def desired(i: int) -> DesiredProvider:
    return DesiredProvider(
        name=f"bench-{i:05d}",
        type=ProviderType.OPENAI,
        display_name=f"Bench {i}",
        api_keys=(f"sk-bench-{i:05d}-primary-{'p' * 24}", f"sk-bench-{i:05d}-backup-{'b' * 24}"),
    )


async def new_database(server: PostgresServer) -> str:
    name = f"bench_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(server.superuser_dsn, autocommit=True) as c:
        await c.execute(f"CREATE DATABASE {name} OWNER aigw")
    dsn = server.dsn.replace("/coder?", f"/{name}?")
    prepare_coder_database(dsn, [KEY])  # as coderd leaves it (tools/devenv/coder_schema.py)
    return dsn


async def open_store(dsn: str) -> Store:
    return await Store.open(
        Settings(
            database_url=dsn,
            encryption_keys=base64.b64encode(KEY).decode(),
        )
    )


async def bench_store(server: PostgresServer, n: int) -> tuple[float, float]:
    dsn = await new_database(server)
    store = await open_store(dsn)
    try:
        items = [
            (
                desired(i),
                OwnerRef(kind="AIProvider", namespace="bench", name=f"p{i}", uid=f"uid-{i}"),
            )
            for i in range(n)
        ]
        t0 = time.perf_counter()
        for d, o in items:
            r = await store.upsert_provider(d, o)
            if r.action != "created":
                raise RuntimeError(f"unexpected {r.action}")
        upsert = time.perf_counter() - t0
        t0 = time.perf_counter()
        for d, o in items:
            r = await store.upsert_provider(d, o)
            if r.action != "unchanged":
                raise RuntimeError(f"unexpected {r.action}")
        noop = time.perf_counter() - t0
    finally:
        await store.close()
    return upsert, noop


def plain_rows(n: int) -> list[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
    """Pre-encrypted rows identical in shape and size to what the store writes."""
    ring = KeyRing([KEY])
    out = []
    for i in range(n):
        d = desired(i)
        pid = uuid.uuid4()
        provider = (pid, d.type.value, d.name, d.display_name, True, "https://api.openai.com/v1/")
        keys = []
        for k in d.api_keys:
            value, key_id = ring.encrypt_field(k)
            keys.append((uuid.uuid4(), pid, value, key_id))
        out.append((provider, keys))
    return out


PROVIDER_SQL = (
    "INSERT INTO ai_providers (id, type, name, display_name, enabled, base_url) "
    "VALUES (%s, %s, %s, %s, %s, %s)"
)
KEY_SQL = (
    "INSERT INTO ai_provider_keys (id, provider_id, api_key, api_key_key_id) "
    "VALUES (%s, %s, %s, %s)"
)


async def bench_plain(server: PostgresServer, n: int, one_txn: bool) -> float:
    dsn = await new_database(server)
    store = await open_store(dsn)  # same schema and registered key as the store run
    await store.close()
    rows = plain_rows(n)
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        t0 = time.perf_counter()
        if one_txn:
            async with conn.transaction(), conn.cursor() as cur:
                await cur.executemany(PROVIDER_SQL, [p for p, _ in rows])
                await cur.executemany(KEY_SQL, [k for _, ks in rows for k in ks])
        else:
            for provider, keys in rows:
                async with conn.transaction():
                    await conn.execute(PROVIDER_SQL, provider)
                    async with conn.cursor() as cur:
                        await cur.executemany(KEY_SQL, keys)
        return time.perf_counter() - t0


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--providers", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; best wins")
    args = parser.parse_args()
    n: int = args.providers
    repeat: int = max(1, args.repeat)
    rows = n * 3

    with tempfile.TemporaryDirectory(prefix="aigw-bench-") as tmp:
        server = PostgresServer.start(Path(tmp) / "pg")
        try:
            await bench_plain(server, min(n, 50), one_txn=False)  # warm-up (caches, JIT-free)
            # Best of `repeat` (fresh database each time): the least disturbed run of each.
            plain_txn = min([await bench_plain(server, n, one_txn=False) for _ in range(repeat)])
            plain_bulk = min([await bench_plain(server, n, one_txn=True) for _ in range(repeat)])
            store_runs = [await bench_store(server, n) for _ in range(repeat)]
            upsert = min(r[0] for r in store_runs)
            noop = min(r[1] for r in store_runs)
        finally:
            server.stop()

    results = {
        "providers": n,
        "keys_per_provider": 2,
        "rows": rows,
        "seconds": {
            "store_upsert": upsert,
            "store_noop": noop,
            "plain_insert_txn_per_provider": plain_txn,
            "plain_insert_one_txn": plain_bulk,
        },
        "rows_per_second": {
            "store_upsert": rows / upsert,
            "store_noop": rows / noop,
            "plain_insert_txn_per_provider": rows / plain_txn,
            "plain_insert_one_txn": rows / plain_bulk,
        },
        "ratio_store_vs_plain_txn_per_provider": plain_txn / upsert,
        "ratio_store_vs_plain_one_txn": plain_bulk / upsert,
        "repeat_best_of": repeat,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "postgres": "15 (local, fsync off)",
    }
    rps = results["rows_per_second"]
    print(f"{'run':<34}{'seconds':>10}{'rows/s':>12}")
    for key, label in [
        ("store_upsert", "store upsert (1 txn/provider)"),
        ("store_noop", "store no-op re-apply"),
        ("plain_insert_txn_per_provider", "plain INSERT (1 txn/provider)"),
        ("plain_insert_one_txn", "plain INSERT (one txn)"),
    ]:
        print(f"{label:<34}{results['seconds'][key]:>10.3f}{rps[key]:>12.0f}")  # type: ignore[index]
    ratio_txn = results["ratio_store_vs_plain_txn_per_provider"]
    ratio_bulk = results["ratio_store_vs_plain_one_txn"]
    print(f"\nstore / plain (txn per provider): {ratio_txn:.2f}")
    print(f"store / plain (one txn):          {ratio_bulk:.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
