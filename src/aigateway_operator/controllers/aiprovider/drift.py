"""Drift: Coder rows of ours changed by someone else (Coder's UI or API, or SQL).

**Noticing it.** After each pass the operator remembers the ``updated_at`` its write (or
no-op) left on the object's row (:class:`DriftTracker`). When ``ai_providers_changed`` fires,
rows whose ``updated_at`` differs from the remembered value, or that vanished, were written by
someone else, and their objects are woken (:func:`changed_objects`). The operator's own writes
never wake it up again. Edits that send no notify (direct SQL) are caught by every object's
periodic resync pass, which compares the whole row and its key rows.

A check works on a *snapshot* of what was remembered when it started: an object whose pass
ran (or is running) meanwhile is left out, because the row it reads may already be, or be
about to be, the pass's own write. The next notify or resync looks at it again.

**Reporting it** (``driftPolicy: Report``): :func:`report_drift` compares the row with the
spec and says what differs, without writing.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from aigateway_operator.api.aiprovider import AIProviderStatus
from aigateway_operator.api.common import ConditionType, Reason
from aigateway_operator.controllers.aiprovider.status import carry, finish
from aigateway_operator.controllers.shared import (
    ObjectIdentity,
    PassOutcome,
    PassScratch,
    store_failure,
)
from aigateway_operator.controllers.wiring import Wiring
from aigateway_operator.status.conditions import ConditionState
from aigateway_operator.store import DesiredProvider, OwnerRef, StoreError

__all__ = ["DriftTracker", "Snapshot", "Tracked", "report_drift"]

IN_SYNC = "Provider is in sync with Coder"


@dataclass(frozen=True)
class Tracked:
    namespace: str
    name: str
    row_id: UUID | None = None
    version: datetime | None = None


@dataclass(frozen=True)
class Snapshot:
    """What was remembered at the start of a check: uid -> (row id, version)."""

    rows: dict[str, tuple[UUID, datetime]]

    def row_ids(self) -> list[UUID]:
        return [row for row, _ in self.rows.values()]


@dataclass
class DriftTracker:
    objects: dict[str, Tracked] = field(default_factory=dict)

    def remember(self, ident: ObjectIdentity, row_id: str | None, version: datetime | None) -> None:
        """Record a finished pass: the row version it left (if any)."""
        old = self.objects.get(ident.uid)
        rid = UUID(row_id) if row_id else (old.row_id if old else None)
        ver = version if version is not None else (old.version if old else None)
        self.objects[ident.uid] = Tracked(ident.namespace, ident.name, rid, ver)

    def forget(self, uid: str) -> None:
        self.objects.pop(uid, None)

    def snapshot(self) -> Snapshot:
        return Snapshot(
            {
                uid: (t.row_id, t.version)
                for uid, t in self.objects.items()
                if t.row_id is not None and t.version is not None
            }
        )

    def changed(
        self,
        snap: Snapshot,
        versions: dict[UUID, tuple[datetime, bool]],
        busy: Collection[str] = (),
    ) -> list[tuple[str, Tracked]]:
        """Objects of ``snap`` whose row now has another ``updated_at``, or is gone/deleted.

        ``versions`` must come from a query over exactly ``snap.row_ids()``. Objects with a
        pass in flight (``busy``) or finished since the snapshot are skipped.
        """
        out = []
        for uid, (row_id, version) in snap.rows.items():
            now = self.objects.get(uid)
            if now is None or uid in busy or now.version != version or now.row_id != row_id:
                continue
            seen = versions.get(row_id)
            if seen is None or seen[1] or seen[0] != version:
                out.append((uid, now))
        return out


async def report_drift(
    wiring: Wiring,
    ident: ObjectIdentity,
    owner: OwnerRef,
    current: AIProviderStatus,
    scratch: PassScratch,
    desired: DesiredProvider,
    revision: str,
) -> PassOutcome:
    """``driftPolicy: Report``: compare the row with the spec and say so, never write."""
    try:
        differences = await wiring.store.compare_provider(desired, owner)
    except StoreError as exc:
        failure = store_failure(exc, ConditionType.SYNCED)
        scratch.set(failure.condition)
        scratch.database_error = failure.database_error
        if failure.retry_after is not None:
            scratch.retry(failure.retry_after, failure.condition.message)
        return finish(wiring, ident, current, scratch, carry(current))
    if differences is None:
        differences = ["row missing"]
    if differences:
        message = (
            "Coder AI provider was changed outside the operator "
            f"({', '.join(differences)}); not reverted (driftPolicy: Report)"
        )
        scratch.set(ConditionState.false(ConditionType.SYNCED, Reason.DRIFTED, message))
        if scratch.is_news(ConditionType.SYNCED, Reason.DRIFTED):
            scratch.warn(Reason.DRIFTED, message)
    else:
        scratch.set(ConditionState.true(ConditionType.SYNCED, Reason.SYNCED, IN_SYNC))
    outcome = finish(wiring, ident, current, scratch, carry(current, revision))
    outcome.db_action = "unchanged"
    return outcome
