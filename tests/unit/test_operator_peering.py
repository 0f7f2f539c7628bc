"""The kopf peering priority a replica takes when ``AIGW_PEERING_PRIORITY`` is unset.

kopf's peering is not a lease: a replica that sees itself highest resumes at once, and the
active one pauses only once it sees the newcomer. So a new replica (an upgrade's, a restarted
pod's) must rank below the one already running, and two replicas must never tie (equal
priorities pause every replica). The node test (``tests/e2e/test_node_chart.py``) shows the
rolls themselves; this pins the rule.
"""

from __future__ import annotations

import pytest

from aigateway_operator.config import Settings
from aigateway_operator.operator import _peering, seniority_priority

pytestmark = pytest.mark.unit

STARTED = 1_796_000_000.0  # 2026-11-30, seconds since the epoch


def test_a_replica_started_later_ranks_below_one_started_earlier() -> None:
    # Even one millisecond later, whatever the random low bits drew.
    for _ in range(200):
        assert seniority_priority(STARTED + 0.001) < seniority_priority(STARTED)
    assert seniority_priority(STARTED + 3600) < seniority_priority(STARTED)


def test_replicas_started_in_the_same_millisecond_do_not_tie_but_by_rare_chance() -> None:
    drawn = [seniority_priority(STARTED) for _ in range(200)]
    # 10 random bits: 200 draws give ~18 collisions at most in expectation; most differ.
    assert len(set(drawn)) > 150
    assert max(drawn) - min(drawn) < 2**10


def test_the_priority_is_exact_for_every_json_reader_until_2109() -> None:
    assert 0 < seniority_priority(4_398_046_511.0) < 2**53  # 2109-05-15
    assert seniority_priority(0.0) < 2**53


def test_unset_priority_is_by_seniority_and_a_set_one_is_kept() -> None:
    base = {"database_url": "postgresql://u:p@localhost/coder", "peering": "aigw"}
    unset = _peering(Settings(**base))  # type: ignore[arg-type]
    assert unset["priority"] > 2**31  # not the old random draw below 2**31
    kept = _peering(Settings(**base, peering_priority=7))  # type: ignore[arg-type]
    assert kept["priority"] == 7
    assert _peering(Settings(database_url=base["database_url"])) == {"standalone": True}  # type: ignore[call-arg]
