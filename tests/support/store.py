"""Shared helpers of the store tests: fixed test keys and small SQL helpers."""

from __future__ import annotations

import base64
from typing import Any

import psycopg

from aigateway_operator.store import OwnerRef

STORE_KEY_A = bytes(range(32))
STORE_KEY_B = bytes(range(100, 132))
STORE_KEY_C = bytes(range(200, 232))

OWNERS = "aigateway_operator.owners"
"""The operator's ownership records, keyed by (instance, kind, namespace, name)."""
ACTORS = "aigateway_operator.actors"
"""Who made each spec generation, as the validating webhook recorded it."""


def owner(
    name: str,
    *,
    kind: str = "AIProvider",
    namespace: str = "ns",
    instance: str = "test",
    uid: str = "",
    generation: int | None = None,
) -> OwnerRef:
    """An owner identity for store tests (distinct names: distinct owners)."""
    return OwnerRef(
        kind=kind,
        namespace=namespace,
        name=name,
        instance=instance,
        uid=uid or f"uid-{name}",
        generation=generation,
    )


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


async def fetch(
    conn: psycopg.AsyncConnection[Any], query: str, *args: Any
) -> list[tuple[Any, ...]]:
    cur = await conn.execute(query, args or None)  # type: ignore[arg-type]
    return await cur.fetchall()


async def snapshot(conn: psycopg.AsyncConnection[Any]) -> dict[str, Any]:
    """Everything a write would change: row versions (xmin), timestamps, counts."""
    return {
        "providers": await fetch(
            conn, "SELECT id, xmin::text, updated_at, deleted FROM ai_providers ORDER BY id"
        ),
        "keys": await fetch(
            conn, "SELECT id, xmin::text, created_at FROM ai_provider_keys ORDER BY id"
        ),
        "audit": await fetch(conn, "SELECT count(*) FROM audit_logs"),
        "owners": await fetch(
            conn,
            f"SELECT row_table, row_id, xmin::text FROM {OWNERS} ORDER BY row_table, row_id",  # noqa: S608
        ),
    }
