"""Which of our Coder rows changed outside the operator, and which objects are due a pass
(pure bookkeeping, no I/O).

After each pass the operator remembers the ``updated_at`` its write (or no-op) left on the
object's row. When ``ai_providers_changed`` fires, or on the periodic resync, rows whose
``updated_at`` differs from the remembered value, or that vanished, were written by someone
else: coderd's UI/API or SQL. The operator's own writes therefore never wake it up again.

A check works on a *snapshot* of what was remembered when it started: an object whose pass
ran (or is running) meanwhile is left out, because the row it reads may already be, or be
about to be, the pass's own write. The next notify or resync looks at it again.

The tracker also keeps when each object is next due a pass without any event (an STS
verdict to refresh, a blocked object to retry), so one operator-wide loop can replace a
per-object timer (a timer is an asyncio task per object: memory and scheduling that grow
with the object count).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True)
class Tracked:
    namespace: str
    name: str
    row_id: UUID | None = None
    version: datetime | None = None
    due: datetime | None = None
    """When the object next needs a pass although nothing changed (None: only on events)."""


@dataclass(frozen=True)
class Snapshot:
    """What was remembered at the start of a check: uid -> (row id, version)."""

    rows: dict[str, tuple[UUID, datetime]]

    def row_ids(self) -> list[UUID]:
        return [row for row, _ in self.rows.values()]


@dataclass
class DriftTracker:
    objects: dict[str, Tracked] = field(default_factory=dict)

    def track(self, uid: str, namespace: str, name: str) -> None:
        """Know the object even before it has a row (its first write then counts as ours)."""
        old = self.objects.get(uid)
        if old is None:
            self.objects[uid] = Tracked(namespace, name)
        elif (old.namespace, old.name) != (namespace, name):
            self.objects[uid] = Tracked(namespace, name, old.row_id, old.version, old.due)

    def remember(
        self, uid: str, row_id: str | None, version: datetime | None, due: datetime | None
    ) -> None:
        """Record a finished pass: the row version it left (if any) and when it is next due."""
        old = self.objects.get(uid)
        ns, name = (old.namespace, old.name) if old else ("", "")
        rid = UUID(row_id) if row_id else (old.row_id if old else None)
        ver = version if version is not None else (old.version if old else None)
        self.objects[uid] = Tracked(ns, name, rid, ver, due)

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

    def due(self, now: datetime, busy: Collection[str] = ()) -> list[tuple[str, Tracked]]:
        """Objects whose next unprompted pass is due."""
        return [
            (uid, t)
            for uid, t in self.objects.items()
            if t.due is not None and t.due <= now and uid not in busy
        ]
