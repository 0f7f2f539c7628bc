"""``AIGW_LOG_FORMAT=json``: every line the operator prints is one JSON object, lines about
one object carry it as a field, and no value from a Secret appears."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from aigateway_operator.api.common import ConditionStatus, Reason
from tests.support.operator import (
    GROUP,
    VERSION,
    OperatorProcess,
    custom,
    make_secret,
    wait_condition,
)

pytestmark = pytest.mark.e2e

CANARY = "sk-json-log-CANARY-0123456789abcdef"
REASONS = {r.value for r in Reason}
STATUSES = {s.value for s in ConditionStatus}


def test_json_logs_are_one_object_a_line_with_the_object_as_a_field(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    op = operator_factory(extra_env={"AIGW_LOG_FORMAT": "json"})
    make_secret(k8s_api, namespace, "keys", {"k": CANARY})
    custom(k8s_api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "aiproviders",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AIProvider", "metadata": {"name": "js"},
         "spec": {"type": "openai", "apiKeys": [{"secretKeyRef": {"name": "keys", "key": "k"}}]}},
    )  # fmt: skip
    wait_condition(k8s_api, namespace, "aiproviders", "js", "Ready")
    op.stop()
    lines = [line for line in op.log().splitlines() if line.strip()]
    records: list[dict[str, Any]] = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line[:200]!r}")
    assert records, "the operator logged something"
    about = [r for r in records if (r.get("object") or {}).get("name") == "js"]
    passes = [r for r in about if "AIProvider pass done" in r.get("message", "")]
    assert passes, "the pass line names its object as a field"
    assert passes[0]["object"]["namespace"] == namespace
    assert passes[0]["object"]["kind"] == "AIProvider"
    # The pass's outcome is a field too; the last pass left the object Ready.
    assert all(p["reason"] in REASONS and p["ready"] in STATUSES for p in passes)
    assert (passes[-1]["ready"], passes[-1]["reason"]) == ("True", "Ready")
    assert CANARY not in op.log()
    assert CANARY[:4] + "..." not in op.log()
