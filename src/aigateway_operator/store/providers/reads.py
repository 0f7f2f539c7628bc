"""Read-only provider operations: our row decrypted (``get``), how it differs from the desired
state (``check``), what an upsert would do now (``preview``, by the same claim rule and the
same plan as the upsert), row versions and hostname peers. Nothing here takes lock 10, a row
lock, or writes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection

from aigateway_operator.masking import mask_secret
from aigateway_operator.store.canonical import (
    bedrock_from_dict,
    canonicalize,
    with_stored_external_id,
)
from aigateway_operator.store.claim import Claim
from aigateway_operator.store.models import (
    HOSTNAME_PEER_NAMES,
    DesiredProvider,
    Difference,
    DifferenceKind,
    HostnamePeers,
    OwnerRef,
    ProviderCheck,
    ProviderPreview,
    ProviderType,
    RowVersion,
    StoredKey,
    StoredProvider,
)
from aigateway_operator.store.plan import coder_owned_values, plan_provider
from aigateway_operator.store.providers.rows import VERSION_COLS, ProviderTables, row_version
from aigateway_operator.store.settings import SettingsStatus

__all__ = ["ProviderReads"]

#: The hostname of a URL in a Postgres (ARE) regular expression: after the scheme and any
#: user info, up to a port, path, query or fragment (IPv6 literals keep their brackets).
_HOST_RE = r"^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?(\[[^]]*\]|[^/:?#]+)"


class ProviderReads(ProviderTables):
    """The read-only provider operations."""

    async def get(self, conn: AsyncConnection[Any], owner: OwnerRef) -> StoredProvider | None:
        """Our row, decrypted, as far as it can be read: what cannot be read is in
        ``issues`` (never an exception for an unknown type or undecodable content)."""
        async with conn.transaction():
            row = await self._load_owned(conn, owner, lock=False)
            if row is None:
                return None
            keys = await self._load_keys(conn, row.id, lock=False)
        settings, _ = self._read_settings(row)
        view = row.view(settings)
        issues: list[Difference] = []
        if not view.type_known:
            issues.append(
                Difference("type", DifferenceKind.UNKNOWN_TYPE, f"{row.type!r} is not known")
            )
        if settings.status is SettingsStatus.UNKNOWN_TYPE:
            issues.append(
                Difference("settings", DifferenceKind.UNKNOWN_SETTINGS_TYPE, settings.reason)
            )
        elif settings.status is SettingsStatus.UNDECODABLE:
            issues.append(
                Difference(
                    "settings",
                    DifferenceKind.SETTINGS_UNDECODABLE,
                    f"undecodable by coderd: {settings.reason}",
                )
            )
        issues += [
            Difference("api_keys", DifferenceKind.KEY_UNDECRYPTABLE, f"row {k.id} does not decrypt")
            for k in keys
            if k.value is None
        ]
        return StoredProvider(
            id=row.id,
            name=row.name,
            type=ProviderType(row.type) if view.type_known else None,
            display_name=row.display_name,
            icon=row.icon if self._caps.has_icon else None,
            enabled=row.enabled,
            deleted=row.deleted,
            base_url=row.base_url,
            bedrock=bedrock_from_dict(settings.view),
            settings_key_id=row.settings_key_id,
            keys=tuple(
                StoredKey(k.id, k.value or "", mask_secret(k.value or ""), k.key_id, k.created_at)
                for k in keys
            ),
            created_at=row.created_at,
            updated_at=row.updated_at,
            adopted=row.adopted,
            type_label=row.type,
            issues=tuple(issues),
        )

    async def check(
        self, conn: AsyncConnection[Any], desired: DesiredProvider, owner: OwnerRef
    ) -> ProviderCheck | None:
        """How our row differs from ``desired`` (None: no row), key rows included: count,
        order and decrypted values; undecodable settings and undecryptable key rows are
        differences of their own. Writes nothing; never raises for what it cannot read."""
        canon = canonicalize(desired, self._caps.coder)
        async with conn.transaction():
            row = await self._load_owned(conn, owner, lock=False)
            if row is None:
                return None
            settings, _ = self._read_settings(row)
            canon = with_stored_external_id(canon, desired, settings.view, self._caps.coder)
            keys = await self._load_keys(conn, row.id, lock=False)
        view = row.view(settings)
        p = plan_provider(
            view,
            keys,
            canon,
            has_icon=self._caps.has_icon,
            primary_digest=self._ring.primary_digest,
        )
        return ProviderCheck(
            provider_id=row.id,
            differences=p.differences,
            version=row.version,
            # What Coder holds now (also on a soft-deleted row, where the plan would revive).
            coder_owned=coder_owned_values(view, canon.coder_owned, has_icon=self._caps.has_icon),
        )

    async def preview(
        self, conn: AsyncConnection[Any], desired: DesiredProvider, owner: OwnerRef, adopt: bool
    ) -> ProviderPreview:
        """What :meth:`ProviderUpsert.upsert` would do now (see :class:`ProviderPreview`): the
        same candidates loaded, the same claim rule and refusals, the same plan, without lock
        10, row locks or writes. Another writer may change the answer before an upsert runs;
        it is a preview."""
        canon = canonicalize(desired, self._caps.coder)
        async with conn.transaction():
            load = await self._send_load_candidates(conn, owner, canon.name, lock=False)
            ours, holder, _ = await self._candidates(load)
            taken, row = self._claim(ours, holder, canon, owner, adopt)
            if row is None:
                return ProviderPreview(
                    action="create",
                    name=canon.name,
                    type=canon.type.value,
                    keys_added=tuple(mask_secret(k) for k in canon.api_keys),
                    key_count=len(canon.api_keys),
                )
            p, canon, _, _ = await self._plan_row(conn, row, canon, desired, lock=False)
        kp = p.keys
        action: str = taken.value
        if p.left_alone:
            action = "left_alone"
        elif taken is Claim.UPDATE and not p.changed:
            action = "unchanged"
        columns = tuple(p.changes) + (("settings",) if p.settings_changed else ())
        return ProviderPreview(
            action=action,  # type: ignore[arg-type]
            name=canon.name,
            type=canon.type.value,
            columns=columns,
            keys_added=tuple(mask_secret(v) for v in kp.new_values),
            keys_removed=tuple(mask_secret(k.value) if k.value else "" for k in kp.removed),
            keys_reordered=kp.reordered,
            key_count=len(canon.api_keys),
            differences=p.differences,
        )

    async def row_versions(
        self, conn: AsyncConnection[Any], row_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, RowVersion]:
        """:class:`RowVersion` of the given rows, key rows included (missing rows left out)."""
        cur = await conn.execute(
            f"SELECT p.id, {VERSION_COLS} FROM ai_providers p "  # noqa: S608
            "WHERE p.id = ANY(%s)",
            (list(row_ids),),
        )
        return {r[0]: row_version(r[1], r[2], r[3]) for r in await cur.fetchall()}

    async def hostname_peers(
        self, conn: AsyncConnection[Any], provider_id: uuid.UUID
    ) -> HostnamePeers | None:
        """Up to :data:`HOSTNAME_PEER_NAMES` other live, enabled providers sharing this
        provider's base-URL hostname, any of them (None when the provider is not live and
        enabled, or has no hostname). Hostnames compare
        case-insensitively, as URL hostnames do; one statement, no lock."""
        # Cheap on a big table: this provider's host is computed once (a materialized CTE),
        # a substring test rejects other hosts before the regex runs, and the scan stops at
        # the second match (no order: a host shared by a thousand providers costs two rows).
        cur = await conn.execute(
            "WITH me AS MATERIALIZED (SELECT lower(substring(base_url from %(re)s)) AS host "
            "            FROM ai_providers WHERE id = %(id)s AND enabled AND NOT deleted) "
            "SELECT me.host, p.name FROM me LEFT JOIN LATERAL ("
            "  SELECT name FROM ai_providers p "
            "  WHERE p.id <> %(id)s AND p.enabled AND NOT p.deleted "
            "    AND strpos(lower(p.base_url), me.host) > 0 "
            "    AND lower(substring(p.base_url from %(re)s)) = me.host "
            "  LIMIT %(limit)s) p ON true",
            {"id": provider_id, "re": _HOST_RE, "limit": HOSTNAME_PEER_NAMES},
        )
        rows = await cur.fetchall()
        if not rows or not rows[0][0]:
            return None
        names = tuple(sorted(r[1] for r in rows if r[1]))
        return HostnamePeers(hostname=rows[0][0], names=names, count=len(names))
