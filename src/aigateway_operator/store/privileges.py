"""The PostgreSQL privileges the operator's role uses, checked at start and named on failure.

:func:`required_grants` is the list of what the store's statements actually need
(``deploy/postgres/grants.sql`` grants exactly these; a unit test keeps the two equal):

* Coder's schema: USAGE.
* ``schema_migrations``: SELECT (which Coder release this is).
* ``dbcrypt_keys``: SELECT only (key continuity; never written).
* ``ai_providers``: SELECT, INSERT, UPDATE (UPDATE also for ``SELECT ... FOR UPDATE``);
  never DELETE: providers are soft-deleted, as coderd does.
* ``ai_provider_keys``: SELECT, INSERT, UPDATE, DELETE.
* ``ai_gateway_keys`` (Coder v2.35+): SELECT, INSERT, UPDATE, DELETE.
* ``audit_logs`` (when present): INSERT.
* Types ``ai_provider_type``, ``resource_type``, ``audit_action``: USAGE (the casts).
* Our schema ``aigateway_operator``: USAGE (and CREATE while a migration is pending,
  checked by ``operator_schema``); its tables ``owners``, ``actors``
  (SELECT, INSERT, UPDATE, DELETE) and ``migrations`` (SELECT) belong to the role that
  created them.

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
    """Object name; in Coder's schema unless ``schema`` is set (a ``schema`` grant with
    the name ``""`` is Coder's schema, ``current_schema()``)."""
    schema: str | None = None

    def text(self, coder_schema: str) -> str:
        if self.kind == "schema":
            return f"{self.privilege} on schema {self.name or coder_schema}"
        return f"{self.privilege} on {self.kind} {self.schema or coder_schema}.{self.name}"


BOOTSTRAP_GRANTS = (
    Grant("USAGE", "schema", ""),
    Grant("SELECT", "table", "schema_migrations"),
)
"""What is needed before the Coder release is known (reading ``schema_migrations``)."""


def required_grants(caps: Capabilities | None) -> tuple[Grant, ...]:
    """What the store's statements need for a schema like ``caps``
    (None: only :data:`BOOTSTRAP_GRANTS`)."""
    out: list[Grant] = list(BOOTSTRAP_GRANTS)
    if caps is None:
        return tuple(out)

    def table(name: str, *privileges: str, schema: str | None = None) -> None:
        out.extend(Grant(p, "table", name, schema) for p in privileges)

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
    table("owners", "SELECT", "INSERT", "UPDATE", "DELETE", schema=OPERATOR_SCHEMA)
    table("migrations", "SELECT", schema=OPERATOR_SCHEMA)
    return tuple(out)


async def coder_schema(conn: AsyncConnection[Any]) -> str | None:
    """The schema of Coder's tables: the first schema of ``search_path`` that exists.

    Not ``current_schema()``: Postgres leaves schemas the role may not use out of it, so
    without USAGE on Coder's schema it would name another one, or none.
    """
    cur = await conn.execute("SELECT current_setting('search_path'), current_user")
    row = await cur.fetchone()
    path, user = (str(row[0]), str(row[1])) if row else ("", "")
    names = [n.strip().strip('"') for n in path.split(",") if n.strip()]
    names = [user if n == "$user" else n for n in names]
    cur = await conn.execute("SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", (names,))
    existing = {str(r[0]) for r in await cur.fetchall()}
    return next((n for n in names if n in existing), None)


async def missing_privileges(conn: AsyncConnection[Any], caps: Capabilities | None) -> list[str]:
    """The grants of :func:`required_grants` the current role lacks (empty: none).

    Schema privileges are checked first: without USAGE on a schema, Postgres cannot even
    look up the names in it, so only those are reported then.
    """
    grants = required_grants(caps)
    schema = await coder_schema(conn)
    if schema is None:
        await conn.rollback()
        return ["USAGE on a schema of search_path holding Coder's tables (none exists)"]
    schemas = [g for g in grants if g.kind == "schema"]
    missing = await _missing(conn, schemas, schema)
    if missing:
        return missing
    return await _missing(conn, [g for g in grants if g.kind != "schema"], schema)


async def _missing(conn: AsyncConnection[Any], grants: list[Grant], schema: str) -> list[str]:
    if not grants:
        return []
    cur = await conn.execute(
        """
        SELECT g.i FROM (
            SELECT u.*, CASE WHEN u.obj = '' THEN %(schema)s ELSE u.obj END AS nspname,
                quote_ident(coalesce(u.nsp, %(schema)s)) || '.' || quote_ident(u.obj)
                    AS qualified
            FROM unnest(%(kinds)s::text[], %(nsps)s::text[], %(objs)s::text[], %(privs)s::text[])
                WITH ORDINALITY AS u(kind, nsp, obj, priv, i)
        ) AS g
        -- Objects that do not exist are verify's to report (and would make these fail).
        WHERE NOT CASE g.kind
            WHEN 'schema' THEN to_regnamespace(quote_ident(g.nspname)) IS NULL
                OR has_schema_privilege(g.nspname, g.priv)
            WHEN 'table' THEN to_regclass(g.qualified) IS NULL
                OR has_table_privilege(g.qualified, g.priv)
            ELSE to_regtype(g.qualified) IS NULL OR has_type_privilege(g.qualified, g.priv)
        END
        ORDER BY g.i
        """,
        {
            "schema": schema,
            "kinds": [g.kind for g in grants],
            "nsps": [g.schema for g in grants],
            "objs": [g.name for g in grants],
            "privs": [g.privilege for g in grants],
        },
    )
    rows = await cur.fetchall()
    await conn.rollback()
    return [grants[int(i) - 1].text(schema) for (i,) in rows]
