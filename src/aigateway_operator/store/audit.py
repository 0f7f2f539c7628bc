"""Audit rows shaped like the ones coderd's enterprise auditor writes (reference §5.5, §7.4).

The Coder UI renders ``audit_logs`` rows; ours must look like coderd's own so that they
render the same way: the same resource types, tracked fields, ``Old``/``New``/``Secret``
diff objects, masked key values, ``"null"`` for a NULL ``display_name``, the nil
organization id and an empty resource icon. ``additional_fields`` names the Kubernetes object
that caused the change (coderd writes ``{}`` or key summaries there).

Entries are only written when ``audit_logs`` exists, and only for real changes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from psycopg import AsyncConnection, sql

__all__ = ["AuditEntry", "diff", "write_audit"]

NIL = str(uuid.UUID(int=0))
USER_AGENT = "aigateway-operator"

Action = Literal["create", "write", "delete"]
ResourceType = Literal["ai_provider", "ai_provider_key", "ai_gateway_key"]

SECRET = object()
"""Marker for a field coderd audits as ``ActionSecret``: changed, but value not shown."""


@dataclass(frozen=True)
class AuditEntry:
    resource_type: ResourceType
    resource_id: uuid.UUID
    resource_target: str
    action: Action
    diff: dict[str, Any]
    additional_fields: dict[str, Any] = field(default_factory=dict)


def diff(
    old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, fields: Sequence[str]
) -> dict[str, Any]:
    """coderd's diff map: one ``{"Old","New","Secret"}`` object per tracked field that changed.

    ``None`` for ``old``/``new`` is the zero value of the row (create / delete). A field whose
    value is :data:`SECRET` on either side is reported with empty values and ``Secret: true``.
    """
    out: dict[str, Any] = {}
    for name in fields:
        o = (old or {}).get(name, _ZERO.get(name, ""))
        n = (new or {}).get(name, _ZERO.get(name, ""))
        if isinstance(o, _Secret) or isinstance(n, _Secret):
            o_val = o.value if isinstance(o, _Secret) else None
            n_val = n.value if isinstance(n, _Secret) else None
            if o_val != n_val:
                out[name] = {"Old": "", "New": "", "Secret": True}
            continue
        if o != n:
            out[name] = {"Old": o, "New": n, "Secret": False}
    return out


class _Secret:
    """A secret field value: compared for change, never rendered."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "_Secret(...)"


def secret(value: object) -> _Secret:
    return _Secret(value)


# Zero values as coderd renders them: nil uuid, empty string, false, and "null" for NULL text.
_ZERO: dict[str, Any] = {
    "id": NIL,
    "provider_id": NIL,
    "enabled": False,
    "deleted": False,
    "display_name": "null",
}


async def write_audit(
    conn: AsyncConnection[Any],
    entries: Sequence[AuditEntry],
    *,
    user_id: uuid.UUID,
    request_id: uuid.UUID,
    owner_fields: Mapping[str, Any],
) -> None:
    """Insert ``entries`` in the caller's transaction (so they commit with the change)."""
    if not entries:
        return
    rows = []
    for e in entries:
        extra = {**e.additional_fields, "kubernetes": dict(owner_fields)}
        rows.append(
            (
                uuid.uuid4(),
                user_id,
                NIL,
                USER_AGENT,
                e.resource_type,
                e.resource_id,
                e.resource_target,
                e.action,
                json.dumps(e.diff, separators=(",", ":")),
                200,
                json.dumps(extra, separators=(",", ":"), default=str),
                request_id,
            )
        )
    # One statement for all rows (not executemany): a round trip per row costs more than the
    # rows themselves.
    row_sql = sql.SQL(
        "(%s, now(), %s, %s, NULL, %s, %s::resource_type, %s, %s, %s::audit_action, "
        "%s::jsonb, %s, %s::jsonb, %s, '')"
    )
    query = sql.SQL(
        'INSERT INTO audit_logs (id, "time", user_id, organization_id, ip, user_agent, '
        "resource_type, resource_id, resource_target, action, diff, status_code, "
        "additional_fields, request_id, resource_icon) VALUES {}"
    ).format(sql.SQL(", ").join([row_sql] * len(rows)))
    await conn.execute(query, [v for row in rows for v in row])
