"""The harness's waits can fail: a broken invariant inside a wait fails it, not "not yet"."""

from __future__ import annotations

import pytest

from tests.support.wait import wait_for

pytestmark = pytest.mark.unit


def test_an_assertion_inside_a_wait_fails_it_at_once() -> None:
    seen = []

    def check() -> bool:
        seen.append(1)
        if len(seen) == 1:
            raise AssertionError("invariant broken")
        return True  # it would recover on the next poll

    with pytest.raises(AssertionError, match="invariant broken"):
        wait_for(check, 5)
    assert seen == [1]


def test_a_wait_fails_at_its_deadline() -> None:
    with pytest.raises(AssertionError, match=r"timed out after 0\.1s waiting for nothing"):
        wait_for(lambda: False, 0.1, "nothing")
