"""The AIGatewayCoderdKey CRD on a real kube-apiserver: rejections, defaults, immutability.

Every rejection must be a 422 whose message names the offending field: that text is all a
user sees from ``kubectl apply``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client

from aigateway_operator.api import Condition, ConditionStatus
from aigateway_operator.api.common import DNS_SUBDOMAIN_PATTERN
from aigateway_operator.api.gatewaykey import (
    KEY_NAME_PATTERN,
    RULE_MESSAGES,
    GatewayKeySpec,
    GatewayKeyStatus,
    RotationStatus,
)
from aigateway_operator.api.identity import AIGATEWAYCODERDKEY
from tests.support.crd import Objects, rejected

pytestmark = pytest.mark.integration


@pytest.fixture
def keys(k8s_api: client.ApiClient, namespace: str) -> Objects:
    return Objects(k8s_api, namespace, AIGATEWAYCODERDKEY.plural, AIGATEWAYCODERDKEY.kind, "k")


def test_server_defaults_and_model_agree(keys: Objects) -> None:
    created = keys.create(None, name="gw-a")
    assert created["spec"] == {
        "rotation": {"generation": 0, "gracePeriod": "1h"},
        "deletionPolicy": "Delete",
    }
    spec = GatewayKeySpec.from_body(created["spec"])
    assert spec == GatewayKeySpec()
    assert spec.effective_key_name("gw-a") == "gw-a"
    assert spec.effective_secret_name("gw-a") == "gw-a-key"


INVALID: list[tuple[str, str, dict[str, Any], list[str]]] = [
    (
        "key-name-pattern",
        "k",
        {"keyName": "Bad_Name"},
        [f"spec.keyName in body should match '{KEY_NAME_PATTERN}'"],
    ),
    (
        "key-name-double-dash",
        "k",
        {"keyName": "a--b"},
        [f"spec.keyName in body should match '{KEY_NAME_PATTERN}'"],
    ),
    (
        "key-name-too-long",
        "k",
        {"keyName": "a" * 65},
        ["spec.keyName: Too long: may not be more than 64 bytes"],
    ),
    ("metadata-name", "has.dots", {}, [RULE_MESSAGES["metadata_name"]]),
    (
        "secret-name",
        "k",
        {"secretName": "Not_A_Name"},
        [f"spec.secretName in body should match '{DNS_SUBDOMAIN_PATTERN}'"],
    ),
    ("every-not-duration", "k", {"rotation": {"every": "monthly"}}, [RULE_MESSAGES["every"]]),
    ("every-too-short", "k", {"rotation": {"every": "30s"}}, [RULE_MESSAGES["every"]]),
    ("grace-bad", "k", {"rotation": {"gracePeriod": "1 hour"}}, [RULE_MESSAGES["grace_period"]]),
    (
        "grace-not-shorter",
        "k",
        {"rotation": {"every": "1h", "gracePeriod": "90m"}},
        [RULE_MESSAGES["grace_shorter"]],
    ),
    (
        "negative-generation",
        "k",
        {"rotation": {"generation": -1}},
        ["spec.rotation.generation in body should be greater than or equal to 0"],
    ),
    ("policy", "k", {"deletionPolicy": "Keep"}, ['spec.deletionPolicy: Unsupported value: "Keep"']),
]


@pytest.mark.parametrize(
    ("name", "spec", "expected"), [pytest.param(n, s, e, id=i) for i, n, s, e in INVALID]
)
def test_invalid_shapes_are_rejected_naming_the_field(
    keys: Objects, name: str, spec: dict[str, Any], expected: list[str]
) -> None:
    message = rejected(lambda: keys.create(spec, name=name))
    for text in expected:
        assert text in message, message
    # The mirror rejects the same spec (metadata rules aside).
    if name == "k":
        with pytest.raises(ValueError, match=r"spec\."):
            GatewayKeySpec.from_body(spec)


def test_valid_spec_is_accepted(keys: Objects) -> None:
    spec = {
        "keyName": "gw-prod",
        "secretName": "gateway.key",
        "rotation": {"generation": 2, "every": "720h", "gracePeriod": "1h30m"},
        "deletionPolicy": "Orphan",
    }
    created = keys.create(spec, name="team.a.gateway")  # not a key name: keyName is set
    assert created["spec"] == spec
    assert GatewayKeySpec.from_body(created["spec"]).rotation.every == "720h"


@pytest.mark.parametrize(
    ("initial", "change", "expected"),
    [
        pytest.param(
            {"keyName": "one"}, {"keyName": "two"}, "spec.keyName is immutable", id="changed"
        ),
        pytest.param(
            {}, {"keyName": "other"}, "spec.keyName cannot be added or removed", id="added"
        ),
        pytest.param(
            {"keyName": "one"}, {"keyName": None}, "spec.keyName cannot be added or removed",
            id="removed",
        ),
        pytest.param(
            {"rotation": {"generation": 3}},
            {"rotation": {"generation": 2}},
            "spec.rotation.generation cannot decrease",
            id="generation-decrease",
        ),
    ],
)  # fmt: skip
def test_transition_rules(
    keys: Objects, initial: dict[str, Any], change: dict[str, Any], expected: str
) -> None:
    keys.create(initial)
    message = rejected(lambda: keys.patch_spec(change))
    assert expected in message, message


def test_mutable_fields_can_change(keys: Objects) -> None:
    keys.create({"keyName": "gw"})
    patched = keys.patch_spec(
        {
            "secretName": "moved",
            "rotation": {"generation": 1, "every": "24h", "gracePeriod": "10m"},
            "deletionPolicy": "Orphan",
        }
    )
    assert patched["metadata"]["generation"] == 2


def full_status() -> GatewayKeyStatus:
    when = datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)
    conditions = tuple(
        Condition(
            type=t,
            status=ConditionStatus.TRUE,
            reason=r,
            message=f"{t} ok",
            last_transition_time=when,
            observed_generation=1,
        )
        for t, r in (
            ("Issued", "Rotating"),
            ("SecretInSync", "InSync"),
            ("InUse", "HeartbeatRecent"),
            ("Ready", "Ready"),
        )
    )
    return GatewayKeyStatus(
        observed_generation=1,
        key_id="0b6a4a55-7d0e-4d3a-9d86-0d2c5f3b5e11",
        key_name="gw",
        key_prefix="cgw_AbCdEfG",
        secret_name="k-key",
        created_at=when,
        last_heartbeat_at=when,
        rotation=RotationStatus(
            generation=1,
            previous_key_id="5f0c7c1e-2a43-4b8e-8d7d-0f6f0b2d1a11",
            previous_key_prefix="cgw_HiJkLmN",
            retire_after=when,
            last_rotated_at=when,
        ),
        conditions=conditions,
    )


def test_full_status_is_kept_not_pruned(keys: Objects) -> None:
    keys.create({"keyName": "gw"})
    sent = full_status().to_body()
    keys.patch_status(sent)
    stored = keys.get()
    assert stored["status"] == sent
    assert GatewayKeyStatus.from_body(stored["status"]) == full_status()


def test_printer_columns(k8s_api: client.ApiClient, keys: Objects) -> None:
    keys.create({"keyName": "gw"})
    keys.patch_status(full_status().to_body())
    method, url, headers, _, _ = k8s_api.param_serialize(
        "GET",
        f"/apis/{AIGATEWAYCODERDKEY.api_version}/namespaces/{keys.namespace}/"
        f"{AIGATEWAYCODERDKEY.plural}",
        header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        auth_settings=["BearerToken"],
    )
    response = k8s_api.call_api(method, url, headers)
    response.read()
    table = json.loads(response.data)
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names == [
        "Name", "Key Name", "Prefix", "Ready", "Last Heartbeat",
        "Secret", "InUse", "Last Rotation", "Age",
    ]  # fmt: skip
    # `kubectl get` hides priority > 0; `-o wide` shows them.
    wide = [c["name"] for c in table["columnDefinitions"] if c.get("priority", 0) > 0]
    assert wide == ["Secret", "InUse", "Last Rotation"]
    (row,) = table["rows"]
    assert row["cells"][:4] == ["k", "gw", "cgw_AbCdEfG", "True"]
    assert row["cells"][5:7] == ["k-key", "True"]
    assert re.fullmatch(r"\d+[a-z]\w*", row["cells"][7])  # lastRotatedAt as an age ("210d")


def test_short_name_and_category(k8s_api: client.ApiClient) -> None:
    resources = client.CustomObjectsApi(k8s_api).get_api_resources(
        AIGATEWAYCODERDKEY.group, AIGATEWAYCODERDKEY.version
    )
    (res,) = [r for r in resources.resources if r.name == AIGATEWAYCODERDKEY.plural]
    assert res.short_names == ["cgwkey"]
    assert res.categories == ["aigateway"]
    assert res.namespaced
