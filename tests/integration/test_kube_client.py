"""``kube.client.Kube`` against the real API server: the calls every pass makes (read a Secret,
patch status, set a finalizer, post an Event) go out as plain JSON through the client's pool
and credentials; here they are checked for what they do, how they fail, and that a bearer
token (what a pod's service account uses) authenticates them as it does the generated API."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from aigateway_operator.kube.client import Kube, KubeError, ObjectRef
from tests.support.rbac import client_with_token, grant_secrets, sa_token
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration

GROUP, VERSION, PLURAL = "aigateway.dev", "v1alpha1", "aiproviders"
VALUE = "sk-integration-VALUE-0123456789"


def _secret(api: client.ApiClient, namespace: str, name: str = "keys") -> client.V1Secret:
    return client.CoreV1Api(api).create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=name, labels={"team": "ml"}),
            data={"a": base64.b64encode(VALUE.encode()).decode()},
        ),
    )


def _provider(api: client.ApiClient, namespace: str, name: str = "p") -> dict[str, Any]:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AIProvider",
        "metadata": {"name": name},
        "spec": {"type": "openai", "apiKeys": [{"secretKeyRef": {"name": "keys", "key": "a"}}]},
    }
    obj: dict[str, Any] = client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body
    )
    return obj


def _reader_client(api: client.ApiClient, namespace: str) -> client.ApiClient:
    """A client authenticated only by a service-account bearer token that may get Secrets in
    ``namespace`` (returned once the grant is in effect: Secret ``keys`` must exist)."""
    client.CoreV1Api(api).create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader"))
    )
    grant_secrets(api, namespace, "reader", "reader", ["get"])
    as_sa = client_with_token(api, sa_token(api, namespace, "reader"))

    def granted() -> bool:
        try:
            client.CoreV1Api(as_sa).read_namespaced_secret("keys", namespace)
        except ApiException as exc:
            if exc.status == 403:  # the new binding is not in effect yet
                return False
            raise
        return True

    wait_for(granted, 10, "RBAC grant to take effect")
    return as_sa


def test_read_secret_found_missing_and_labels(k8s_api: client.ApiClient, namespace: str) -> None:
    made = _secret(k8s_api, namespace)
    kube = Kube(k8s_api)
    got = asyncio.run(kube.read_secret(namespace, "keys"))
    assert got is not None
    assert got.data == {"a": VALUE.encode()}
    assert got.uid == made.metadata.uid
    assert got.resource_version == made.metadata.resource_version
    assert got.labels == {"team": "ml"}
    assert VALUE not in repr(got)  # data is repr=False
    assert asyncio.run(kube.read_secret(namespace, "nope")) is None


def test_bearer_token_reads_and_a_denial_names_the_secret_not_the_token(
    k8s_api: client.ApiClient, namespace: str
) -> None:
    _secret(k8s_api, namespace)
    allowed = Kube(_reader_client(k8s_api, namespace))
    got = asyncio.run(allowed.read_secret(namespace, "keys"))
    assert got is not None
    assert got.data["a"] == VALUE.encode()

    other = f"{namespace}-other"
    client.CoreV1Api(k8s_api).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=other))
    )
    try:
        _secret(k8s_api, other)
        with pytest.raises(KubeError) as info:
            asyncio.run(allowed.read_secret(other, "keys"))
        assert info.value.status == 403
        assert f"Secret {other}/keys" in str(info.value)
        assert "Forbidden" in str(info.value)
        assert VALUE not in str(info.value)
        assert "Bearer" not in str(info.value)
    finally:
        client.CoreV1Api(k8s_api).delete_namespace(other)


def test_patch_status_merges_deletes_and_reports_gone(
    k8s_api: client.ApiClient, namespace: str
) -> None:
    _provider(k8s_api, namespace)
    kube = Kube(k8s_api)
    after = asyncio.run(
        kube.patch_status(PLURAL, namespace, "p", {"keyCount": 1, "providerName": "p"})
    )
    assert after is not None
    assert after["status"] == {"keyCount": 1, "providerName": "p"}
    owners = {m["manager"] for m in after["metadata"]["managedFields"] if m.get("subresource")}
    assert owners == {"aigateway-operator"}  # status fields are ours in managedFields
    after = asyncio.run(kube.patch_status(PLURAL, namespace, "p", {"providerName": None}))
    assert after is not None
    assert after["status"] == {"keyCount": 1}
    assert asyncio.run(kube.patch_status(PLURAL, namespace, "gone", {"keyCount": 1})) is None
    # A value the status schema refuses: the server's 422, as a KubeError naming the object.
    with pytest.raises(KubeError) as info:
        asyncio.run(kube.patch_status(PLURAL, namespace, "p", {"keyCount": -1}))
    assert info.value.status == 422
    assert f"status of {PLURAL} {namespace}/p" in str(info.value)


def test_set_finalizer_is_guarded_by_resource_version(
    k8s_api: client.ApiClient, namespace: str
) -> None:
    obj = _provider(k8s_api, namespace)
    meta = obj["metadata"]
    kube = Kube(k8s_api)
    after = asyncio.run(
        kube.set_finalizer(
            PLURAL, namespace, "p", meta["resourceVersion"], [], "example.com/f", True
        )
    )
    assert after is not None
    assert after["metadata"]["finalizers"] == ["example.com/f"]
    with pytest.raises(KubeError) as info:  # the stale version: nothing is written
        asyncio.run(
            kube.set_finalizer(
                PLURAL, namespace, "p", meta["resourceVersion"], [], "example.com/f", False
            )
        )
    assert info.value.status in (409, 422)
    fresh = after["metadata"]
    after = asyncio.run(
        kube.set_finalizer(
            PLURAL,
            namespace,
            "p",
            fresh["resourceVersion"],
            fresh["finalizers"],
            "example.com/f",
            False,
        )
    )
    assert after is not None
    assert not after["metadata"].get("finalizers")


def test_post_event_is_about_the_object(k8s_api: client.ApiClient, namespace: str) -> None:
    obj = _provider(k8s_api, namespace)
    meta = obj["metadata"]
    ref = ObjectRef(
        f"{GROUP}/{VERSION}", "AIProvider", namespace, "p", meta["uid"], meta["resourceVersion"]
    )
    kube = Kube(k8s_api)
    assert asyncio.run(kube.post_event(ref, "Normal", "Synced", "provider p synced")) is True
    events = client.CoreV1Api(k8s_api).list_namespaced_event(namespace).items
    assert len(events) == 1
    ev = events[0]
    assert ev.metadata.name.startswith("p.")
    assert (ev.type, ev.reason, ev.message, ev.count) == (
        "Normal",
        "Synced",
        "provider p synced",
        1,
    )
    assert ev.involved_object.uid == meta["uid"]
    assert ev.involved_object.kind == "AIProvider"
    assert ev.source.component == "aigateway-operator"
    assert ev.first_timestamp is not None
    assert ev.last_timestamp is not None
    # Best effort: a refused Event (its namespace does not exist) is False, never an error.
    gone = ObjectRef(f"{GROUP}/{VERSION}", "AIProvider", f"{namespace}-none", "p", "u")
    assert asyncio.run(kube.post_event(gone, "Normal", "Synced", "x")) is False
