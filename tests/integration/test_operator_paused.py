"""A replica paused by kopf peering does no drift work (in-process operator, real API server
and Postgres 15, kopf's own peering CRDs and KopfPeering object).

kopf pauses a replica when a peer of a higher priority heartbeats into the same KopfPeering:
it stops the watch streams and every daemon. The drift watch (``LISTEN
ai_providers_changed``, then one query over the rows of tracked objects) is the one part of
the operator kopf does not run; it must stop too. The test pauses the replica with a peer
entry of a higher priority written into the KopfPeering's status (exactly what a second
replica's heartbeat writes), edits the provider's row in Coder's table and notifies, and
counts the paused replica's row-version queries: none. Removing the peer resumes it, and the
edit is reverted then.
"""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kubernetes import client

from aigateway_operator import metrics
from aigateway_operator.api.identity import AIPROVIDER
from aigateway_operator.config import Settings
from aigateway_operator.store import RowVersion, Store
from tests.support.inprocess import InProcess, inprocess_settings, running
from tests.support.operator import make_secret, wait_condition
from tests.support.paths import repo_root
from tests.support.wait import wait_for
from tools.devenv.crds import apply_crds

pytestmark = pytest.mark.integration

KEY = "sk-paused-AAAAAAAAAAAAAAAAAAAA-0001"
PEERING = "aigw-paused-test"
PEERING_CRDS = repo_root() / "deploy/helm/aigateway-operator/crds/kopf-peering.yaml"
NAME = "drifty"


class QueryCount:
    """Calls of ``Store.provider_row_versions`` (the drift check's one query), any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0

    def wrap(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = Store.provider_row_versions

        async def counted(
            store: Store, row_ids: Sequence[uuid.UUID]
        ) -> dict[uuid.UUID, RowVersion]:
            with self._lock:
                self.calls += 1
            return await original(store, row_ids)

        monkeypatch.setattr(Store, "provider_row_versions", counted)


@pytest.fixture
def peering(kubeconfig: Path, k8s_api: client.ApiClient, namespace: str, tmp_path: Path) -> str:
    """kopf's peering CRDs (the chart's copy) and a KopfPeering in the test's namespace."""
    crds = tmp_path / "peering-crds"
    crds.mkdir()
    shutil.copy(PEERING_CRDS, crds / PEERING_CRDS.name)
    apply_crds(kubeconfig, crds)
    client.CustomObjectsApi(k8s_api).create_namespaced_custom_object(
        "kopf.dev",
        "v1",
        namespace,
        "kopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": PEERING}},
    )
    return PEERING


@pytest.fixture
def settings(
    kubeconfig: Path,
    postgres: Any,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
    peering: str,
) -> Settings:
    return inprocess_settings(
        kubeconfig,
        postgres,
        namespace,
        monkeypatch,
        peering=peering,
        peering_priority=100,
        peering_lifetime_s=60,
    )


@pytest.fixture
def queries(monkeypatch: pytest.MonkeyPatch) -> QueryCount:
    count = QueryCount()
    count.wrap(monkeypatch)
    return count


@pytest.fixture
def operator(settings: Settings, queries: QueryCount) -> Iterator[InProcess]:
    with running(settings) as op:
        yield op


def sql(settings: Settings, statement: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.require_database_url(), autocommit=True) as conn:
        cur = conn.execute(statement, args)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def display_name(settings: Settings) -> str:
    return str(sql(settings, "SELECT display_name FROM ai_providers WHERE name = %s", NAME)[0][0])


def edit_in_coder(settings: Settings, value: str) -> None:
    """What an edit in Coder's UI does: the row changes, then the notify."""
    sql(settings, "UPDATE ai_providers SET display_name = %s WHERE name = %s", value, NAME)
    sql(settings, "SELECT pg_notify('ai_providers_changed', '')")


def listening(settings: Settings) -> int:
    """The operator's LISTEN connections to this test's database."""
    rows = sql(
        settings,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = %s AND query ILIKE 'LISTEN%%'",
        settings.application_name,
    )
    return int(rows[0][0])


def active() -> float:
    return float(metrics.ACTIVE_REPLICA._value.get())  # type: ignore[attr-defined]


def peer(api: client.ApiClient, namespace: str, priority: int | None) -> None:
    """Write (or, with None, remove) a higher-priority peer's heartbeat in the KopfPeering."""
    entry = (
        None
        if priority is None
        else {"priority": priority, "lifetime": 300, "lastseen": datetime.now(UTC).isoformat()}
    )
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        "kopf.dev", "v1", namespace, "kopfpeerings", PEERING, {"status": {"test-peer": entry}}
    )


def test_a_paused_replica_queries_no_row_versions(
    operator: InProcess,
    settings: Settings,
    queries: QueryCount,
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    make_secret(k8s_api, namespace, "llm", {"a": KEY})
    client.CustomObjectsApi(k8s_api).create_namespaced_custom_object(
        AIPROVIDER.group,
        AIPROVIDER.version,
        namespace,
        AIPROVIDER.plural,
        {
            "apiVersion": AIPROVIDER.api_version,
            "kind": AIPROVIDER.kind,
            "metadata": {"name": NAME},
            "spec": {
                "type": "openai",
                "displayName": "Drifty",
                "apiKeys": [{"secretKeyRef": {"name": "llm", "key": "a"}}],
            },
        },
    )
    wait_condition(k8s_api, namespace, AIPROVIDER.plural, NAME, "Ready", timeout=60)
    assert active() == 1

    # Active: an edit in Coder is noticed (one query over the tracked rows) and reverted.
    wait_for(lambda: listening(settings) == 1, 30, "the active replica's LISTEN")
    edit_in_coder(settings, "edited while active")
    wait_for(lambda: display_name(settings) == "Drifty", 30, "the edit reverted")
    assert queries.calls >= 1

    # Paused: kopf stops the daemons; the drift watch closes its LISTEN with them.
    peer(k8s_api, namespace, priority=1000)
    wait_for(lambda: active() == 0, 60, "the replica paused by peering")
    wait_for(lambda: listening(settings) == 0, 30, "the paused replica's LISTEN closed")
    before = queries.calls
    for i in range(3):
        edit_in_coder(settings, f"edited while paused {i}")
    assert display_name(settings) == "edited while paused 2"

    # Resumed: the daemons run again; the first pass sees the edit and reverts it.
    paused_queries = queries.calls - before
    peer(k8s_api, namespace, priority=None)
    wait_for(lambda: active() == 1, 60, "the replica resumed")
    wait_for(lambda: display_name(settings) == "Drifty", 60, "the edit reverted after resuming")
    wait_for(lambda: listening(settings) == 1, 30, "the LISTEN back")
    assert paused_queries == 0
