"""Issue #13, findings 1 and 2, for AIGatewayCoderdKey: a namespace editor (a real
ServiceAccount holding the built-in ``edit`` ClusterRole in its namespace only, our kinds
aggregated into it by the chart's own ClusterRoles, removed after the module; a TokenRequest
token) attacks another namespace's
gateway key through the operator. Every move is made with the tenant's own credentials and
the database is checked after each: the victim's row (id, name, hash) and its ownership
records never change, and no value the tenant chose ever becomes a row.

Both objects are named ``gw`` (in their own namespaces): ownership is keyed by namespace too.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.gatewaykeys import PLURAL, apply_key, rows, secret_value
from tests.support.operator import (
    GROUP,
    VERSION,
    OperatorProcess,
    condition,
    custom,
    get_obj,
    wait_condition,
)
from tests.support.tenancy import aggregated_roles, editor
from tests.support.wait import wait_for

pytestmark = pytest.mark.faults

CHOSEN = "cgw_" + "TenantChosenKey0123456789abcdefghijklm"  # 43 characters, our shape


@pytest.fixture(scope="module")
def chart_roles(k8s_api: client.ApiClient) -> Iterator[None]:
    """The chart's aggregated ClusterRoles: the editor's rights on our kinds, and nothing a
    test made (removed after the module)."""
    with aggregated_roles(k8s_api):
        yield


@pytest.fixture
def tenant_ns(k8s_api: client.ApiClient) -> Iterator[str]:
    """The tenant's namespace (the ``namespace`` fixture is the victim's)."""
    core = client.CoreV1Api(k8s_api)
    name = f"tenant-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        core.delete_namespace(name)


def records(op: OperatorProcess) -> set[tuple[Any, ...]]:
    """(namespace, name, role, row_id) of every gateway-key ownership record."""
    with psycopg.connect(op.database_url) as conn:
        return {
            tuple(r)
            for r in conn.execute(
                "SELECT namespace, name, role, row_id FROM aigateway_operator.owners "
                "WHERE row_table = 'ai_gateway_keys'"
            ).fetchall()
        }


def audited_ids(op: OperatorProcess) -> set[uuid.UUID]:
    """Every gateway-key id the operator ever wrote (its coderd-shaped audit rows)."""
    with psycopg.connect(op.database_url) as conn:
        return {
            r[0]
            for r in conn.execute(
                "SELECT resource_id FROM audit_logs WHERE resource_type = 'ai_gateway_key'"
            ).fetchall()
        }


def sha(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def test_a_namespace_editor_cannot_reach_another_namespaces_gateway_key(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
    tenant_ns: str,
    chart_roles: None,
) -> None:
    op = operator_factory(
        extra_env={"AIGW_HEARTBEAT_INTERVAL_S": "5"}, namespaces=[namespace, tenant_ns]
    )
    tenant = editor(k8s_api, tenant_ns).api
    t_core, t_custom = client.CoreV1Api(tenant), custom(tenant)

    # The victim's key (another namespace), and what must never change about it.
    apply_key(k8s_api, namespace, "gw")
    victim = wait_condition(k8s_api, namespace, PLURAL, "gw", "Ready")
    victim_id = uuid.UUID(victim["status"]["keyID"])
    victim_value = secret_value(k8s_api, namespace, "gw-key")
    assert victim_value is not None
    (victim_row,) = [r[:4] for r in rows(op) if r[0] == victim_id]
    assert victim_row[1:4] == ("gw", victim_value[:11], sha(victim_value))
    victim_records = {(namespace, "gw", "current", victim_id)}

    def victim_untouched() -> None:
        assert [r[:4] for r in rows(op) if r[0] == victim_id] == [victim_row]
        assert {r for r in records(op) if r[0] == namespace} == victim_records
        assert secret_value(k8s_api, namespace, "gw-key") == victim_value
        assert all(r[3] != sha(CHOSEN) for r in rows(op))

    # The tenant's rights are the namespace's and no more.
    with pytest.raises(ApiException) as denied:
        client.CoreV1Api(tenant).read_namespaced_secret("gw-key", namespace)
    assert denied.value.status == 403

    # The tenant's own key object, named like the victim's (its Coder key name differs).
    t_custom.create_namespaced_custom_object(
        GROUP, VERSION, tenant_ns, PLURAL,
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AIGatewayCoderdKey",
         "metadata": {"name": "gw"}, "spec": {"keyName": "tenant-gw"}},
    )  # fmt: skip
    wait_condition(k8s_api, tenant_ns, PLURAL, "gw", "Ready")
    victim_untouched()
    # Status is the operator's: the tenant cannot write ids there (the unit twin covers a
    # cluster where it could).
    with pytest.raises(ApiException) as denied:
        t_custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, tenant_ns, PLURAL, "gw", {"status": {"keyID": str(victim_id)}}
        )
    assert denied.value.status == 403

    def bump(name: str, grace: str) -> dict[str, Any]:
        """A spec change with the tenant's credentials; returns the object once a pass has
        seen it (so it has seen everything the tenant did before)."""
        t_custom.patch_namespaced_custom_object(
            GROUP, VERSION, tenant_ns, PLURAL, name, {"spec": {"rotation": {"gracePeriod": grace}}}
        )
        obj = get_obj(k8s_api, tenant_ns, PLURAL, name)
        gen = obj["metadata"]["generation"]

        def seen() -> dict[str, Any] | None:
            o = get_obj(k8s_api, tenant_ns, PLURAL, name)
            c = condition(o, "Issued")
            return o if c and c.get("observedGeneration") == gen else None

        return wait_for(seen, 60, f"{tenant_ns}/{name} to see generation {gen}")

    def write_own_secret(value: str | None, annotations: dict[str, str]) -> None:
        sec = t_core.read_namespaced_secret("gw-key", tenant_ns)
        body: dict[str, Any] = {"metadata": {"annotations": annotations}}
        if value is not None:
            body["data"] = {"key": base64.b64encode(value.encode()).decode()}
        t_core.patch_namespaced_secret(sec.metadata.name, tenant_ns, body)

    # Finding 2: the tenant writes a `cgw_` value of its choosing and a fresh key id.
    chosen_id = uuid.uuid4()
    write_own_secret(CHOSEN, {"aigateway.dev/key-id": str(chosen_id)})
    fresh = wait_for(
        lambda: (v := secret_value(k8s_api, tenant_ns, "gw-key")) != CHOSEN and v,
        60,
        "the operator to replace the chosen value",
    )
    mine = wait_for(
        lambda: (
            (o := get_obj(k8s_api, tenant_ns, PLURAL, "gw"))["status"].get("keyPrefix")
            == fresh[:11]
            and o
        ),
        60,
        "the status to name the re-issued key",
    )
    mine_id = uuid.UUID(mine["status"]["keyID"])
    (mine_row,) = [r for r in rows(op) if r[0] == mine_id]
    assert mine_row[3] == sha(fresh)
    assert chosen_id not in {r[0] for r in rows(op)}
    assert chosen_id not in audited_ids(op)  # never a row, not even for a moment
    victim_untouched()

    # Finding 1: another namespace's key id in the Secret's annotations; then a rotation
    # and a re-issue with them in place.
    forged = {
        "aigateway.dev/key-id": str(victim_id),
        "aigateway.dev/previous-key-id": str(victim_id),
    }
    write_own_secret(None, forged)
    bump("gw", "2h")
    victim_untouched()
    write_own_secret(None, forged)
    t_custom.patch_namespaced_custom_object(
        GROUP, VERSION, tenant_ns, PLURAL, "gw", {"spec": {"rotation": {"generation": 1}}}
    )
    wait_condition(k8s_api, tenant_ns, PLURAL, "gw", "Issued", reason="Rotating")
    victim_untouched()
    write_own_secret("garbage", forged)
    wait_for(
        lambda: (v := secret_value(k8s_api, tenant_ns, "gw-key")) not in ("garbage", fresh) and v,
        60,
        "the operator to re-issue over the tampered value",
    )
    wait_condition(k8s_api, tenant_ns, PLURAL, "gw", "Ready")
    victim_untouched()

    # Finding 1: a Secret pre-created with an ownerReference to a conflicting object (its
    # keyName is the victim's), naming the victim's key as the one it replaces.
    t_custom.create_namespaced_custom_object(
        GROUP, VERSION, tenant_ns, PLURAL,
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AIGatewayCoderdKey",
         "metadata": {"name": "thief"}, "spec": {"keyName": "gw"}},
    )  # fmt: skip
    thief = wait_condition(k8s_api, tenant_ns, PLURAL, "thief", "Issued", "False", "NameConflict")
    assert f"AIGatewayCoderdKey {namespace}/gw" in condition(thief, "Issued")["message"]  # type: ignore[index]
    t_core.create_namespaced_secret(
        tenant_ns,
        client.V1Secret(
            metadata=client.V1ObjectMeta(
                name="thief-key",
                labels={"aigateway.dev/gateway-key": "thief"},
                annotations={
                    "aigateway.dev/key-id": str(uuid.uuid4()),
                    "aigateway.dev/previous-key-id": str(victim_id),
                },
                owner_references=[
                    client.V1OwnerReference(
                        api_version=f"{GROUP}/{VERSION}", kind="AIGatewayCoderdKey",
                        name="thief", uid=thief["metadata"]["uid"], controller=True,
                    )
                ],
            ),
            string_data={"key": CHOSEN},
        ),
    )  # fmt: skip
    thief = bump("thief", "2h")
    assert condition(thief, "Issued")["reason"] == "NameConflict"  # type: ignore[index]
    assert secret_value(k8s_api, tenant_ns, "thief-key") == CHOSEN  # nothing delivered
    assert not {r for r in records(op) if r[:2] == (tenant_ns, "thief")}
    victim_untouched()

    # Finding 1: the tenant deletes its objects, the forged annotations still in place.
    write_own_secret(None, forged)
    before_delete = {r[3] for r in records(op) if r[0] == tenant_ns}
    assert before_delete  # the tenant's current and previous keys
    for name in ("gw", "thief"):
        t_custom.delete_namespaced_custom_object(GROUP, VERSION, tenant_ns, PLURAL, name)

    def gone() -> bool:
        items = custom(k8s_api).list_namespaced_custom_object(GROUP, VERSION, tenant_ns, PLURAL)
        return not items["items"]

    wait_for(gone, 60, "the tenant's objects to be deleted")
    assert not {r for r in records(op) if r[0] == tenant_ns}
    assert not before_delete & {r[0] for r in rows(op)}  # only the tenant's rows went
    victim_untouched()
    assert [r[0] for r in rows(op)] == [victim_id]
