"""Shared helpers of the store tests: fixed test keys and small SQL helpers."""

from __future__ import annotations

import base64
from typing import Any

import psycopg

STORE_KEY_A = bytes(range(32))
STORE_KEY_B = bytes(range(100, 132))
STORE_KEY_C = bytes(range(200, 232))

OWNED_ROWS = "aigateway_operator.owned_rows"
"""The operator's ownership table (its own schema, not Coder's)."""


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
        "owned": await fetch(
            conn, "SELECT owner_uid, row_id, xmin::text FROM aigateway_operator.owned_rows"
        ),
    }
