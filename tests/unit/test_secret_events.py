"""What a Secret watch event queues: the AIProviders that reference it, the gateway key that
owns it (unless the event is the echo of our own write), nothing for listing items."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from aigateway_operator.handlers import aiprovider, gatewaykey
from aigateway_operator.handlers.lifecycle import _secret_events
from aigateway_operator.reconcile.gatewaykey import OWNER_LABEL
from aigateway_operator.reconcile.index import ProviderIndex

pytestmark = pytest.mark.unit


class Queue:
    def __init__(self) -> None:
        self.poked: list[str] = []

    def poke(self, uids: Any) -> None:
        self.poked += list(uids)


def memo() -> SimpleNamespace:
    index = ProviderIndex()
    ref = {"type": "openai", "apiKeys": [{"secretKeyRef": {"name": "keys", "key": "a"}}]}
    index.update("p1", "ns", "one", ref, {"creationTimestamp": "t1"})
    index.update("p2", "ns", "two", ref, {"creationTimestamp": "t2"})
    index.update("p3", "other", "three", ref, {"creationTimestamp": "t3"})
    return SimpleNamespace(
        index=index, providers=Queue(), gateway_keys=Queue(), gateway_key_secrets={}
    )


def owned(rv: str = "5") -> dict[str, Any]:
    return {
        "namespace": "ns",
        "name": "gw-key",
        "resourceVersion": rv,
        "labels": {OWNER_LABEL: "gw"},
        "ownerReferences": [
            {"apiVersion": "aigateway.dev/v1alpha1", "kind": "AIGatewayCoderdKey", "uid": "k1"}
        ],
    }


@pytest.mark.parametrize("type_", ["ADDED", "MODIFIED", "DELETED"])
def test_a_referenced_secret_queues_its_providers_in_its_namespace(type_: str) -> None:
    m = memo()
    aiprovider.secret_event(m, type_, {"namespace": "ns", "name": "keys"})
    assert m.providers.poked == ["p1", "p2"]


def test_listing_items_and_unreferenced_secrets_queue_nothing() -> None:
    m = memo()
    aiprovider.secret_event(m, None, {"namespace": "ns", "name": "keys"})
    aiprovider.secret_event(m, "MODIFIED", {"namespace": "ns", "name": "unrelated"})
    gatewaykey.secret_event(m, None, owned())
    assert m.providers.poked == []
    assert m.gateway_keys.poked == []


def test_an_owned_secret_queues_its_key_unless_it_is_our_own_write() -> None:
    m = memo()
    m.gateway_key_secrets[("ns", "gw-key")] = "5"
    gatewaykey.secret_event(m, "MODIFIED", owned("5"))  # the echo of our write
    assert m.gateway_keys.poked == []
    gatewaykey.secret_event(m, "MODIFIED", owned("6"))  # someone else edited it
    gatewaykey.secret_event(m, "DELETED", owned("5"))  # deleted: always a pass
    assert m.gateway_keys.poked == ["k1", "k1"]


def test_only_secrets_with_our_label_and_owner_count() -> None:
    m = memo()
    unlabelled = {**owned(), "labels": {}}
    foreign_owner = {**owned(), "ownerReferences": [{"kind": "Deployment", "uid": "d"}]}
    gatewaykey.secret_event(m, "MODIFIED", unlabelled)
    gatewaykey.secret_event(m, "MODIFIED", foreign_owner)
    assert m.gateway_keys.poked == []


def test_the_watch_callback_feeds_both_kinds() -> None:
    m = memo()
    deliver = _secret_events(m)
    deliver("MODIFIED", {"metadata": {"namespace": "ns", "name": "keys"}})
    deliver("DELETED", {"metadata": owned()})
    assert m.providers.poked == ["p1", "p2"]
    assert m.gateway_keys.poked == ["k1"]
