"""The PostgreSQL privileges the operator's role uses, checked at start and named on failure.

:func:`required_grants` is the list of what the store's statements actually need in
``verify`` mode (``deploy/postgres/grants.sql`` grants exactly these; a unit test keeps the
two equal):

* Coder's schema: USAGE.
* ``schema_migrations``: SELECT (which Coder release this is).
* ``dbcrypt_keys``: SELECT only (key continuity; never written in ``verify`` mode).
* ``ai_providers``: SELECT, INSERT, UPDATE (UPDATE also for ``SELECT ... FOR UPDATE``);
  never DELETE: providers are soft-deleted, as coderd does.
* ``ai_provider_keys``: SELECT, INSERT, UPDATE, DELETE.
* ``ai_gateway_keys`` (Coder v2.35+): SELECT, INSERT, UPDATE, DELETE.
* ``audit_logs`` (when present): INSERT.
* Types ``ai_provider_type``, ``resource_type``, ``audit_action``: USAGE (the casts).
* Our schema ``aigateway_operator`` and its tables: the role should own the schema (then
  it holds everything below); USAGE, and SELECT/INSERT/UPDATE/DELETE on ``owned_rows``,
  SELECT on ``migrations``.

``pg_advisory_xact_lock``, ``pg_notify`` and ``LISTEN`` need no grant.

:func:`missing_privileges` asks Postgres (``has_*_privilege``) which of these the current
role lacks, and returns them as ``DELETE on table public.ai_provider_keys`` lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from psycopg import AsyncConnection

from aigateway_operator.store.operator_schema import OPERATOR_SCHEMA
from aigateway_operator.store.schema import Capabilities

__all__ = ["Grant", "missing_privileges", "required_grants"]

Kind = Literal["schema", "table", "type"]


@dataclass(frozen=True)
class Grant:
    privilege: str
    kind: Kind
    name: str
    """Object name; in Coder's schema unless ``schema`` is set."""
    schema: str | None = None

    def text(self, coder_schema: str) -> str:
        if self.kind == "schema":
            return f"{self.privilege} on schema {self.name or coder_schema}"
        return f"{self.privilege} on {self.kind} {self.schema or coder_schema}.{self.name}"


CODER_SCHEMA = ""
"""Name of Coder's schema in a ``schema`` grant: resolved to ``current_schema()``."""


def required_grants(caps: Capabilities) -> tuple[Grant, ...]:
    """What the store's statements need in ``verify`` mode for a schema like ``caps``."""
    out: list[Grant] = [Grant("USAGE", "schema", CODER_SCHEMA)]

    def table(name: str, *privileges: str, schema: str | None = None) -> None:
        out.extend(Grant(p, "table", name, schema) for p in privileges)

    table("schema_migrations", "SELECT")
    table("dbcrypt_keys", "SELECT")
    table("ai_providers", "SELECT", "INSERT", "UPDATE")
    table("ai_provider_keys", "SELECT", "INSERT", "UPDATE", "DELETE")
    if caps.has_gateway_keys:
        table("ai_gateway_keys", "SELECT", "INSERT", "UPDATE", "DELETE")
    types = ["ai_provider_type"]
    if caps.has_audit:
        table("audit_logs", "INSERT")
        types += ["resource_type", "audit_action"]
    out.extend(Grant("USAGE", "type", t) for t in types)
    out.append(Grant("USAGE", "schema", OPERATOR_SCHEMA))
    table("owned_rows", "SELECT", "INSERT", "UPDATE", "DELETE", schema=OPERATOR_SCHEMA)
    table("migrations", "SELECT", schema=OPERATOR_SCHEMA)
    return tuple(out)


async def missing_privileges(conn: AsyncConnection[Any], caps: Capabilities) -> list[str]:
    """The grants of :func:`required_grants` the current role lacks (empty: none)."""
    grants = required_grants(caps)
    cur = await conn.execute(
        """
        SELECT g.i, current_schema() FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[])
            WITH ORDINALITY AS g(kind, nsp, obj, priv, i)
        WHERE NOT CASE g.kind
            WHEN 'schema' THEN has_schema_privilege(
                CASE WHEN g.obj = %s THEN current_schema() ELSE g.obj END, g.priv)
            WHEN 'table' THEN has_table_privilege(
                quote_ident(coalesce(g.nsp, current_schema())) || '.' || quote_ident(g.obj),
                g.priv)
            ELSE has_type_privilege(
                quote_ident(coalesce(g.nsp, current_schema())) || '.' || quote_ident(g.obj),
                g.priv)
        END
        ORDER BY g.i
        """,
        (
            [g.kind for g in grants],
            [g.schema for g in grants],
            [g.name for g in grants],
            [g.privilege for g in grants],
            CODER_SCHEMA,
        ),
    )
    rows = await cur.fetchall()
    await conn.rollback()
    out = []
    for i, coder_schema in rows:
        out.append(grants[int(i) - 1].text(str(coder_schema)))
    return out
