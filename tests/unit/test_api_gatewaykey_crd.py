"""The AIGatewayCoderdKey CRD and its pydantic mirror describe the same API.

Same walk as ``test_api_aiprovider_crd.py`` (``tests/support/crd_drift.py``), applied to the second
kind.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from aigateway_operator.api.common import ConditionType
from aigateway_operator.api.gatewaykey import (
    DURATION_PATTERN,
    KEY_NAME_PATTERN,
    RULE_MESSAGES,
    GatewayKeySpec,
    GatewayKeyStatus,
)
from aigateway_operator.api.identity import AIGATEWAYCODERDKEY
from tests.support.crd_drift import compare_model, walk

pytestmark = pytest.mark.unit

CRD_PATH = Path(__file__).resolve().parents[2] / "crds" / "aigateway.dev_aigatewaycoderdkeys.yaml"


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return dict(yaml.safe_load(CRD_PATH.read_text()))


@pytest.fixture(scope="module")
def version(crd: dict[str, Any]) -> dict[str, Any]:
    (only,) = crd["spec"]["versions"]
    return dict(only)


@pytest.fixture(scope="module")
def root(version: dict[str, Any]) -> dict[str, Any]:
    return dict(version["schema"]["openAPIV3Schema"])


def test_names_and_scope(crd: dict[str, Any], version: dict[str, Any]) -> None:
    assert crd["metadata"]["name"] == f"{AIGATEWAYCODERDKEY.plural}.{AIGATEWAYCODERDKEY.group}"
    assert crd["spec"]["group"] == AIGATEWAYCODERDKEY.group
    assert crd["spec"]["scope"] == "Namespaced"
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == (
        AIGATEWAYCODERDKEY.kind,
        AIGATEWAYCODERDKEY.plural,
        ["cgwkey"],
    )
    assert version["name"] == AIGATEWAYCODERDKEY.version
    assert version["served"]
    assert version["storage"]
    assert version["subresources"] == {"status": {}}


def test_spec_matches_model(root: dict[str, Any]) -> None:
    compare_model("spec", GatewayKeySpec, root["properties"]["spec"])


def test_spec_defaults_to_empty_so_every_field_is_optional(root: dict[str, Any]) -> None:
    assert root["properties"]["spec"]["default"] == {}
    assert root["properties"]["spec"]["properties"]["rotation"]["default"] == {}
    assert GatewayKeySpec.from_body({}) == GatewayKeySpec()


def test_status_matches_model(root: dict[str, Any]) -> None:
    compare_model("status", GatewayKeyStatus, root["properties"]["status"])


def test_conditions_are_a_map_keyed_by_type(root: dict[str, Any]) -> None:
    conditions = root["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]


def test_nothing_escapes_the_schema(root: dict[str, Any]) -> None:
    assert not [n for n in walk(root) if "x-kubernetes-preserve-unknown-fields" in n]


def test_every_cel_message_is_mirrored_or_a_transition_rule(root: dict[str, Any]) -> None:
    rules = [r for n in walk(root) for r in n.get("x-kubernetes-validations", [])]
    messages = {" ".join(r["message"].split()) for r in rules if "oldSelf" not in r["rule"]}
    assert messages == set(RULE_MESSAGES.values())
    for rule in rules:
        assert re.search(r"\b(spec|metadata)\.", rule["message"]), (
            f"message does not name a field: {rule['message']}"
        )


def test_cel_patterns_are_the_models_patterns(root: dict[str, Any]) -> None:
    """The regexes inside CEL strings are not schema patterns: check them by hand."""
    rules = " ".join(r["rule"] for n in walk(root) for r in n.get("x-kubernetes-validations", []))
    assert f"'{KEY_NAME_PATTERN}'" in rules
    assert f"'{DURATION_PATTERN.replace(chr(92), chr(92) * 2)}'" in rules


def test_printer_columns_point_at_declared_fields(
    root: dict[str, Any], version: dict[str, Any]
) -> None:
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert list(columns) == [
        "Key Name", "Prefix", "Ready", "Last Heartbeat", "Secret", "InUse", "Last Rotation", "Age",
    ]  # fmt: skip
    wide = [c["name"] for c in version["additionalPrinterColumns"] if c.get("priority", 0) > 0]
    assert wide == ["Secret", "InUse", "Last Rotation"]  # kubectl get -o wide only
    assert columns["InUse"] == '.status.conditions[?(@.type=="InUse")].status'
    for name, json_path in columns.items():
        top, _, rest = json_path.lstrip(".").partition(".")
        if top == "metadata":
            continue
        field_name = re.split(r"[\[.]", rest)[0]
        assert field_name in root["properties"][top]["properties"], f"{name}: {json_path}"
    assert columns["Ready"] == '.status.conditions[?(@.type=="Ready")].status'
    assert ConditionType.READY == "Ready"
