"""The grace period of a rotated gateway key is never shortened by the rounding to whole
seconds that status timestamps need (found by tests/e2e/test_gatewaykey.py's grace test)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from aigateway_operator.controllers.gatewaykey.state import KeyState
from aigateway_operator.store import GatewayKeyInfo, GatewayKeyOwnership

pytestmark = pytest.mark.unit

GRACE = timedelta(seconds=5)


def state(since: datetime) -> KeyState:
    old = GatewayKeyInfo(uuid.uuid4(), "gw-retiring-1", "cgw_abcdefg", since, None)
    own = GatewayKeyOwnership(previous=old, previous_since=since)
    return KeyState(own, 1, None, GRACE)


@pytest.mark.parametrize("micro", [0, 1, 852_919, 999_999])
def test_retire_after_is_whole_seconds_and_never_before_the_grace_ends(micro: int) -> None:
    since = datetime(2026, 3, 1, 12, 0, 40, micro, tzinfo=UTC)
    after = state(since).retire_after
    assert after is not None
    assert after.microsecond == 0
    assert after >= since + GRACE
    assert after - (since + GRACE) < timedelta(seconds=1)
