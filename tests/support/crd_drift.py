"""Walk a CRD's OpenAPI schema and its pydantic model side by side (the drift tests of both
kinds, tests/unit/test_api_aiprovider_crd.py and tests/unit/test_api_gatewaykey_crd.py).

``compare_model`` fails on the first field, enum value, default, constraint or required list
that exists in one and not the other; ``walk`` lists every node of a schema tree.
"""

from __future__ import annotations

import types
from datetime import datetime
from enum import StrEnum
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo


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


def compare_model(path: str, model: type[BaseModel], node: dict[str, Any]) -> None:
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
        compare_model(path, annotation, node)
    else:
        _compare_scalar(path, annotation, info, node)


def walk(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found += walk(value)
    elif isinstance(node, list):
        for value in node:
            found += walk(value)
    return found
