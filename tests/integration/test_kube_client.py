"""``kube.client.Kube`` against the real API server: the calls a pass makes (read a Secret,
patch status, write a gateway-key Secret, post an Event) go out as plain JSON through the
client's pool and credentials; here they are checked for what they do, how they fail, and
that a bearer token (what a pod's service account uses) authenticates them."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from aigateway_operator.kube import EventRecorder, Kube, KubeError, ObjectRef, Requester
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


def test_events_are_created_then_bumped_and_are_about_the_object(
    k8s_api: client.ApiClient, namespace: str
) -> None:
    obj = _provider(k8s_api, namespace)
    meta = obj["metadata"]
    ref = ObjectRef(f"{GROUP}/{VERSION}", "AIProvider", namespace, "p", meta["uid"])

    async def post_twice() -> None:
        recorder = EventRecorder(Kube(k8s_api))
        recorder.start()
        recorder.post(ref, "Normal", "Synced", "provider p synced")
        recorder.post(ref, "Normal", "Synced", "provider p synced")
        await recorder.stop()

    asyncio.run(post_twice())
    events = client.CoreV1Api(k8s_api).list_namespaced_event(namespace).items
    assert len(events) == 1
    ev = events[0]
    assert ev.metadata.name.startswith("p.")
    assert (ev.type, ev.reason, ev.message, ev.count) == (
        "Normal",
        "Synced",
        "provider p synced",
        2,
    )
    assert ev.involved_object.uid == meta["uid"]
    assert ev.involved_object.kind == "AIProvider"
    assert ev.source.component == "aigateway-operator"
    assert ev.first_timestamp is not None
    assert ev.last_timestamp is not None
    kube = Kube(k8s_api)
    # An Event in a namespace that does not exist: the server's answer, as a KubeError.
    with pytest.raises(KubeError) as info:
        asyncio.run(kube.create_event(f"{namespace}-none", {"metadata": {"generateName": "x."}}))
    assert info.value.status in (400, 404, 422)
    assert asyncio.run(kube.patch_event(namespace, "no-such-event", {"count": 3})) is None


def test_secrets_written_replaced_disowned_and_deleted_by_uid(
    k8s_api: client.ApiClient, namespace: str
) -> None:
    obj = _provider(k8s_api, namespace)
    owner = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AIProvider",
        "name": "p",
        "uid": obj["metadata"]["uid"],
    }
    kube = Kube(k8s_api)
    made = asyncio.run(
        kube.write_owned_secret(namespace, "gw", {"key": b"v1"}, owner, {"l": "1"}, None)
    )
    with pytest.raises(KubeError) as info:  # created twice: the server's 409
        asyncio.run(kube.write_owned_secret(namespace, "gw", {"key": b"v"}, owner, {}, None))
    assert info.value.status == 409
    replaced = asyncio.run(
        kube.write_owned_secret(
            namespace, "gw", {"key": b"v2"}, owner, {}, made.resource_version, {"a": "b"}
        )
    )
    with pytest.raises(KubeError) as info:  # a stale resourceVersion: nothing is written
        asyncio.run(
            kube.write_owned_secret(
                namespace, "gw", {"key": b"v3"}, owner, {}, made.resource_version
            )
        )
    assert info.value.status == 409
    got = asyncio.run(kube.read_secret(namespace, "gw"))
    assert got is not None
    assert got.data == {"key": b"v2"}
    assert got.annotations == {"a": "b"}
    assert got.owner_uids == (obj["metadata"]["uid"],)
    assert got.resource_version == replaced.resource_version
    assert asyncio.run(kube.disown_secret(namespace, "gw", got.uid)) is True
    got = asyncio.run(kube.read_secret(namespace, "gw"))
    assert got is not None
    assert got.owner_uids == ()
    assert asyncio.run(kube.delete_secret(namespace, "gw", "another-uid")) is False
    assert asyncio.run(kube.delete_secret(namespace, "gw", got.uid)) is True
    assert asyncio.run(kube.read_secret(namespace, "gw")) is None
    assert asyncio.run(kube.delete_secret(namespace, "gw", got.uid)) is False


def _deployment(api: client.ApiClient, namespace: str, name: str, **annotations: str) -> None:
    labels = {"app": name}
    client.AppsV1Api(api).create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name=name, annotations=annotations or None),
            spec=client.V1DeploymentSpec(
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="x")]),
                ),
            ),
        ),
    )


def test_workloads_are_listed_by_metadata_and_stamped_only_while_the_same_object(
    k8s_api: client.ApiClient, namespace: str
) -> None:
    """Restart on rotation: the opt-in annotation is read from a metadata-only list; the
    stamp lands in the pod template (which is what rolls a Deployment), twice is a no-op,
    and a workload re-created under the same name is not stamped with the old one's uid."""
    opt = {"aigateway.dev/restart-on-rotation": "gw"}
    _deployment(k8s_api, namespace, "gateway", **opt)
    _deployment(k8s_api, namespace, "bystander")
    kube = Kube(k8s_api)
    listed = {(w.kind, w.name): w for w in asyncio.run(kube.list_workloads(namespace))}
    assert set(listed) == {("Deployment", "gateway"), ("Deployment", "bystander")}
    assert listed[("Deployment", "gateway")].annotations == opt
    assert listed[("Deployment", "gateway")].template_annotations == {}  # metadata only
    full = asyncio.run(kube.read_workload("Deployment", namespace, "gateway"))
    assert full is not None
    assert full.template_annotations == {}
    apps = client.AppsV1Api(k8s_api)
    before = apps.read_namespaced_deployment("gateway", namespace).metadata.generation
    stamp = {"aigateway.dev/key-generation": "key-1"}
    assert asyncio.run(kube.stamp_pod_template(full, stamp)) is True
    dep = apps.read_namespaced_deployment("gateway", namespace)
    assert dep.spec.template.metadata.annotations == stamp
    assert dep.metadata.generation == before + 1  # the template changed: a rollout
    again = asyncio.run(kube.read_workload("Deployment", namespace, "gateway"))
    assert again is not None
    assert again.template_annotations == stamp
    newer = {"aigateway.dev/key-generation": "key-2"}
    assert asyncio.run(kube.stamp_pod_template(again, newer)) is True
    dep = apps.read_namespaced_deployment("gateway", namespace)
    assert dep.spec.template.metadata.annotations == newer
    assert dep.metadata.labels is None  # nothing but the one annotation was written
    # Deleted and re-created under the same name: the old uid stamps nothing.
    apps.delete_namespaced_deployment("gateway", namespace)
    _deployment(k8s_api, namespace, "gateway", **opt)
    assert asyncio.run(kube.stamp_pod_template(again, stamp)) is False
    assert (
        apps.read_namespaced_deployment("gateway", namespace).spec.template.metadata.annotations
        is None
    )
    assert asyncio.run(kube.read_workload("StatefulSet", namespace, "nothing")) is None


def test_a_connection_failure_is_a_kube_error_without_details() -> None:
    cfg = client.Configuration()
    cfg.host = "https://127.0.0.1:9"  # nothing listens on the discard port
    kube = Kube(client.ApiClient(cfg))
    with pytest.raises(KubeError) as info:
        asyncio.run(kube.read_secret("ns", "s"))
    assert info.value.status is None
    assert "127.0.0.1" not in str(info.value)


def test_may_get_secret_asks_as_the_requester(k8s_api: client.ApiClient, namespace: str) -> None:
    """#23: the webhook's SubjectAccessReview answers for the requester (user and groups),
    not for the operator; the answer is the same whether the Secret exists or not."""
    _secret(k8s_api, namespace)
    _reader_client(k8s_api, namespace)  # ServiceAccount "reader" may get Secrets here
    kube = Kube(k8s_api)
    reader = Requester(
        f"system:serviceaccount:{namespace}:reader",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
        uid="d0c5e7a2-0000-4000-8000-000000000001",
        extra={"authentication.kubernetes.io/credential-id": ("JTI=test",)},
    )
    stranger = Requester(f"system:serviceaccount:{namespace}:stranger", reader.groups)
    assert asyncio.run(kube.may_get_secret(reader, namespace, "keys"))
    assert asyncio.run(kube.may_get_secret(reader, namespace, "does-not-exist"))
    assert not asyncio.run(kube.may_get_secret(stranger, namespace, "keys"))
    assert not asyncio.run(kube.may_get_secret(stranger, namespace, "does-not-exist"))
    assert not asyncio.run(kube.may_get_secret(reader, "kube-system", "keys"))
