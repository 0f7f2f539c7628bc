"""Audit rows shaped like the ones coderd's enterprise auditor writes (reference §5.5, §7.4).

The Coder UI renders ``audit_logs`` rows; ours must look like coderd's own so that they
render the same way: the same resource types, tracked fields, ``Old``/``New``/``Secret``
diff objects, masked key values, ``"null"`` for a NULL ``display_name``, the nil
organization id and an empty resource icon. ``additional_fields.kubernetes`` names the
Kubernetes object that caused the change and who changed it (coderd writes ``{}`` or key
summaries there).

**The actor.** ``user_id`` stays the configured audit user (the nil UUID by default: a
non-human actor, as coderd has none for the operator). Who in Kubernetes caused the change
goes where Coder's audit view shows it: ``user_agent``
(``aigateway-operator/<version> (kubernetes: <actor>)``, :func:`user_agent`, cut to the
column's 256 characters) and ``additional_fields.kubernetes`` (``actor``, ``actor_source``,
``actor_groups``, ``actor_reason``; see :class:`~aigateway_operator.store.models.Actor`).

Entries are only written when ``audit_logs`` exists, and only for real changes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from psycopg import AsyncConnection

from aigateway_operator import __version__

__all__ = [
    "AUDIT_INSERT_SQL",
    "AuditEntry",
    "audit_params",
    "diff",
    "user_agent",
    "write_audit",
]

NIL = str(uuid.UUID(int=0))
USER_AGENT = f"aigateway-operator/{__version__}"
#: ``audit_logs.user_agent`` is ``varchar(256)``.
USER_AGENT_LIMIT = 256


def user_agent(actor: str) -> str:
    """``aigateway-operator/<version> (kubernetes: <actor>)``, at most 256 characters."""
    text = f"{USER_AGENT} (kubernetes: {actor})"
    if len(text) <= USER_AGENT_LIMIT:
        return text
    return text[: USER_AGENT_LIMIT - 4] + "...)"


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


#: Every audit row of a change in one statement, whatever their number: the rows travel as
#: one JSON array (``jsonb_to_recordset``), so the text never changes (psycopg parses it once,
#: the server prepares it once per connection) and the values need no per-element escaping.
AUDIT_INSERT_SQL = (
    'INSERT INTO audit_logs (id, "time", user_id, organization_id, ip, user_agent, '
    "resource_type, resource_id, resource_target, action, diff, status_code, "
    "additional_fields, request_id, resource_icon) "
    "SELECT a.id, now(), %s, %s, NULL, %s, a.rtype::resource_type, a.rid, a.target, "
    "a.action::audit_action, a.diff, 200, a.extra, %s, '' "
    "FROM jsonb_to_recordset(%s::jsonb) "
    "AS a(id uuid, rtype text, rid uuid, target text, action text, diff jsonb, extra jsonb)"
)


def audit_params(
    entries: Sequence[AuditEntry],
    *,
    user_id: uuid.UUID,
    request_id: uuid.UUID,
    owner_fields: Mapping[str, Any],
) -> list[Any]:
    """The parameters of :data:`AUDIT_INSERT_SQL` for ``entries``; ``owner_fields`` (the
    object and its actor, ``OwnerRef.audit_fields()``) also give the user agent."""
    kubernetes = dict(owner_fields)
    rows = [
        {
            "id": str(uuid.uuid4()),
            "rtype": e.resource_type,
            "rid": str(e.resource_id),
            "target": e.resource_target,
            "action": e.action,
            "diff": e.diff,
            "extra": {**e.additional_fields, "kubernetes": kubernetes},
        }
        for e in entries
    ]
    return [
        user_id,
        NIL,
        user_agent(str(kubernetes.get("actor", "unknown"))),
        request_id,
        json.dumps(rows, separators=(",", ":"), default=str),
    ]


async def write_audit(
    conn: AsyncConnection[Any],
    entries: Sequence[AuditEntry],
    *,
    enabled: bool,
    user_id: uuid.UUID,
    owner_fields: Mapping[str, Any],
) -> bool:
    """Insert ``entries`` in the caller's transaction (so they commit with the change), as one
    request (a new request id), when Coder's audit table exists (``enabled``); whether it
    wrote any. Both tables' stores audit through this one call."""
    if not (enabled and entries):
        return False
    params = audit_params(
        entries, user_id=user_id, request_id=uuid.uuid4(), owner_fields=owner_fields
    )
    await conn.execute(AUDIT_INSERT_SQL, params)
    return True
