"""What a Secret watch event wakes: the AIProviders that reference it, the gateway key that
owns it (unless the event is the echo of our own write), nothing for listing items."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from aigateway_operator.api.identity import GATEWAY_KEY_OWNER_LABEL
from aigateway_operator.config import Settings
from aigateway_operator.controllers.aiprovider import AIProviderController
from aigateway_operator.controllers.gatewaykey import GatewayKeyController
from aigateway_operator.controllers.gatewaykey.controller import remember_written
from aigateway_operator.operator.app import OperatorApp

pytestmark = pytest.mark.unit


class Recorder:
    """Stands in for a runner's ``poke``: records what is woken."""

    def __init__(self) -> None:
        self.poked: list[str] = []

    def poke(self, uids: Any) -> int:
        woken = list(uids)
        self.poked += woken
        return len(woken)


def settings() -> Settings:
    return Settings(database_url="postgresql://u:p@localhost/coder")  # type: ignore[call-arg]


def controllers() -> tuple[AIProviderController, GatewayKeyController]:
    wiring: Any = SimpleNamespace(settings=settings())
    providers = AIProviderController(wiring, asyncio.Semaphore(1))
    ref = {"type": "openai", "apiKeys": [{"secretKeyRef": {"name": "keys", "key": "a"}}]}
    for uid, ns, name in (("p1", "ns", "one"), ("p2", "ns", "two"), ("p3", "other", "three")):
        meta = {"uid": uid, "namespace": ns, "name": name, "creationTimestamp": uid}
        providers.runner.observe(None, {"metadata": meta, "spec": ref})
    keys = GatewayKeyController(wiring, asyncio.Semaphore(1))
    meta = {"uid": "k1", "namespace": "ns", "name": "gw", "creationTimestamp": "k1"}
    keys.runner.observe(None, {"metadata": meta, "spec": {}})
    for controller in (providers, keys):
        controller.runner.poke = Recorder().poke  # type: ignore[method-assign]
    return providers, keys


def owned(rv: str = "5") -> dict[str, Any]:
    return {
        "namespace": "ns",
        "name": "gw-key",
        "resourceVersion": rv,
        "labels": {GATEWAY_KEY_OWNER_LABEL: "gw"},
        "ownerReferences": [
            {"apiVersion": "aigateway.dev/v1alpha1", "kind": "AIGatewayCoderdKey", "uid": "k1"}
        ],
    }


def poked(controller: AIProviderController | GatewayKeyController) -> list[str]:
    recorder: Recorder = controller.runner.poke.__self__  # type: ignore[attr-defined]
    return recorder.poked


@pytest.mark.parametrize("type_", ["ADDED", "MODIFIED", "DELETED"])
def test_a_referenced_secret_wakes_its_providers_in_its_namespace(type_: str) -> None:
    providers, _ = controllers()
    providers.secret_changed(type_, {"namespace": "ns", "name": "keys"})
    assert poked(providers) == ["p1", "p2"]


def test_listing_items_and_unreferenced_secrets_wake_nothing() -> None:
    providers, keys = controllers()
    providers.secret_changed(None, {"namespace": "ns", "name": "keys"})
    providers.secret_changed("MODIFIED", {"namespace": "ns", "name": "unrelated"})
    keys.secret_changed(None, owned())
    assert poked(providers) == []
    assert poked(keys) == []


def test_an_owned_secret_wakes_its_key_unless_it_is_our_own_write() -> None:
    _, keys = controllers()
    remember_written(keys.runner.records["k1"].part, "ns", [("ns", "gw-key", "5")])
    keys.secret_changed("MODIFIED", owned("5"))  # the echo of our write
    assert poked(keys) == []
    keys.secret_changed("MODIFIED", owned("6"))  # someone else edited it
    keys.secret_changed("DELETED", owned("5"))  # deleted: always a pass
    assert poked(keys) == ["k1", "k1"]


def test_only_secrets_with_our_label_and_owner_count() -> None:
    _, keys = controllers()
    unlabelled = {**owned(), "labels": {}}
    foreign_owner = {**owned(), "ownerReferences": [{"kind": "Deployment", "uid": "d"}]}
    keys.secret_changed("MODIFIED", unlabelled)
    keys.secret_changed("MODIFIED", foreign_owner)
    assert poked(keys) == []


def test_the_watch_callback_feeds_both_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    providers, keys = controllers()
    app = OperatorApp.__new__(OperatorApp)
    app._providers, app._gateway_keys = providers, keys
    app.secret_event("MODIFIED", {"metadata": {"namespace": "ns", "name": "keys"}})
    app.secret_event("DELETED", {"metadata": owned()})
    assert poked(providers) == ["p1", "p2"]
    assert poked(keys) == ["k1"]
