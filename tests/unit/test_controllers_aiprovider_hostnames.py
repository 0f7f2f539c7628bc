"""Which AIProviders are woken when their base-URL hostname gains or loses its only peer.

What each object's last pass found is on its record (``ProviderPart``); the watch only
reads and updates the parts."""

from __future__ import annotations

import pytest

from aigateway_operator.controllers.aiprovider.hostnames import HostnameCheck, HostnameWatch
from aigateway_operator.controllers.aiprovider.part import ProviderPart
from aigateway_operator.store import HostnamePeers

pytestmark = pytest.mark.unit

HOST = "api.openai.com"
UIDS = {"a": "uid-a", "b": "uid-b", "c": "uid-c"}


def make() -> tuple[HostnameWatch, dict[str, ProviderPart], list[str]]:
    woken: list[str] = []
    parts = {uid: ProviderPart() for uid in UIDS.values()}
    watch = HostnameWatch(
        claims=lambda n: [UIDS[n]] if n in UIDS else [], wake=woken.extend, part_of=parts.get
    )
    return watch, parts, woken


def check(name: str, *peers: str) -> HostnameCheck:
    return HostnameCheck(name, HostnamePeers(HOST, tuple(peers), len(peers)))


def test_a_second_provider_wakes_the_one_that_was_alone_and_nobody_else() -> None:
    watch, parts, woken = make()
    watch.seen(parts["uid-a"], check("a"))
    assert woken == []
    watch.seen(parts["uid-b"], check("b", "a"))
    assert woken == ["uid-a"]  # a's status still says it is alone
    watch.seen(parts["uid-a"], check("a", "b"))
    assert woken == ["uid-a"], "b already knows: no ping-pong"
    watch.seen(parts["uid-c"], check("c", "a", "b"))
    assert woken == ["uid-a"], "nobody was alone: a third provider wakes nobody"


def test_losing_the_only_peer_wakes_it_whether_deleted_or_disabled() -> None:
    watch, parts, woken = make()
    watch.seen(parts["uid-a"], check("a", "b"))
    watch.seen(parts["uid-b"], check("b", "a"))
    watch.gone(parts["uid-b"])
    assert woken == ["uid-a"]
    watch.seen(parts["uid-a"], check("a"))
    watch.seen(parts["uid-b"], check("b", "a"))
    woken.clear()
    watch.seen(parts["uid-b"], HostnameCheck("b", None))  # b disabled: not served any more
    assert woken == ["uid-a"]


def test_a_host_with_several_peers_left_by_one_wakes_nobody() -> None:
    watch, parts, woken = make()
    watch.seen(parts["uid-a"], check("a", "b", "c"))
    watch.gone(parts["uid-a"])
    watch.seen(parts["uid-b"], check("b", "c"))
    assert woken == []


def test_a_pass_that_could_not_check_changes_nothing() -> None:
    watch, parts, woken = make()
    watch.seen(parts["uid-a"], check("a", "b"))
    watch.seen(parts["uid-a"], None)
    watch.gone(parts["uid-a"])
    assert woken == ["uid-b"]


def test_a_forgotten_object_is_not_woken_as_alone() -> None:
    """An object whose record is gone (``part_of`` finds nothing) is never counted alone."""
    watch, parts, woken = make()
    watch.seen(parts["uid-a"], check("a"))
    del parts["uid-a"]
    watch.seen(parts["uid-b"], check("b", "a"))
    assert woken == []
