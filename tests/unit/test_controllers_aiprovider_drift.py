"""Drift bookkeeping: only outside writes count, never our own or a pass in flight.

The row id and version live on each object's record (``ProviderPart``); the tracker only
reads the records."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from aigateway_operator.controllers.aiprovider.drift import DriftTracker
from aigateway_operator.controllers.aiprovider.part import ProviderPart
from aigateway_operator.controllers.record import ObjectRecord
from aigateway_operator.store import RowVersion

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ROW = uuid.uuid4()
V0 = RowVersion(T0, False, "v0")

Records = dict[str, ObjectRecord[ProviderPart]]


def record(records: Records, uid: str, name: str, *, serving: bool = True) -> ProviderPart:
    """The object's record, its daemon running (``live`` set) unless ``serving`` is False."""
    r = records.get(uid)
    if r is None:
        r = records[uid] = ObjectRecord(uid, "ns", name, ProviderPart())
    r.live = {"metadata": {"uid": uid}} if serving else None
    return r.part


def tracker_with_row() -> tuple[DriftTracker, Records]:
    records: Records = {}
    DriftTracker.remember(record(records, "u1", "a"), str(ROW), V0)
    return DriftTracker(records), records


def test_outside_write_is_drift_and_our_own_is_not() -> None:
    t, _ = tracker_with_row()
    snap = t.snapshot()
    assert t.changed(snap, {ROW: V0}) == []
    changed = t.changed(snap, {ROW: RowVersion(T0 + timedelta(seconds=1), False, "v1")})
    assert [r.uid for r in changed] == ["u1"]
    # A key row edited in SQL leaves updated_at alone; the token still moves.
    key_edit = t.changed(snap, {ROW: RowVersion(T0, False, "v0-key-row-edited")})
    assert [r.uid for r in key_edit] == ["u1"]
    soft = t.changed(snap, {ROW: RowVersion(T0, True, "v0")})
    assert [r.uid for r in soft] == ["u1"]  # soft-deleted
    assert [r.uid for r in t.changed(snap, {})] == ["u1"]  # hard-deleted


def test_objects_added_or_passed_after_the_snapshot_are_skipped() -> None:
    t, records = tracker_with_row()
    snap = t.snapshot()
    # A new object gets its first row while the check waits for the database.
    DriftTracker.remember(record(records, "u2", "b"), str(uuid.uuid4()), V0)
    # And u1's own pass commits a new version before the check compares.
    v2 = RowVersion(T0 + timedelta(seconds=2), False, "v2")
    DriftTracker.remember(records["u1"].part, str(ROW), v2)
    assert t.changed(snap, {ROW: v2}) == []


def test_busy_objects_are_skipped() -> None:
    t, _ = tracker_with_row()
    snap = t.snapshot()
    assert t.changed(snap, {ROW: RowVersion(T0, False, "v1")}, busy={"u1"}) == []


def test_objects_forgotten_after_the_snapshot_are_skipped() -> None:
    """The record dropped (the object deleted) while the check waited: nothing to wake."""
    t, records = tracker_with_row()
    snap = t.snapshot()
    del records["u1"]
    assert t.changed(snap, {}) == []


def test_a_pass_without_a_row_keeps_the_row_it_knew() -> None:
    t, records = tracker_with_row()
    part = records["u1"].part
    DriftTracker.remember(part, None, None)  # e.g. stopped at a missing Secret
    assert part.row_id == ROW
    assert part.version == V0
    DriftTracker.unwatch(part)  # its daemon stopped
    assert t.snapshot().rows == {}


def test_only_objects_whose_daemon_runs_are_checked() -> None:
    """A replica paused by peering has no daemons: a check there looks at no row."""
    t, records = tracker_with_row()
    record(records, "u1", "a", serving=False)
    assert t.snapshot().rows == {}
    record(records, "u1", "a", serving=True)
    assert list(t.snapshot().rows) == ["u1"]
