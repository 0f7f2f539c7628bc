"""Drift: Coder rows of ours changed by someone else (Coder's UI or API, or SQL).

**Noticing it.** After each pass the operator remembers the row version its write (or no-op)
left, on the object's record (:class:`ProviderPart`; a ``RowVersion`` covers the provider row
*and* its key rows; :class:`DriftTracker` reads the records). When
``ai_providers_changed`` fires, rows whose version differs from the remembered one, or that
vanished, were written by someone else, and their objects are woken. The operator's own
writes never wake it up again. Only objects whose kopf daemon runs are tracked: the row is
unwatched when the daemon stops, so a replica paused by peering checks nothing (and its LISTEN
is closed: ``operator.app``). Edits that send no notify (direct SQL) are caught by every
object's periodic resync pass, which compares the whole row and its key rows.

A check works on a *snapshot* of what was remembered when it started: an object whose pass
ran (or is running) meanwhile is left out, because the row it reads may already be, or be
about to be, the pass's own write. The next notify or resync looks at it again.

**Reporting it** (``driftPolicy: Report``): :func:`report_drift` compares the row with the
spec and says what differs, without writing. Coder-owned fields (``spec.coderOwnedFields``)
are never a difference; their values in Coder go to ``status.coderOwned``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from uuid import UUID

from aigateway_operator.api.aiprovider import AIProviderSpec, AIProviderStatus
from aigateway_operator.api.common import ConditionType, Reason
from aigateway_operator.controllers.aiprovider.hostnames import (
    HostnameCheck,
    announce_hostname_warning,
    check_hostname,
    record_hostname,
    with_hostname_warning,
)
from aigateway_operator.controllers.aiprovider.part import ProviderPart
from aigateway_operator.controllers.aiprovider.status import carry, coder_owned_status, finish
from aigateway_operator.controllers.record import ObjectRecord
from aigateway_operator.controllers.shared import (
    ObjectIdentity,
    PassOutcome,
    PassScratch,
    store_failure,
)
from aigateway_operator.controllers.wiring import Wiring
from aigateway_operator.status.conditions import ConditionState
from aigateway_operator.store import DesiredProvider, OwnerRef, RowVersion, StoreError

__all__ = ["DriftTracker", "Snapshot", "report_drift"]

IN_SYNC = "Provider is in sync with Coder"


@dataclass(frozen=True)
class Snapshot:
    """What was remembered at the start of a check: uid -> (row id, version)."""

    rows: dict[str, tuple[UUID, RowVersion]]

    def row_ids(self) -> list[UUID]:
        return [row for row, _ in self.rows.values()]


@dataclass(frozen=True)
class DriftTracker:
    """The drift watch's view of the objects' records (it keeps nothing of its own: the row id
    and version are on each object's record, :class:`ProviderPart`)."""

    records: Mapping[str, ObjectRecord[ProviderPart]]

    @staticmethod
    def remember(part: ProviderPart, row_id: str | None, version: RowVersion | None) -> None:
        """Record a finished pass: the row version it left (if any)."""
        if row_id:
            part.row_id = UUID(row_id)
        if version is not None:
            part.version = version

    @staticmethod
    def unwatch(part: ProviderPart) -> None:
        """The object's daemon stopped (deletion, exit, peering): its row is not watched."""
        part.row_id = part.version = None

    def snapshot(self) -> Snapshot:
        """The rows of objects whose daemon runs (``ObjectRecord.live``): a replica paused by
        peering has none, so it checks nothing."""
        return Snapshot(
            {
                uid: (r.part.row_id, r.part.version)
                for uid, r in self.records.items()
                if r.part.row_id is not None and r.part.version is not None and r.live is not None
            }
        )

    def changed(
        self,
        snap: Snapshot,
        versions: dict[UUID, RowVersion],
        busy: Collection[str] = (),
    ) -> list[ObjectRecord[ProviderPart]]:
        """Objects of ``snap`` whose row now has another version, or is gone or deleted.

        ``versions`` must come from a query over exactly ``snap.row_ids()``. Objects with a
        pass in flight (``busy``), finished since the snapshot, or forgotten meanwhile are
        skipped.
        """
        out = []
        for uid, (row_id, version) in snap.rows.items():
            now = self.records.get(uid)
            if (
                now is None
                or uid in busy
                or now.part.version != version
                or now.part.row_id != row_id
            ):
                continue
            seen = versions.get(row_id)
            if seen is None or seen.deleted or seen != version:
                out.append(now)
        return out


async def report_drift(
    wiring: Wiring,
    ident: ObjectIdentity,
    owner: OwnerRef,
    current: AIProviderStatus,
    scratch: PassScratch,
    spec: AIProviderSpec,
    desired: DesiredProvider,
    revision: str,
) -> PassOutcome:
    """``driftPolicy: Report``: compare the row with the spec and say so, never write."""
    try:
        check = await wiring.store.check_provider(desired, owner)
    except StoreError as exc:
        failure = store_failure(exc, ConditionType.SYNCED)
        scratch.set(failure.condition)
        scratch.database_error = failure.database_error
        if failure.retry_after is not None:
            scratch.retry(failure.retry_after, failure.condition.message)
        return finish(wiring, ident, current, scratch, carry(current))
    differences = ["row missing"] if check is None else [str(d) for d in check.differences]
    hostname: HostnameCheck | None = None
    if check is not None and check.left_alone:
        message = (
            "Coder AI provider holds what this operator does not know "
            f"({', '.join(str(d) for d in check.differences if d.left_alone)}); "
            "it is left alone (driftPolicy: Report)"
        )[:1000]
        scratch.set(
            ConditionState.false(ConditionType.SYNCED, Reason.UNSUPPORTED_BY_OPERATOR, message)
        )
        if scratch.is_news(ConditionType.SYNCED, Reason.UNSUPPORTED_BY_OPERATOR):
            scratch.warn(Reason.UNSUPPORTED_BY_OPERATOR, message)
    elif differences:
        message = (
            "Coder AI provider was changed outside the operator "
            f"({', '.join(differences)}); not reverted (driftPolicy: Report)"
        )
        scratch.set(ConditionState.false(ConditionType.SYNCED, Reason.DRIFTED, message))
        if scratch.is_news(ConditionType.SYNCED, Reason.DRIFTED):
            scratch.warn(Reason.DRIFTED, message)
    else:
        # The row's own enabled value when Coder owns it (the proxy serves enabled rows).
        if check is not None:
            enabled = bool(check.coder_owned.get("enabled", desired.enabled))
            hostname = await check_hostname(
                wiring, check.provider_id, desired.name, enabled=enabled
            )
        message = with_hostname_warning(IN_SYNC, hostname)
        announce_hostname_warning(scratch, hostname)
        scratch.set(ConditionState.true(ConditionType.SYNCED, Reason.SYNCED, message))
    status = carry(current, revision)
    if check is not None:
        status = status.model_copy(
            update={"coder_owned": coder_owned_status(spec, check.coder_owned)}
        )
    outcome = finish(wiring, ident, current, scratch, status)
    outcome.db_action = "unchanged"
    record_hostname(outcome, hostname)
    return outcome
