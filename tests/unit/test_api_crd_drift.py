"""The CRD YAML and the pydantic models must describe the same API.

The YAML is the contract the API server enforces; the models are what the operator reads.
If a field, enum value, default, constraint or required list exists in one and not the other,
the operator either ignores user input or writes status the server prunes. This test walks
both trees side by side and fails on the first difference.
"""

from __future__ import annotations

import re
import types
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import pytest
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from aigateway_operator.api.aiprovider import (
    API_GROUP,
    API_VERSION,
    KIND,
    PLURAL,
    RULE_MESSAGES,
    AIProviderSpec,
    AIProviderStatus,
)
from aigateway_operator.api.common import ConditionType

pytestmark = pytest.mark.unit

CRD_PATH = Path(__file__).resolve().parents[2] / "crds" / "aigateway.dev_aiproviders.yaml"


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


def _unwrap_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        assert len(args) == 1, f"unexpected union {annotation}"
        return args[0]
    return annotation


def _constraints(info: FieldInfo) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for meta in info.metadata:
        for attr, key in (
            ("max_length", "max_length"),
            ("min_length", "min_length"),
            ("pattern", "pattern"),
            ("ge", "ge"),
        ):
            value = getattr(meta, attr, None)
            if value is not None:
                found[key] = value
    return found


def _compare_scalar(
    path: str, annotation: Any, info: FieldInfo | None, node: dict[str, Any]
) -> None:
    kind = node.get("type")
    if isinstance(annotation, type) and issubclass(annotation, StrEnum):
        assert kind == "string", path
        assert [e.value for e in annotation] == node.get("enum"), f"{path}: enum differs"
    elif annotation is bool:
        assert kind == "boolean", path
    elif annotation is int:
        assert kind == "integer", path
    elif annotation is datetime:
        assert (kind, node.get("format")) == ("string", "date-time"), path
    elif annotation is str:
        assert kind == "string", path
        assert "enum" not in node, f"{path}: CRD has an enum, the model a plain str"
    else:  # pragma: no cover - a new annotation kind needs a rule here
        raise AssertionError(f"{path}: unhandled annotation {annotation!r}")
    if info is None:
        return
    have = _constraints(info)
    assert have.get("max_length") == node.get("maxLength", node.get("maxItems")), (
        f"{path}: maxLength"
    )
    assert have.get("min_length") == node.get("minLength"), f"{path}: minLength"
    assert have.get("pattern") == node.get("pattern"), f"{path}: pattern"
    assert have.get("ge") == node.get("minimum"), f"{path}: minimum"


def _compare_model(path: str, model: type[BaseModel], node: dict[str, Any]) -> None:
    assert node.get("type") == "object", path
    assert "x-kubernetes-preserve-unknown-fields" not in node, path
    props: dict[str, Any] = node.get("properties", {})
    fields = {(info.alias or name): info for name, info in model.model_fields.items()}
    assert set(fields) == set(props), (
        f"{path}: only in model {sorted(set(fields) - set(props))}, "
        f"only in CRD {sorted(set(props) - set(fields))}"
    )
    required = {alias for alias, info in fields.items() if info.is_required()}
    assert required == set(node.get("required", [])), f"{path}: required lists differ"
    for alias, info in fields.items():
        _compare_field(f"{path}.{alias}", info, props[alias])


def _compare_field(path: str, info: FieldInfo, node: dict[str, Any]) -> None:
    assert node.get("description"), f"{path}: no description (kubectl explain would be empty)"
    annotation = _unwrap_optional(info.annotation)
    if "default" in node:
        default = info.get_default(call_default_factory=True)
        if isinstance(default, BaseModel):  # an object defaulted to {}: all of its defaults
            default = default.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        assert default == node["default"], f"{path}: default {default!r} != {node['default']!r}"
    else:
        assert info.is_required() or info.get_default() in (None, ()), (
            f"{path}: the model has a default the CRD lacks"
        )
    if get_origin(annotation) is tuple:
        (item, _ellipsis) = get_args(annotation)
        assert node.get("type") == "array", path
        have = _constraints(info)
        assert have.get("max_length") == node.get("maxItems"), f"{path}: maxItems"
        _compare_type(f"{path}[]", item, None, node["items"])
        return
    _compare_type(path, annotation, info, node)


def _compare_type(path: str, annotation: Any, info: FieldInfo | None, node: dict[str, Any]) -> None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        assert node.get("description"), f"{path}: no description"
        _compare_model(path, annotation, node)
    else:
        _compare_scalar(path, annotation, info, node)


def test_names_and_scope(crd: dict[str, Any], version: dict[str, Any]) -> None:
    assert crd["metadata"]["name"] == f"{PLURAL}.{API_GROUP}"
    assert crd["spec"]["group"] == API_GROUP
    assert crd["spec"]["scope"] == "Namespaced"
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == (KIND, PLURAL, ["aip"])
    assert version["name"] == API_VERSION
    assert version["served"]
    assert version["storage"]
    assert version["subresources"] == {"status": {}}


def test_spec_matches_model(root: dict[str, Any]) -> None:
    _compare_model("spec", AIProviderSpec, root["properties"]["spec"])


def test_status_matches_model(root: dict[str, Any]) -> None:
    _compare_model("status", AIProviderStatus, root["properties"]["status"])


def test_conditions_are_a_map_keyed_by_type(root: dict[str, Any]) -> None:
    conditions = root["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]


def _walk(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found += _walk(value)
    elif isinstance(node, list):
        for value in node:
            found += _walk(value)
    return found


def test_nothing_escapes_the_schema(root: dict[str, Any]) -> None:
    """No preserve-unknown-fields anywhere: an undeclared field must be an error we see."""
    assert not [n for n in _walk(root) if "x-kubernetes-preserve-unknown-fields" in n]


def test_every_cel_message_is_mirrored_or_a_transition_rule(root: dict[str, Any]) -> None:
    rules = [r for n in _walk(root) for r in n.get("x-kubernetes-validations", [])]
    messages = {" ".join(r["message"].split()) for r in rules if "oldSelf" not in r["rule"]}
    assert messages == set(RULE_MESSAGES.values())
    for rule in rules:
        assert re.search(r"\b(spec|metadata)\.", rule["message"]), (
            f"message does not name a field: {rule['message']}"
        )


def test_printer_columns_point_at_declared_fields(
    root: dict[str, Any], version: dict[str, Any]
) -> None:
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert list(columns) == [
        "Provider", "Type", "Enabled", "Keys", "Ready", "Reason",
        "Base URL", "Synced", "Last Sync", "Age",
    ]  # fmt: skip
    wide = [c["name"] for c in version["additionalPrinterColumns"] if c.get("priority", 0) > 0]
    assert wide == ["Base URL", "Synced", "Last Sync"]  # kubectl get -o wide only
    assert columns["Synced"] == '.status.conditions[?(@.type=="Synced")].status'
    for name, json_path in columns.items():
        top, _, rest = json_path.lstrip(".").partition(".")
        if top == "metadata":
            continue
        field_name = re.split(r"[\[.]", rest)[0]
        assert field_name in root["properties"][top]["properties"], f"{name}: {json_path}"
    assert columns["Ready"] == '.status.conditions[?(@.type=="Ready")].status'
    assert ConditionType.READY == "Ready"
