"""Admission installed from the chart, on the node: the API server calls the webhook through
the chart's Service (a ``service`` reference in the chart's ValidatingWebhookConfiguration;
the local API server routes it to the pod's IP on the node bridge, see tools/devenv/kube.py),
the operator manages no configuration, and ``helm uninstall`` leaves none behind.

Tenants act with their own TokenRequest tokens and the rights of the chart's own roles (the
built-in ``edit``, which aggregates the chart's). One release (one replica) serves the module;
the failure-policy test has a release of its own, which it scales to 0 and uninstalls.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client

from aigateway_operator import __version__
from tests.support.admission import Answer, objects_path, request
from tests.support.operator import make_secret
from tests.support.release import (
    GROUP,
    VERSION,
    ChartRelease,
    crds_present,
    install_release,
    remove_crds,
    remove_release,
)
from tests.support.tenancy import Tenant, db_rows, editor
from tests.support.wait import wait_for
from tools.devenv.env import DevEnv
from tools.devenv.images import BuiltImage

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

KEY_A = "sk-test-AAAAAAAAAAAAAAAAAAAA-0001"
KEY_B = "sk-test-BBBBBBBBBBBBBBBBBBBB-0002"
HELD = "held-name"
ADMISSION = {"enabled": True}
#: One replica, probed often: ready (and so an endpoint of the webhook Service) soon after start.
FAST = {
    "replicaCount": 1,
    "startupProbe": {"periodSeconds": 1, "timeoutSeconds": 2, "failureThreshold": 120},
    "readinessProbe": {"periodSeconds": 2, "timeoutSeconds": 2, "failureThreshold": 1},
}


@dataclass
class Admitted:
    rel: ChartRelease

    @property
    def namespace(self) -> str:
        return self.rel.namespace

    def create(
        self, api: client.ApiClient, body: dict[str, Any], *, dry_run: bool = False
    ) -> Answer:
        path = objects_path(GROUP, VERSION, self.namespace, "aiproviders")
        return request(api, "POST", path, body, dry_run=dry_run)

    def get(self, name: str) -> Answer:
        path = objects_path(GROUP, VERSION, self.namespace, "aiproviders", name)
        return request(self.rel.api, "GET", path)

    def tenant(self) -> Tenant:
        """A ServiceAccount of its own with the built-in ``edit`` role (and so the chart's
        aggregated rules) in the release's namespace."""
        return editor(self.rel.api, self.namespace, sa=f"deployer-{uuid.uuid4().hex[:6]}")


def provider(name: str, *keys: str, secret: str = "llm-keys", **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AIProvider",
        "metadata": {"name": name},
        "spec": {
            "type": "openai",
            "displayName": "OpenAI",
            "apiKeys": [{"secretKeyRef": {"name": secret, "key": k}} for k in keys],
            **extra,
        },
    }


def webhook_configurations(api: client.ApiClient, fullname: str) -> list[str]:
    """Every webhook configuration, of both kinds, whose name mentions the release."""
    reg = client.AdmissionregistrationV1Api(api)
    names = [c.metadata.name for c in reg.list_validating_webhook_configuration().items]
    names += [
        f"mutating:{c.metadata.name}" for c in reg.list_mutating_webhook_configuration().items
    ]
    return [n for n in names if fullname in n]


@pytest.fixture(scope="module")
def admitted(
    node: DevEnv, node_api: client.ApiClient, operator_image: BuiltImage
) -> Iterator[Admitted]:
    # The chart installs the CRDs and keeps them on uninstall, owned by the release that made
    # them: install them only if no release did, and then remove them again afterwards.
    owns_crds = not crds_present(node_api)
    rel = install_release(
        node, node_api, operator_image, "adm", admission=ADMISSION, crds={"enabled": owns_crds},
        **FAST,
    )  # fmt: skip
    served = Admitted(rel)
    try:
        make_secret(node_api, rel.namespace, "llm-keys", {"a": KEY_A, "b": KEY_B})

        def created() -> bool:
            # 503 until the API server's informers have the webhook Service's ready endpoint
            # (helm's --wait saw the pod Ready; the endpoint reaches the API server after).
            status = served.create(node_api, provider("holder", "a", providerName=HELD)).status
            assert status in (201, 503), status
            return status == 201

        wait_for(created, 60, "the first create through the webhook")
        rel.wait_ready("aiproviders", "holder")
        # The API server calls the webhook once its informers have the configuration and the
        # Service's endpoint: a second claim of the held name is denied.
        wait_for(
            lambda: (
                served.create(
                    node_api, provider("probe", "a", providerName=HELD), dry_run=True
                ).status
                == 403
            ),
            60,
            "the API server to call the webhook through the Service",
        )
        yield served
    finally:
        remove_release(rel)
        if owns_crds:
            remove_crds(node_api)


def test_the_chart_owns_one_configuration_that_calls_the_service(admitted: Admitted) -> None:
    rel = admitted.rel
    name = f"{rel.fullname}.aigateway.dev"
    cfg = client.AdmissionregistrationV1Api(rel.api).read_validating_webhook_configuration(name)
    assert cfg.metadata.labels["app.kubernetes.io/managed-by"] == "Helm"
    for hook in cfg.webhooks:
        assert hook.client_config.url is None
        service = hook.client_config.service
        assert (service.name, service.namespace, service.port) == (
            f"{rel.fullname}-webhook",
            rel.namespace,
            443,
        )
        assert hook.namespace_selector.match_expressions[0].values == [rel.namespace]
    # The operator made none of its own (kopf's managed mode is off in the chart).
    assert webhook_configurations(rel.api, rel.fullname) == [name]


def test_a_tenants_server_dry_run_shows_the_masked_plan(admitted: Admitted) -> None:
    tenant = admitted.tenant()
    answer = admitted.create(tenant.api, provider("planned", "a", "b"), dry_run=True)
    assert answer.status == 201, answer
    print("\n" + "\n".join(f"Warning: {w}" for w in answer.warnings))
    assert answer.plans() == [
        "plan: create provider 'planned' (type openai, 2 keys: sk-t...0001, sk-t...0002)"
    ]
    text = "\n".join(answer.warnings)
    assert KEY_A not in text
    assert KEY_B not in text
    assert admitted.get("planned").status == 404  # a dry run stores nothing


def test_a_held_name_is_denied_naming_the_holder(admitted: Admitted) -> None:
    tenant = admitted.tenant()
    answer = admitted.create(tenant.api, provider("second", "a", providerName=HELD))
    assert answer.status == 403, answer
    assert f"spec.providerName '{HELD}'" in answer.message
    assert f"AIProvider {admitted.namespace}/holder" in answer.message
    assert "validate-aiprovider." in answer.message  # the chart's webhook answered
    assert admitted.get("second").status == 404


def _audit_row(dsn: str, name: str) -> tuple[Any, ...] | None:
    rows = db_rows(
        dsn,
        "SELECT user_agent, additional_fields FROM audit_logs WHERE resource_type = "
        "'ai_provider' AND resource_target = %s AND action = 'create'",
        (name,),
    )
    return rows[0] if rows else None


def test_coders_audit_row_names_the_service_account(admitted: Admitted) -> None:
    tenant = admitted.tenant()
    who = f"system:serviceaccount:{tenant.namespace}:{tenant.name}"
    created = admitted.create(tenant.api, provider("by-tenant", "b"))
    assert created.status == 201, created
    dsn = admitted.rel.database_url
    row = wait_for(lambda: _audit_row(dsn, "by-tenant"), 90, "the audit row of the create")
    agent, extra = row
    print("\naudit row:\n" + json.dumps({"user_agent": agent, "additional_fields": extra}))
    assert agent == f"aigateway-operator/{__version__} (kubernetes: {who})"
    kubernetes = extra["kubernetes"]
    assert (kubernetes["actor"], kubernetes["actor_source"]) == (who, "admission")
    assert kubernetes["uid"] == created.body["metadata"]["uid"]


def test_a_repeated_event_bumps_its_count(admitted: Admitted) -> None:
    """The operator's pod, with the chart's ServiceAccount, posts an Event once and PATCHes
    its count when the same Event happens again (the chart grants ``patch`` on Events)."""
    rel = admitted.rel
    assert admitted.create(rel.api, provider("waits", "x", secret="absent")).status == 201
    core = client.CoreV1Api(rel.api)
    selector = "involvedObject.name=waits,reason=SecretNotFound"

    def events() -> list[client.CoreV1Event]:
        return list(core.list_namespaced_event(rel.namespace, field_selector=selector).items)

    first = wait_for(events, 90, "the first SecretNotFound Event")[0]
    # Ask for another pass: the same condition, so the same Event again.
    client.CustomObjectsApi(rel.api).patch_namespaced_custom_object(
        GROUP, VERSION, rel.namespace, "aiproviders", "waits",
        {"metadata": {"annotations": {"aigateway.dev/reconcile": "again"}}},
    )  # fmt: skip
    bumped = wait_for(
        lambda: [e for e in events() if (e.count or 0) > (first.count or 0)],
        90,
        "the Event's count to go up",
    )
    assert bumped[0].metadata.name == first.metadata.name
    assert len(events()) == 1, [(e.metadata.name, e.count) for e in events()]  # one, aggregated
    assert bumped[0].source.component == "aigateway-operator"


def test_failure_policy_follows_helm_upgrade_and_uninstall_leaves_no_configuration(
    admitted: Admitted, node: DevEnv, node_api: client.ApiClient, operator_image: BuiltImage
) -> None:
    # A release of its own, on the node and the CRDs of the module's release.
    rel = install_release(
        node, node_api, operator_image, "adm-fp", admission=ADMISSION, crds={"enabled": False},
        **FAST,
    )  # fmt: skip
    served = Admitted(rel)
    name = f"{rel.fullname}.aigateway.dev"
    reg = client.AdmissionregistrationV1Api(node_api)
    try:
        make_secret(node_api, rel.namespace, "llm-keys", {"a": KEY_A})
        wait_for(
            lambda: served.create(node_api, provider("p0", "a"), dry_run=True).plans(),
            60,
            "the webhook to answer (a plan)",
        )

        # Fail, and nobody answers: every create is refused.
        rel.upgrade(replicaCount=0, admission={**ADMISSION, "failurePolicy": "Fail"})
        policies = {
            h.failure_policy for h in reg.read_validating_webhook_configuration(name).webhooks
        }
        assert policies == {"Fail"}
        refused = wait_for(
            lambda: (
                (a := served.create(node_api, provider("p1", "a"), dry_run=True)).status != 201
                and a
            ),
            60,
            "a create to be refused while no replica answers",
        )
        assert refused.status >= 500, refused
        assert "failed calling webhook" in refused.message, refused.message
        assert served.get("p1").status == 404

        # Ignore: the same create is admitted, unchecked.
        rel.upgrade(replicaCount=0, admission={**ADMISSION, "failurePolicy": "Ignore"})
        admitted = wait_for(
            lambda: (a := served.create(node_api, provider("p1", "a"))).status == 201 and a,
            60,
            "a create to be admitted under Ignore",
        )
        assert not admitted.plans()  # nobody checked it
        finalizers = admitted.body["metadata"].get("finalizers") or []
        assert finalizers, "the chart's finalizer policy added the operator's finalizer"

        # Uninstall under Fail: the configuration goes with the release.
        rel.upgrade(replicaCount=0, admission={**ADMISSION, "failurePolicy": "Fail"})
        rel.uninstall()
        assert webhook_configurations(node_api, rel.fullname) == []
        # Nothing is called any more: a create is stored, the README's finalizer patch works.
        wait_for(
            lambda: served.create(node_api, provider("p2", "a")).status == 201,
            30,
            "a create to be stored without any webhook (the API server's informer to drop it)",
        )
        client.CustomObjectsApi(node_api).patch_namespaced_custom_object(
            GROUP, VERSION, rel.namespace, "aiproviders", "p1", {"metadata": {"finalizers": []}}
        )
    finally:
        remove_release(rel)
