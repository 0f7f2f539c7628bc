"""The peering gate applies kopf's rule: paused while another live peer has priority >= ours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aigateway_operator.handlers.peering import paused_by

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def peer(priority: int, seen_ago_s: float, lifetime: int = 60) -> dict[str, object]:
    return {
        "priority": priority,
        "lifetime": lifetime,
        "lastseen": (NOW - timedelta(seconds=seen_ago_s)).isoformat(),
    }


def test_alone_or_highest_is_active() -> None:
    assert paused_by(None, "me", 10, NOW) == []
    assert paused_by({"me": peer(10, 0)}, "me", 10, NOW) == []
    assert paused_by({"me": peer(10, 0), "other": peer(5, 0)}, "me", 10, NOW) == []


def test_a_live_higher_or_equal_peer_pauses() -> None:
    status = {"me": peer(10, 0), "hi": peer(20, 5), "same": peer(10, 5)}
    assert paused_by(status, "me", 10, NOW) == ["hi", "same"]


def test_a_dead_peer_does_not_pause() -> None:
    status = {"hi": peer(20, 61, lifetime=60)}
    assert paused_by(status, "me", 10, NOW) == []
    assert paused_by({"hi": peer(20, 59, lifetime=60)}, "me", 10, NOW) == ["hi"]


def test_garbage_entries_are_ignored() -> None:
    status = {"x": "not a mapping", "y": {"priority": "high", "lastseen": "?"}}
    assert paused_by(status, "me", 10, NOW) == []


async def test_the_gate_starts_closed_and_follows_the_peering_object() -> None:
    from aigateway_operator.handlers.peering import PeeringGate

    gate = PeeringGate("default", ["a", "b"], "me", 10, lifetime_s=60)
    now = datetime.now(UTC)
    live_higher = {
        "hi": {"priority": 20, "lifetime": 60, "lastseen": now.isoformat()},
    }
    assert not gate.is_open, "closed until the peering objects have been seen"
    gate.listed("a")
    assert not gate.is_open, "one of two namespaces seen"
    gate.listed("b")
    assert gate.is_open
    gate.observe("a", "MODIFIED", {"metadata": {"name": "default"}, "status": live_higher})
    assert not gate.is_open
    gate.observe("a", "MODIFIED", {"metadata": {"name": "other"}, "status": {}})
    assert not gate.is_open, "another peering object's peers do not count"
    expired = {"hi": {**live_higher["hi"], "lastseen": (now - timedelta(seconds=61)).isoformat()}}
    gate.observe("a", "MODIFIED", {"metadata": {"name": "default"}, "status": expired})
    assert gate.is_open, "a peer whose heartbeat expired no longer blocks"
