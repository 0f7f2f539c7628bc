"""Postgres down: objects wait with a condition, deletes are never lost, all converges."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kubernetes import client

from tests.support.operator import (
    GROUP,
    VERSION,
    OperatorProcess,
    custom,
    make_secret,
    wait_condition,
)
from tests.support.providers import PLURAL, apply_provider, openai_spec, provider_rows
from tests.support.wait import wait_for
from tools.devenv.postgres import PostgresServer

pytestmark = pytest.mark.e2e


def test_database_outage_holds_deletes_and_recovers(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
    postgres: PostgresServer,
) -> None:
    op = operator_factory()
    make_secret(k8s_api, namespace, "llm-keys", {"a": "sk-outage-0123456789abcdef"})
    apply_provider(k8s_api, namespace, "before", openai_spec("a"))
    wait_condition(k8s_api, namespace, PLURAL, "before", "Ready")

    postgres.stop(mode="immediate", remove=False)
    try:
        custom(k8s_api).delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "before")
        apply_provider(k8s_api, namespace, "during", openai_spec("a"))
        wait_condition(
            k8s_api, namespace, PLURAL, "during", "Synced", "False", "DatabaseUnavailable"
        )
        # The deleted object waits for the database: its finalizer is not dropped.
        obj = custom(k8s_api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "before"
        )
        assert obj["metadata"].get("deletionTimestamp")
        assert "aigateway.dev/finalizer" in obj["metadata"]["finalizers"]
    finally:
        postgres.start_again()

    wait_condition(k8s_api, namespace, PLURAL, "during", "Ready", timeout=90)

    def before_deleted() -> bool:
        rows = provider_rows(op, "before")
        return len(rows) == 1 and rows[0][3] is True

    wait_for(before_deleted, 90, "the held delete to reach the database")
    assert len([r for r in provider_rows(op, "during") if not r[3]]) == 1
