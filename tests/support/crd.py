"""Helpers for testing our CRDs on the real API server: objects of one kind in one namespace,
and the 422 a rejected object gets."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

GROUP, VERSION = "aigateway.dev", "v1alpha1"


def body(kind: str, name: str, spec: dict[str, Any] | None) -> dict[str, Any]:
    """An object of one of our kinds (``spec`` None leaves it out, to test "required")."""
    obj: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": kind,
        "metadata": {"name": name},
    }
    if spec is not None:
        obj["spec"] = spec
    return obj


class Objects:
    """Thin helper over CustomObjectsApi for one kind in one namespace."""

    def __init__(
        self, api: client.ApiClient, namespace: str, plural: str, kind: str, default_name: str
    ) -> None:
        self.api = client.CustomObjectsApi(api)
        self.namespace = namespace
        self.plural = plural
        self.kind = kind
        self.default_name = default_name

    def create(
        self, spec: dict[str, Any] | None, name: str | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.api.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, self.plural,
            body(self.kind, name or self.default_name, spec), **kwargs,
        )  # fmt: skip
        return result

    def get(self, name: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.api.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, self.plural, name or self.default_name
        )
        return result

    def patch_spec(self, spec: dict[str, Any], name: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.api.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, self.plural, name or self.default_name,
            {"spec": spec},
        )  # fmt: skip
        return result

    def patch_status(self, status: dict[str, Any], name: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.api.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, self.plural, name or self.default_name,
            {"status": status},
        )  # fmt: skip
        return result


def rejected(call: Callable[[], Any]) -> str:
    """Run ``call``, expect 422 Invalid, return the server's message."""
    with pytest.raises(ApiException) as info:
        call()
    assert info.value.status == 422, info.value.body
    payload = json.loads(info.value.body)
    assert payload["reason"] == "Invalid"
    return str(payload["message"])
