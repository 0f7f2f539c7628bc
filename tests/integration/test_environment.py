"""The local environment is the real thing: API server semantics, RBAC, Postgres, STS."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.support.rbac import client_with_token, grant_secrets, sa_token
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration

GROUP = "harness.aigateway.dev"

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"widgets.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {"size": {"type": "integer"}},
                                "x-kubernetes-validations": [
                                    {
                                        "rule": "self.size <= 10",
                                        "message": "spec.size must be <= 10",
                                    }
                                ],
                            },
                            "status": {
                                "type": "object",
                                "properties": {"phase": {"type": "string"}},
                            },
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture(scope="module")
def widget_crd(k8s_api: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(k8s_api)
    try:
        ext.create_custom_resource_definition(WIDGET_CRD)
    except ApiException as exc:
        if exc.status != 409:
            raise

    def established() -> bool:
        crd = ext.read_custom_resource_definition(WIDGET_CRD["metadata"]["name"])
        return any(
            c.type == "Established" and c.status == "True" for c in (crd.status.conditions or [])
        )

    wait_for(established, 30, "Widget CRD Established")


def _widget(name: str, size: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": size},
    }


def test_cel_rule_rejects_bad_object_with_422(
    k8s_api: client.ApiClient, widget_crd: None, namespace: str
) -> None:
    api = client.CustomObjectsApi(k8s_api)
    with pytest.raises(ApiException) as info:
        api.create_namespaced_custom_object(GROUP, "v1", namespace, "widgets", _widget("big", 11))
    assert info.value.status == 422
    assert "spec.size must be <= 10" in json.loads(info.value.body)["message"]
    # And a good one is accepted.
    api.create_namespaced_custom_object(GROUP, "v1", namespace, "widgets", _widget("ok", 3))


def test_status_subresource_patch(
    k8s_api: client.ApiClient, widget_crd: None, namespace: str
) -> None:
    api = client.CustomObjectsApi(k8s_api)
    created = api.create_namespaced_custom_object(
        GROUP, "v1", namespace, "widgets", _widget("w", 1)
    )
    gen = created["metadata"]["generation"]
    api.patch_namespaced_custom_object_status(
        GROUP, "v1", namespace, "widgets", "w", {"status": {"phase": "Ready"}}
    )
    obj = api.get_namespaced_custom_object(GROUP, "v1", namespace, "widgets", "w")
    assert obj["status"] == {"phase": "Ready"}
    assert obj["metadata"]["generation"] == gen  # status writes do not bump generation
    # Status sent to the main resource is ignored once the subresource is enabled.
    api.patch_namespaced_custom_object(
        GROUP, "v1", namespace, "widgets", "w", {"status": {"phase": "Hacked"}}
    )
    obj = api.get_namespaced_custom_object(GROUP, "v1", namespace, "widgets", "w")
    assert obj["status"] == {"phase": "Ready"}


def test_token_request_and_rbac_denial(k8s_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(k8s_api)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="probe"))
    )
    token = sa_token(k8s_api, namespace, "probe")
    as_sa = client_with_token(k8s_api, token)
    try:
        sa_core = client.CoreV1Api(as_sa)
        with pytest.raises(ApiException) as info:
            sa_core.list_namespaced_secret(namespace)
        assert info.value.status == 403
        assert f"system:serviceaccount:{namespace}:probe" in info.value.body
        # Grant exactly "list secrets" in this namespace: the same token now works,
        # which proves the denial came from RBAC and not from a broken token.
        grant_secrets(k8s_api, namespace, "probe", "list-secrets", ["list"])
        core.create_namespaced_secret(
            namespace,
            client.V1Secret(metadata=client.V1ObjectMeta(name="listed"), string_data={"k": "v"}),
        )

        def listed() -> list[str] | None:
            try:
                items = sa_core.list_namespaced_secret(namespace).items
            except ApiException as exc:
                if exc.status == 403:
                    return None  # the grant has not reached the authorizer's cache yet
                raise
            return [s.metadata.name for s in items]

        assert "listed" in wait_for(listed, 10, "RBAC grant to take effect")
        with pytest.raises(ApiException) as info:
            sa_core.delete_collection_namespaced_secret(namespace)
        assert info.value.status == 403
    finally:
        as_sa.close()


def test_garbage_collector_removes_owned_objects(k8s_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(k8s_api)
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(
                name="owned",
                owner_references=[
                    client.V1OwnerReference(
                        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
                    )
                ],
            ),
            string_data={"k": "v"},
        ),
    )
    core.delete_namespaced_config_map("owner", namespace)

    def gone() -> bool:
        try:
            core.read_namespaced_secret("owned", namespace)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, 60, "owned Secret to be garbage-collected")


def test_postgres_round_trip(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("CREATE TEMP TABLE t (id uuid PRIMARY KEY, body jsonb)")
        key = uuid.uuid4()
        conn.execute("INSERT INTO t VALUES (%s, %s)", (key, json.dumps({"a": 1})))
        row = conn.execute(
            "SELECT id, body, current_setting('server_version_num')::int FROM t"
        ).fetchone()
    assert row is not None
    assert row[0] == key
    assert row[1] == {"a": 1}
    assert 150000 <= row[2] < 160000  # Postgres 15


@pytest.mark.usefixtures("aws_env")
def test_sts_assume_role_through_default_chain() -> None:
    sts = boto3.client("sts")  # endpoint and credentials come only from the environment
    assert sts.meta.endpoint_url.startswith("http://127.0.0.1:")
    resp = sts.assume_role(
        RoleArn="arn:aws:iam::123456789012:role/BedrockRole",
        RoleSessionName="aigw-test",
        ExternalId="ext-123",
    )
    assert resp["AssumedRoleUser"]["Arn"].endswith(":assumed-role/BedrockRole/aigw-test")
    creds = resp["Credentials"]
    assumed = boto3.client(
        "sts",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    assert assumed.get_caller_identity()["Account"] == "123456789012"


def test_sts_irsa_web_identity_through_default_chain(
    aws_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    """IRSA exactly as on EKS: a projected SA token file + AWS_ROLE_ARN, no static keys."""
    core = client.CoreV1Api(k8s_api)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="operator"))
    )
    token_file = tmp_path / "token"
    token_file.write_text(sa_token(k8s_api, namespace, "operator", audience="sts.amazonaws.com"))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/aigw-operator")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AWS_ROLE_SESSION_NAME", "aigw-irsa")
    session = boto3.Session()
    creds = session.get_credentials()
    assert creds is not None
    assert creds.method == "assume-role-with-web-identity"
    ident = session.client("sts").get_caller_identity()
    assert ident["Arn"].endswith(":assumed-role/aigw-operator/aigw-irsa")
