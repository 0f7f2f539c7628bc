"""Drift bookkeeping: only outside writes count, never our own or a pass in flight."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from aigateway_operator.reconcile.drift import DriftTracker

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ROW = uuid.uuid4()


def tracker_with_row() -> DriftTracker:
    t = DriftTracker()
    t.track("u1", "ns", "a")
    t.remember("u1", str(ROW), T0, None)
    return t


def test_outside_write_is_drift_and_our_own_is_not() -> None:
    t = tracker_with_row()
    snap = t.snapshot()
    assert t.changed(snap, {ROW: (T0, False)}) == []
    changed = t.changed(snap, {ROW: (T0 + timedelta(seconds=1), False)})
    assert [uid for uid, _ in changed] == ["u1"]
    assert [uid for uid, _ in t.changed(snap, {ROW: (T0, True)})] == ["u1"]  # soft-deleted
    assert [uid for uid, _ in t.changed(snap, {})] == ["u1"]  # hard-deleted


def test_objects_added_or_passed_after_the_snapshot_are_skipped() -> None:
    t = tracker_with_row()
    snap = t.snapshot()
    # A new object gets its first row while the check waits for the database.
    t.track("u2", "ns", "b")
    t.remember("u2", str(uuid.uuid4()), T0, None)
    # And u1's own pass commits a new version before the check compares.
    t.remember("u1", str(ROW), T0 + timedelta(seconds=2), None)
    assert t.changed(snap, {ROW: (T0 + timedelta(seconds=2), False)}) == []


def test_busy_objects_are_skipped() -> None:
    t = tracker_with_row()
    snap = t.snapshot()
    assert t.changed(snap, {ROW: (T0 + timedelta(seconds=1), False)}, busy={"u1"}) == []


def test_due_objects() -> None:
    t = tracker_with_row()
    t.remember("u1", None, None, T0 + timedelta(minutes=15))
    assert t.objects["u1"].row_id == ROW  # kept
    assert t.due(T0) == []
    assert [uid for uid, _ in t.due(T0 + timedelta(minutes=15))] == ["u1"]
    assert t.due(T0 + timedelta(minutes=15), busy={"u1"}) == []
