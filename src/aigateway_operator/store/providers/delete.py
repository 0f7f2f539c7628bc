"""The end of a provider: soft delete our row (as coderd does) or release it to Coder."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from aigateway_operator.store import actors, audit, ownership
from aigateway_operator.store.models import DeletePolicy, DeleteResult, KeyRef, OwnerRef
from aigateway_operator.store.providers.rows import ProviderTables

__all__ = ["ProviderDelete"]


class ProviderDelete(ProviderTables):
    """:meth:`delete`."""

    async def delete(
        self, conn: AsyncConnection[Any], owner: OwnerRef, policy: DeletePolicy
    ) -> DeleteResult:
        """Soft delete our row (like coderd; its record goes), or release it: the row stays
        live and untouched and its record stays too, marked Orphan, so the same identity
        re-created (a manifest applied again, a cluster rebuilt from Git) takes it back and no
        other object can take it meanwhile. Idempotent; writes nothing encrypted, so it works
        even when the encryption keys are wrong (a finalizer must never hang). The object's
        admission records (``actors``) go either way: it is gone."""
        async with conn.transaction():
            await self._lock_and_now(conn)
            await actors.forget(conn, owner.uid)
            row = await self._load_owned(conn, owner, lock=True)
            if policy is DeletePolicy.RELEASE:
                if row is None:
                    return DeleteResult(None, "absent", notified=False)
                if row.deletion_policy != "Orphan":
                    await ownership.record_provider(conn, owner, row.id, bool(row.adopted), policy)
                return DeleteResult(row.id, "released", notified=False)
            await ownership.forget_provider(conn, owner)
            if row is None or row.deleted:
                return DeleteResult(row.id if row else None, "absent", notified=False)
            await conn.execute(
                "UPDATE ai_providers SET deleted = true, enabled = false, updated_at = now() "
                "WHERE id = %s AND NOT deleted",
                (row.id,),
            )
            await self._checkpoint("provider_written", conn)
            # coderd keeps key rows of a soft-deleted provider (invisible to every reader); we
            # remove them so no API key outlives the object that declared it. The masked value
            # is audited when we can still decrypt it, never required (deletes must not hang).
            cur = await conn.execute(
                "DELETE FROM ai_provider_keys WHERE provider_id = %s "
                "RETURNING id, api_key, api_key_key_id",
                (row.id,),
            )
            removed = [
                KeyRef(id=kid, masked=self._masked_or_blank(value, key_id), key_id=key_id)
                for kid, value, key_id in await cur.fetchall()
            ]
            # coderd's delete audit carries only the old row; the settings ciphertext stands in
            # for the plaintext (only "did it change" is recorded, never the value).
            old_view = row.audit_view(self._caps.has_icon, row.settings)
            entry = audit.AuditEntry(
                "ai_provider", row.id, row.name, "delete",
                audit.diff(old_view, None, self._tracked()),
            )  # fmt: skip
            entries = [entry, *self._key_entries(row.id, [], removed)]
            await self._finish(conn, owner, entries, notify=True)
            return DeleteResult(row.id, "deleted", notified=True, keys_removed=len(removed))
