"""The rule that retires a rotated gateway key, as a pure function with the clock injected.

Coder's gateway reads its key file once, at start: the previous key may go only after
``gracePeriod`` (the earliest), and then only once it is no longer used (no heartbeat for
1.5 heartbeat periods) and the new key has been seen in use, or nobody used the previous key
since the rotation. The annotation ``aigateway.dev/force-retire`` overrides everything.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aigateway_operator.controllers.gatewaykey.rotation import Retirement, age_text, retirement

pytestmark = pytest.mark.unit

ROTATED = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
ISSUED = ROTATED  # the new key's created_at: the rotation inserted it
GRACE = timedelta(minutes=10)
PERIOD = timedelta(seconds=60)
AFTER_GRACE = ROTATED + GRACE


def at(
    now: datetime, *, old: datetime | None, new: datetime | None, forced: bool = False
) -> Retirement:
    return retirement(
        now=now,
        rotated_at=ROTATED,
        grace=GRACE,
        heartbeat_period=PERIOD,
        previous_heartbeat=old,
        current_created_at=ISSUED,
        current_heartbeat=new,
        forced=forced,
    )


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def test_never_before_the_grace_period_even_when_everything_switched() -> None:
    verdict = at(AFTER_GRACE - s(1), old=ROTATED - s(30), new=AFTER_GRACE - s(5))
    assert not verdict.retire
    assert not verdict.waiting
    assert verdict.recheck_at == AFTER_GRACE
    assert "gracePeriod" in verdict.why
    assert at(AFTER_GRACE, old=ROTATED - s(30), new=AFTER_GRACE - s(5)).retire


def test_an_old_key_in_use_stays_past_the_grace_period_for_as_long_as_it_is_used() -> None:
    for late in (s(0), timedelta(hours=1), timedelta(days=3)):
        now = AFTER_GRACE + late
        verdict = at(now, old=now - s(20), new=None)
        assert not verdict.retire, late
        assert verdict.waiting
        assert verdict.why == (
            "previous key last used 20s ago; waiting for the new key to be used and the "
            "previous key to be unused for 90s"
        )
        # It can change by itself when the last heartbeat grows old enough.
        assert verdict.recheck_at == now - s(20) + s(90)


def test_the_new_key_in_use_is_not_enough_while_the_old_one_still_beats() -> None:
    now = AFTER_GRACE + s(300)
    verdict = at(now, old=now - s(59), new=now - s(2))
    assert not verdict.retire
    assert verdict.waiting
    assert verdict.why.startswith("previous key last used 59s ago; the new key is in use")


def test_one_late_heartbeat_is_not_mistaken_for_a_gateway_gone() -> None:
    """1.5 periods: a beat a few seconds late still counts as in use."""
    now = AFTER_GRACE + s(300)
    assert not at(now, old=now - s(75), new=now - s(1)).retire
    assert not at(now, old=now - s(90), new=now - s(1)).retire
    assert at(now, old=now - s(91), new=now - s(1)).retire


def test_retired_once_the_new_key_is_used_and_the_old_one_stopped() -> None:
    now = AFTER_GRACE + s(300)
    verdict = at(now, old=now - s(120), new=now - s(10))
    assert verdict.retire
    assert "a gateway uses the new key" in verdict.why
    assert "last used 2m ago" in verdict.why


def test_an_old_key_that_stopped_waits_for_the_new_key_to_be_seen() -> None:
    """Used after the rotation, then silent: the gateway may be restarting; the new key
    must show up before the old row goes."""
    now = AFTER_GRACE + timedelta(hours=2)
    used_after_rotation = ROTATED + s(30)
    verdict = at(now, old=used_after_rotation, new=None)
    assert not verdict.retire
    assert verdict.waiting
    assert verdict.why == "previous key last used 2h ago; waiting for the new key to be used"
    assert verdict.recheck_at is None  # only a heartbeat changes this
    # A heartbeat of the new key from before it was issued cannot exist; one after it counts.
    assert at(now, old=used_after_rotation, new=ISSUED).retire


def test_nobody_used_the_old_key_since_the_rotation_so_the_grace_period_is_enough() -> None:
    assert at(AFTER_GRACE, old=None, new=None).retire
    long_before = ROTATED - timedelta(days=1)
    verdict = at(AFTER_GRACE, old=long_before, new=None)
    assert verdict.retire
    assert "no gateway used it since the rotation" in verdict.why
    # A beat within 1.5 periods before the rotation means a gateway was connected then.
    assert not at(AFTER_GRACE, old=ROTATED - s(80), new=None).retire


def test_force_retires_at_once_whatever_the_heartbeats_say() -> None:
    verdict = at(ROTATED + s(1), old=ROTATED + s(1), new=None, forced=True)
    assert verdict.retire
    assert "aigateway.dev/force-retire" in verdict.why


def test_the_heartbeat_period_is_a_parameter() -> None:
    now = AFTER_GRACE + s(60)
    fast = retirement(
        now=now,
        rotated_at=ROTATED,
        grace=GRACE,
        heartbeat_period=s(2),
        previous_heartbeat=now - s(4),
        current_created_at=ISSUED,
        current_heartbeat=now - s(1),
    )
    assert fast.retire
    assert not at(now, old=now - s(4), new=now - s(1)).retire


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (20, "20s"), (119, "119s"), (120, "2m"), (7199, "119m"), (7200, "2h"),
     (172_800, "2d"), (-5, "0s")],
)  # fmt: skip
def test_age_text(seconds: int, text: str) -> None:
    assert age_text(s(seconds)) == text
