"""Drift bookkeeping: only outside writes count, never our own or a pass in flight."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from aigateway_operator.api.identity import AIPROVIDER
from aigateway_operator.controllers.aiprovider.drift import DriftTracker
from aigateway_operator.controllers.shared import ObjectIdentity
from aigateway_operator.store import RowVersion

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ROW = uuid.uuid4()
V0 = RowVersion(T0, False, "v0")
SERVING = {"u1", "u2"}  # objects whose daemon runs


def ident(uid: str, name: str) -> ObjectIdentity:
    return ObjectIdentity(AIPROVIDER, "ns", name, uid, 1)


def tracker_with_row() -> DriftTracker:
    t = DriftTracker()
    t.remember(ident("u1", "a"), str(ROW), V0)
    return t


def test_outside_write_is_drift_and_our_own_is_not() -> None:
    t = tracker_with_row()
    snap = t.snapshot(SERVING)
    assert t.changed(snap, {ROW: V0}) == []
    changed = t.changed(snap, {ROW: RowVersion(T0 + timedelta(seconds=1), False, "v1")})
    assert [uid for uid, _ in changed] == ["u1"]
    # A key row edited in SQL leaves updated_at alone; the token still moves.
    key_edit = t.changed(snap, {ROW: RowVersion(T0, False, "v0-key-row-edited")})
    assert [uid for uid, _ in key_edit] == ["u1"]
    soft = t.changed(snap, {ROW: RowVersion(T0, True, "v0")})
    assert [uid for uid, _ in soft] == ["u1"]  # soft-deleted
    assert [uid for uid, _ in t.changed(snap, {})] == ["u1"]  # hard-deleted


def test_objects_added_or_passed_after_the_snapshot_are_skipped() -> None:
    t = tracker_with_row()
    snap = t.snapshot(SERVING)
    # A new object gets its first row while the check waits for the database.
    t.remember(ident("u2", "b"), str(uuid.uuid4()), V0)
    # And u1's own pass commits a new version before the check compares.
    t.remember(ident("u1", "a"), str(ROW), RowVersion(T0 + timedelta(seconds=2), False, "v2"))
    assert t.changed(snap, {ROW: RowVersion(T0 + timedelta(seconds=2), False, "v2")}) == []


def test_busy_objects_are_skipped() -> None:
    t = tracker_with_row()
    snap = t.snapshot(SERVING)
    assert t.changed(snap, {ROW: RowVersion(T0, False, "v1")}, busy={"u1"}) == []


def test_a_pass_without_a_row_keeps_the_row_it_knew() -> None:
    t = tracker_with_row()
    t.remember(ident("u1", "a"), None, None)  # e.g. stopped at a missing Secret
    assert t.objects["u1"].row_id == ROW
    assert t.objects["u1"].version == V0
    t.forget("u1")
    assert t.snapshot(SERVING).rows == {}


def test_only_objects_whose_daemon_runs_are_checked() -> None:
    """A replica paused by peering has no daemons: a check there looks at no row."""
    t = tracker_with_row()
    assert t.snapshot(set()).rows == {}
    assert list(t.snapshot({"u1"}).rows) == ["u1"]
