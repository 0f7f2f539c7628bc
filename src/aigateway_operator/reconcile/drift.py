"""Which of our Coder rows changed outside the operator (pure bookkeeping, no I/O).

After each pass the operator remembers the ``updated_at`` its write (or no-op) left on the
object's row. When ``ai_providers_changed`` fires, rows whose ``updated_at`` differs from the
remembered value, or that vanished, were written by someone else: coderd's UI/API or SQL.
The operator's own writes therefore never wake it up again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True)
class Tracked:
    namespace: str
    name: str
    row_id: UUID | None = None
    version: datetime | None = None


@dataclass
class DriftTracker:
    objects: dict[str, Tracked] = field(default_factory=dict)

    def track(self, uid: str, namespace: str, name: str) -> None:
        """Know the object even before it has a row (its first write then counts as ours)."""
        old = self.objects.get(uid)
        if old is None:
            self.objects[uid] = Tracked(namespace, name)
        elif (old.namespace, old.name) != (namespace, name):
            self.objects[uid] = Tracked(namespace, name, old.row_id, old.version)

    def remember(self, uid: str, row_id: str, version: datetime) -> None:
        old = self.objects.get(uid)
        ns, name = (old.namespace, old.name) if old else ("", "")
        self.objects[uid] = Tracked(ns, name, UUID(row_id), version)

    def forget(self, uid: str) -> None:
        self.objects.pop(uid, None)

    def row_ids(self) -> list[UUID]:
        return [t.row_id for t in self.objects.values() if t.row_id is not None]

    def changed(self, versions: dict[UUID, tuple[datetime, bool]]) -> list[tuple[str, Tracked]]:
        """Objects whose row has another ``updated_at`` than we left, or is gone/deleted."""
        out = []
        for uid, t in self.objects.items():
            if t.row_id is None or t.version is None:
                continue
            seen = versions.get(t.row_id)
            if seen is None or seen[1] or seen[0] != t.version:
                out.append((uid, t))
        return out
