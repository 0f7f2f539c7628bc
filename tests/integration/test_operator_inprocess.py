"""The operator in-process (kopf's ``operator()`` on a thread of the test process, with our
registry, the committed CRDs on the real API server, a real Postgres 15 database), as an
envtest-style controller test: the kopf handlers receive the watch events, the daemons run
the passes, the delete handler releases the rows; and kopf writes nothing to our objects but
the finalizer (no diff-base, no progress annotations).

The same operator as a separate process, with crashes and faults, is tests/e2e and
tests/faults; this test is the quick proof that the kopf layer is wired right.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kubernetes import client

from aigateway_operator import metrics
from aigateway_operator.api.identity import AIPROVIDER, FINALIZER
from aigateway_operator.config import Settings
from tests.support.inprocess import InProcess, inprocess_settings, running
from tests.support.operator import condition, get_obj, make_secret, wait_condition
from tests.support.providers import SHARED
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration

KEY = "sk-inprocess-AAAAAAAAAAAAAAAA-0001"
KEY_2 = "sk-inprocess-BBBBBBBBBBBBBBBB-0002"
PLURAL = AIPROVIDER.plural


@pytest.fixture
def settings(
    kubeconfig: Path, postgres: Any, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    return inprocess_settings(kubeconfig, postgres, namespace, monkeypatch)


@pytest.fixture
def operator(settings: Settings) -> Iterator[InProcess]:
    with running(settings) as op:
        yield op


def rows(settings: Settings) -> list[tuple[Any, ...]]:
    dsn = settings.require_database_url()
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(
            "SELECT p.name, p.deleted, count(k.id), p.xmin::text FROM ai_providers p "
            "LEFT JOIN ai_provider_keys k ON k.provider_id = p.id GROUP BY p.id ORDER BY p.name"
        ).fetchall()


def apply(api: client.ApiClient, namespace: str, name: str, keys: list[str]) -> None:
    body = {
        "apiVersion": AIPROVIDER.api_version,
        "kind": AIPROVIDER.kind,
        "metadata": {"name": name},
        "spec": {
            "type": "openai",
            "apiKeys": [{"secretKeyRef": {"name": "llm", "key": k}} for k in keys],
        },
    }
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        AIPROVIDER.group, AIPROVIDER.version, namespace, PLURAL, body
    )


def test_kopf_handlers_run_the_whole_life_of_a_provider(
    operator: InProcess, settings: Settings, k8s_api: client.ApiClient, namespace: str
) -> None:
    make_secret(k8s_api, namespace, "llm", {"a": KEY, "b": KEY_2})
    apply(k8s_api, namespace, "inproc", ["a"])
    obj = wait_condition(k8s_api, namespace, PLURAL, "inproc", "Ready", timeout=60)
    assert obj["metadata"]["finalizers"] == [FINALIZER]
    annotations = obj["metadata"].get("annotations") or {}
    assert not [k for k in annotations if k.startswith("kopf.")], annotations
    assert rows(settings)[0][:3] == ("inproc", False, 1)

    # A Secret edit reaches the pass in memory (the watch is metadata only).
    client.CoreV1Api(k8s_api).patch_namespaced_secret(
        "llm", namespace, {"stringData": {"a": KEY_2 + "-x"}}
    )
    wait_for(
        lambda: (
            get_obj(k8s_api, namespace, PLURAL, "inproc")["status"]["apiKeys"][0]["masked"]
            == "sk-i...02-x"
        ),
        60,
        "the new key value in status",
    )
    # The delete handler soft-deletes the row, then kopf releases the finalizer.
    client.CustomObjectsApi(k8s_api).delete_namespaced_custom_object(
        AIPROVIDER.group, AIPROVIDER.version, namespace, PLURAL, "inproc"
    )
    wait_for(lambda: rows(settings)[0][1] is True, 60, "the row soft-deleted")

    def gone() -> bool:
        try:
            get_obj(k8s_api, namespace, PLURAL, "inproc")
        except client.ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, 60, "the object released by its finalizer")
    assert rows(settings)[0][2] == 0  # its key rows went with it


def unchanged_passes() -> float:
    """Passes that found their object in sync, in this process (the operator runs here)."""
    return float(metrics.RECONCILES.labels("AIProvider", "unchanged")._value.get())  # type: ignore[attr-defined]


def test_a_restart_in_sync_writes_nothing(
    operator: InProcess, settings: Settings, k8s_api: client.ApiClient, namespace: str
) -> None:
    names = ("quiet-a", "quiet-b")
    make_secret(k8s_api, namespace, "llm", {"a": KEY})
    for name in names:
        apply(k8s_api, namespace, name, ["a"])
    for name in names:
        wait_condition(k8s_api, namespace, PLURAL, name, "Ready", timeout=60)

    def settled() -> bool:  # both on api.openai.com: the first one is woken when the second is
        return all(
            SHARED in (condition(get_obj(k8s_api, namespace, PLURAL, n), "Synced") or {})["message"]
            for n in names
        )

    wait_for(settled, 30, "both providers told that they share their hostname")
    assert operator.stop() == 0

    def versions() -> dict[str, str]:
        return {
            n: get_obj(k8s_api, namespace, PLURAL, n)["metadata"]["resourceVersion"] for n in names
        }

    before, db_before, seen = versions(), rows(settings), unchanged_passes()
    again = InProcess(settings).start()
    try:
        # Proof that the restarted operator looked at both objects: two passes in sync.
        wait_for(lambda: unchanged_passes() >= seen + 2, 60, "a pass over each object")
    finally:
        assert again.stop() == 0
    assert versions() == before
    assert rows(settings) == db_before
