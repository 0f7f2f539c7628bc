"""``kube.metadata_watch.SecretMetadataWatch`` against the real API server: metadata only (a
Secret's data never reaches the operator through the watch), every change delivered, and a
relisting (what follows a dropped watch) reports what moved meanwhile instead of hiding it
among the listing items."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from kubernetes import client

from aigateway_operator.kube.metadata_watch import SecretMetadataWatch
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration

CANARY = "sk-informer-CANARY-0123456789"


def _secret(api: client.ApiClient, namespace: str, name: str) -> None:
    client.CoreV1Api(api).create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=name, labels={"app": "x"}),
            data={"a": base64.b64encode(CANARY.encode()).decode()},
        ),
    )


def _edit(api: client.ApiClient, namespace: str, name: str) -> None:
    client.CoreV1Api(api).patch_namespaced_secret(
        name, namespace, {"stringData": {"a": CANARY + "-2"}}
    )


class Collected:
    def __init__(self) -> None:
        self.events: list[tuple[str | None, dict[str, Any]]] = []

    def __call__(self, type_: str | None, body: dict[str, Any]) -> None:
        self.events.append((type_, body))

    def of(self, name: str) -> list[str | None]:
        return [t for t, b in self.events if b["metadata"]["name"] == name]


def test_secret_watch_is_metadata_only_and_sees_every_change(
    k8s_api: client.ApiClient, namespace: str
) -> None:
    _secret(k8s_api, namespace, "before")
    got = Collected()

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        informer = SecretMetadataWatch(k8s_api, namespace, got, loop)
        informer.start()
        try:
            await asyncio.to_thread(
                wait_for, lambda: got.of("before") == [None], 30, "the listing delivered"
            )
            _secret(k8s_api, namespace, "after")
            _edit(k8s_api, namespace, "after")
            client.CoreV1Api(k8s_api).delete_namespaced_secret("after", namespace)
            await asyncio.to_thread(
                wait_for, lambda: "DELETED" in got.of("after"), 30, "the delete delivered"
            )
        finally:
            informer.stop()

    asyncio.run(scenario())
    assert got.of("before") == [None]  # a listing item
    assert got.of("after") == ["ADDED", "MODIFIED", "DELETED"]
    for _, body in got.events:
        assert "data" not in body
        assert "stringData" not in body
        assert body["metadata"]["labels"] == {"app": "x"}
        assert body["metadata"]["resourceVersion"]
    assert CANARY not in json.dumps([b for _, b in got.events])


def test_relisting_reports_what_moved_while_nobody_watched(
    k8s_api: client.ApiClient, namespace: str
) -> None:
    for name in ("same", "edited", "deleted"):
        _secret(k8s_api, namespace, name)
    got = Collected()

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        informer = SecretMetadataWatch(k8s_api, namespace, got, loop)
        # Two listings with changes in between, as after a watch that dropped: the thread's
        # list step, called directly (the watch in between is what the other test covers).
        # The deliveries are queued on the loop before the thread's completion is, so they
        # have all run when the await returns.
        await asyncio.to_thread(informer._list)
        first = list(got.events)
        got.events.clear()
        _edit(k8s_api, namespace, "edited")
        client.CoreV1Api(k8s_api).delete_namespaced_secret("deleted", namespace)
        _secret(k8s_api, namespace, "new")
        await asyncio.to_thread(informer._list)
        assert sorted((t or "", b["metadata"]["name"]) for t, b in first) == [
            ("", "deleted"),
            ("", "edited"),
            ("", "same"),
        ]

    asyncio.run(scenario())
    assert got.of("same") == [None]
    assert got.of("edited") == ["MODIFIED"]
    assert got.of("new") == ["ADDED"]
    assert got.of("deleted") == ["DELETED"]
