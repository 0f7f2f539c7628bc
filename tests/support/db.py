"""Coder's database as the tests look at it: every table the operator writes, in one place.

``table_versions`` is the proof that "nothing was written": the physical version
(``ctid``, ``xmin``) of every row of every table in Coder's schema and the operator's own
(``aigateway_operator``), the tables found in the catalog at the time of the snapshot (a table
added to either schema is covered without a change here). An INSERT adds a row, a DELETE
removes one and an UPDATE, even one that writes the same values, gives the row a new
``xmin``; equal snapshots mean not one row of any table was touched, and a table created in
between shows as a new key.
"""

from __future__ import annotations

from typing import Any

import psycopg

from aigateway_operator.store.operator_schema import OPERATOR_SCHEMA, OWNERS

#: The tables the operator must find at start (``tables_exist``): Coder's four, the
#: operator's ownership table and coderd's encryption-key table. The snapshot does not use
#: this list: it reads the catalog.
OPERATOR_TABLES: tuple[str, ...] = (
    "ai_providers",
    "ai_provider_keys",
    "ai_gateway_keys",
    "audit_logs",
    OWNERS,
    "dbcrypt_keys",
)

#: The ownership table among them (tests that look at ownership records by name).
OWNERSHIP_TABLE = OWNERS

TableVersions = dict[str, list[tuple[str, str]]]

#: Every ordinary table of Coder's schema (the connection's: unqualified names) and of the
#: operator's (``aigateway_operator.owners``, ...).
_CATALOG = (
    "SELECT CASE WHEN n.nspname = current_schema() THEN quote_ident(c.relname) "
    "ELSE quote_ident(n.nspname) || '.' || quote_ident(c.relname) END FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p') AND n.nspname IN (current_schema(), %s) ORDER BY 1"
)


def snapshot_tables(conn: psycopg.Connection[Any]) -> list[str]:
    """The tables :func:`table_versions` covers, from the catalog."""
    return [str(t) for (t,) in conn.execute(_CATALOG, (OPERATOR_SCHEMA,)).fetchall()]


def table_versions(dsn: str) -> TableVersions:
    """(ctid, xmin) of every row of every table of Coder's schema and the operator's, in ctid
    order, keyed by table name (one transaction)."""
    out: TableVersions = {}
    with psycopg.connect(dsn) as conn:
        for table in snapshot_tables(conn):
            rows = conn.execute(
                f"SELECT ctid::text, xmin::text FROM {table} ORDER BY ctid"  # noqa: S608
            ).fetchall()
            out[table] = [(str(c), str(x)) for c, x in rows]
    return out


def tables_exist(dsn: str) -> bool:
    """Whether every table in :data:`OPERATOR_TABLES` exists (Coder's, built by the test
    environment as coderd would; the operator's own, created by the operator at start)."""
    with psycopg.connect(dsn) as conn:
        for table in OPERATOR_TABLES:
            row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
            if not row or not row[0]:
                return False
    return True


def changed_tables(before: TableVersions, after: TableVersions) -> dict[str, dict[str, Any]]:
    """Per table that differs (or exists in one snapshot only): how many row versions
    appeared and disappeared."""
    out: dict[str, dict[str, Any]] = {}
    for table in sorted(before.keys() | after.keys()):
        old, new = set(before.get(table, [])), set(after.get(table, []))
        if old != new:
            out[table] = {"new_versions": len(new - old), "gone_versions": len(old - new)}
    return out


def audit_problems(dsn: str) -> list[str]:
    """What the audit log gets wrong about the rows it describes (empty when it is right).

    Replaying ``audit_logs`` must give the rows as they are, with no change recorded twice:
    every provider row has exactly one ``create``, a soft-deleted one exactly one ``delete``
    and a live one none; every key id has at most one ``create`` and one ``delete``, and the
    ids created and not deleted are exactly the key rows that exist. Unique indexes guarantee
    none of this: two writers applying one change twice would break it.
    """
    problems: list[str] = []
    with psycopg.connect(dsn) as conn:
        audits = conn.execute(
            "SELECT resource_type::text, resource_id, action::text, count(*) FROM audit_logs "
            "GROUP BY 1, 2, 3"
        ).fetchall()
        providers = conn.execute("SELECT id, name, deleted FROM ai_providers").fetchall()
        keys = {r[0] for r in conn.execute("SELECT id FROM ai_provider_keys").fetchall()}
    count = {(t, rid, action): n for t, rid, action, n in audits}
    for pid, name, deleted in providers:
        creates = count.get(("ai_provider", pid, "create"), 0)
        deletes = count.get(("ai_provider", pid, "delete"), 0)
        if creates != 1:
            problems.append(f"provider {name}: {creates} create audit rows")
        if deletes != (1 if deleted else 0):
            problems.append(f"provider {name} (deleted={deleted}): {deletes} delete audit rows")
    key_ids = {rid for t, rid, _ in count if t == "ai_provider_key"}
    for rid in key_ids:
        creates = count.get(("ai_provider_key", rid, "create"), 0)
        deletes = count.get(("ai_provider_key", rid, "delete"), 0)
        if creates > 1 or deletes > 1:
            problems.append(f"key {rid}: {creates} create and {deletes} delete audit rows")
    audited_live = {
        rid
        for rid in key_ids
        if count.get(("ai_provider_key", rid, "create"), 0)
        and not count.get(("ai_provider_key", rid, "delete"), 0)
    }
    if audited_live != keys:
        problems.append(
            f"{len(keys - audited_live)} key rows without a create audit, "
            f"{len(audited_live - keys)} audited keys that do not exist"
        )
    return problems


def ownership_problems(dsn: str, live: dict[str, str], gone: dict[str, str]) -> list[str]:
    """What the ownership records get wrong (empty when right), for objects that created
    their rows: ``live`` and ``gone`` map provider names to the uids of the objects that
    exist and of those deleted. Each live object has exactly one record, pointing at the
    live row of its name; a deleted object has none."""
    problems: list[str] = []
    with psycopg.connect(dsn) as conn:
        records = conn.execute(
            f"SELECT o.object_uid, o.row_id, o.adopted, p.name, p.deleted "  # noqa: S608
            f"FROM {OWNERSHIP_TABLE} o LEFT JOIN ai_providers p ON p.id = o.row_id "
            "WHERE o.row_table = 'ai_providers'"
        ).fetchall()
    by_uid: dict[str, list[tuple[Any, ...]]] = {}
    for uid, row_id, adopted, name, deleted in records:
        by_uid.setdefault(str(uid), []).append((row_id, adopted, name, deleted))
    for name, uid in live.items():
        mine = by_uid.pop(uid, [])
        if len(mine) != 1 or mine[0][2] != name or mine[0][3] is not False or mine[0][1]:
            problems.append(f"{name}: ownership records {mine}")
    for name, uid in gone.items():
        if by_uid.pop(uid, []):
            problems.append(f"{name}: deleted, but still has an ownership record")
    if by_uid:
        problems.append(f"ownership records of unknown objects: {sorted(by_uid)}")
    return problems
