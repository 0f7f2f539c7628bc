"""Where the leak checks look for a planted value: what the API server serves (raw JSON text
and every decoded string) and every row of the database, as text."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
from kubernetes import client


def raw_get(api: client.ApiClient, path: str) -> str:
    """A GET's body exactly as the API server sent it (JSON text, escapes and all)."""
    method, url, headers, _, _ = api.param_serialize(
        "GET", path, header_params={"Accept": "application/json"}, auth_settings=["BearerToken"]
    )
    response = api.call_api(method, url, headers)
    response.read()
    assert response.status == 200
    return str(response.data.decode())


def strings(node: Any) -> Iterator[str]:
    """Every string in decoded JSON, keys included."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield str(k)
            yield from strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings(v)


def database_text(dsn: str) -> str:
    """Every row of every table of Coder's schema and the operator's, as Postgres prints it:
    a search for a value that must never be stored (a key, a token, a plaintext)."""
    with psycopg.connect(dsn) as conn:
        tables = conn.execute(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables "
            "WHERE schemaname IN (current_schema(), 'aigateway_operator') ORDER BY 1"
        ).fetchall()
        return "\n".join(
            str(row[0])
            for (table,) in tables
            for row in conn.execute(f"SELECT t::text FROM {table} t").fetchall()  # noqa: S608
        )
