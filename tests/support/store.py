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
