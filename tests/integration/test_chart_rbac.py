"""The chart applied to the real API server: every object is accepted, and its RBAC allows
exactly what the operator needs, asked the way ``kubectl auth can-i`` asks (access reviews
as the chart's own ServiceAccount token)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from aigateway_operator.kube.calls import CALLS, ApiCall
from tests.support.wait import wait_for
from tools.devenv.helm import (
    apply_manifests,
    ensure_helm,
    remove_cluster_scoped,
    render_chart,
    service_account_kubeconfig,
)

pytestmark = pytest.mark.integration

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "aigateway-operator"


@pytest.fixture(scope="session")
def helm() -> Path:
    return ensure_helm()


def base_values(**extra: Any) -> dict[str, Any]:
    return {"database": {"existingSecret": {"name": "coder-db"}}, **extra}


@pytest.fixture
def install(
    helm: Path, k8s_api: client.ApiClient, namespace: str
) -> Iterator[Callable[..., list[dict[str, Any]]]]:
    """Render the chart into the test namespace and apply it; remove cluster-scoped leftovers."""
    applied: list[dict[str, Any]] = []

    def run(values: dict[str, Any]) -> list[dict[str, Any]]:
        docs = render_chart(CHART, namespace, namespace, values, helm=helm)
        apply_manifests(k8s_api, docs)
        applied.extend(docs)
        return docs

    yield run
    remove_cluster_scoped(k8s_api, applied)


def new_namespace(k8s_api: client.ApiClient) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    client.CoreV1Api(k8s_api).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name))
    )
    return name


class CanI:
    """``kubectl auth can-i`` as a given token: SelfSubjectAccessReview."""

    def __init__(self, api: client.ApiClient) -> None:
        self.authz = client.AuthorizationV1Api(api)

    def __call__(
        self,
        verb: str,
        resource: str,
        namespace: str | None = None,
        group: str = "",
        name: str | None = None,
        subresource: str | None = None,
    ) -> bool:
        review = self.authz.create_self_subject_access_review(
            client.V1SelfSubjectAccessReview(
                spec=client.V1SelfSubjectAccessReviewSpec(
                    resource_attributes=client.V1ResourceAttributes(
                        verb=verb,
                        resource=resource,
                        group=group,
                        namespace=namespace,
                        name=name,
                        subresource=subresource,
                    )
                )
            )
        )
        return bool(review.status.allowed)


@pytest.fixture
def as_chart_sa(
    k8s_api: client.ApiClient, namespace: str, tmp_path: Path
) -> Iterator[Callable[[], CanI]]:
    apis: list[client.ApiClient] = []

    def make() -> CanI:
        from kubernetes import config

        path = service_account_kubeconfig(
            k8s_api, namespace, f"{namespace}-aigateway-operator", tmp_path / "sa.kubeconfig"
        )
        api = config.new_client_from_config(config_file=str(path))
        apis.append(api)
        return CanI(api)

    yield make
    for api in apis:
        api.close()


G = "aigateway.dev"


def _allowed(can: CanI, call: ApiCall, namespace: str | None, peering: str) -> bool:
    return can(
        call.verb,
        call.resource,
        namespace,
        call.group,
        name=peering if call.named else None,
        subresource=call.subresource or None,
    )


def _calls_of(mode: str, *, admission: bool) -> list[ApiCall]:
    """The operator's own table of calls (kube/calls.py) that an install of ``mode`` makes
    (the webhook's own calls only with ``admission``)."""
    import aigateway_operator.kube  # noqa: F401 - importing the package declares every call

    calls = [c for c in CALLS if c.mode in ("any", mode) and (admission or not c.admission)]
    # The table is the code's: it names the calls these tests once listed by hand.
    assert {(c.verb, c.resource) for c in calls} >= {
        ("get", "secrets"),
        ("watch", "secrets"),
        ("create", "events"),
        ("patch", "events"),
        ("patch", "aiproviders"),
    }
    return calls


def test_every_call_the_operator_makes_is_granted_in_a_namespaced_install(
    install: Callable[..., list[dict[str, Any]]],
    as_chart_sa: Callable[[], CanI],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    served = new_namespace(k8s_api)
    try:
        install(base_values(watchNamespaces=[served], admission={"enabled": True}))
        can = as_chart_sa()
        peering = f"{namespace}-aigateway-operator"
        refused = [
            c
            for c in _calls_of("namespaced", admission=True)
            if not _allowed(can, c, served, peering)
        ]
        assert refused == [], f"the chart's Role refuses calls the operator makes: {refused}"
        # Admission adds no webhook-configuration right: the chart owns the configuration.
        for verb in ("create", "get", "patch"):
            for resource in ("validatingwebhookconfigurations", "mutatingwebhookconfigurations"):
                assert not can(verb, resource, None, "admissionregistration.k8s.io")
    finally:
        client.CoreV1Api(k8s_api).delete_namespace(served)


def test_every_call_the_operator_makes_is_granted_in_a_cluster_wide_install(
    install: Callable[..., list[dict[str, Any]]],
    as_chart_sa: Callable[[], CanI],
    namespace: str,
) -> None:
    install(base_values())
    can = as_chart_sa()
    peering = f"{namespace}-aigateway-operator"
    # Cluster-wide: every call in any namespace (None: across all of them, as its watches).
    refused = [
        (c, ns)
        for c in _calls_of("cluster-wide", admission=False)
        for ns in (None, "anywhere")
        if not (c.named and ns) and not _allowed(can, c, ns, peering)
    ]
    assert refused == [], f"the chart's ClusterRole refuses calls the operator makes: {refused}"
    assert not can(
        "create", "validatingwebhookconfigurations", None, "admissionregistration.k8s.io"
    )


def test_namespaced_install_grants_only_the_served_namespaces(
    install: Callable[..., list[dict[str, Any]]],
    as_chart_sa: Callable[[], CanI],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    served = new_namespace(k8s_api)
    other = new_namespace(k8s_api)
    try:
        docs = install(base_values(watchNamespaces=[served]))
        assert {d["kind"] for d in docs} >= {"Deployment", "Role", "KopfPeering", "ServiceAccount"}
        can = as_chart_sa()
        peering = f"{namespace}-aigateway-operator"

        for verb in ("get", "list", "watch", "patch"):
            assert can(verb, "aiproviders", served, G)
            assert can(verb, "aigatewaycoderdkeys", served, G)
        assert can("patch", "aiproviders", served, G, subresource="status")
        for verb in ("get", "list", "watch", "create", "update", "patch", "delete"):
            assert can(verb, "secrets", served)
        assert can("create", "events", served)
        assert can("patch", "events", served)  # a repeated Event bumps its count
        assert can("create", "events", served, "events.k8s.io")
        assert can("list", "kopfpeerings", served, "kopf.dev")
        assert can("patch", "kopfpeerings", served, "kopf.dev", name=peering)
        # Restart on rotation: find opted-in workloads, stamp their pod template.
        for resource in ("deployments", "statefulsets"):
            for verb in ("get", "list", "patch"):
                assert can(verb, resource, served, "apps"), (verb, resource)
            for verb in ("create", "update", "delete", "watch"):
                assert not can(verb, resource, served, "apps"), (verb, resource)
            assert not can("patch", resource, other, "apps")
        assert not can("patch", "daemonsets", served, "apps")

        # Nothing it does not need, even where it works.
        assert not can("patch", "kopfpeerings", served, "kopf.dev", name="someone-else")
        assert not can("delete", "aiproviders", served, G)
        assert not can("create", "aiproviders", served, G)
        assert not can("update", "aiproviders", served, G)
        assert not can("get", "pods", served)
        assert not can("create", "pods", served)
        # Nothing outside the served namespace: not its own, not another, not cluster-wide.
        for ns in (other, namespace):
            for verb in ("get", "list", "watch", "create", "delete"):
                assert not can(verb, "secrets", ns), (verb, ns)
            assert not can("list", "aiproviders", ns, G)
        assert not can("list", "secrets")  # all namespaces
        assert not can("delete", "secrets")
        assert not can("list", "aiproviders", None, G)
        assert not can("list", "namespaces")
        assert not can("list", "customresourcedefinitions", None, "apiextensions.k8s.io")
        assert not can("list", "clusterkopfpeerings", None, "kopf.dev")
    finally:
        for ns in (served, other):
            client.CoreV1Api(k8s_api).delete_namespace(ns)


def test_cluster_wide_install(
    install: Callable[..., list[dict[str, Any]]],
    as_chart_sa: Callable[[], CanI],
    namespace: str,
) -> None:
    docs = install(base_values(rbac={"manageGatewayKeySecrets": False}))
    assert {d["kind"] for d in docs} >= {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering"}
    can = as_chart_sa()
    peering = f"{namespace}-aigateway-operator"
    assert can("list", "aiproviders", None, G)
    assert can("watch", "secrets")
    assert can("patch", "aigatewaycoderdkeys", "anywhere", G, subresource="status")
    assert can("patch", "clusterkopfpeerings", None, "kopf.dev", name=peering)
    assert can("patch", "deployments", "anywhere", "apps")
    assert can("list", "statefulsets", "anywhere", "apps")
    assert not can("delete", "deployments", "anywhere", "apps")
    assert not can("patch", "clusterkopfpeerings", None, "kopf.dev", name="other")
    # Secret writes were turned off: read-only on Secrets.
    assert not can("create", "secrets", "anywhere")
    assert not can("delete", "secrets", "anywhere")
    assert not can("patch", "secrets", "anywhere")
    assert not can("delete", "aiproviders", "anywhere", G)
    assert not can("list", "pods")
    assert not can("list", "namespaces")
    assert not can("create", "customresourcedefinitions", None, "apiextensions.k8s.io")


def _bind(rbac: client.RbacAuthorizationV1Api, namespace: str, user: str, role: str) -> None:
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name=f"{user}-{role}"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role
            ),
            subjects=[
                client.RbacV1Subject(kind="User", name=user, api_group="rbac.authorization.k8s.io")
            ],
        ),
    )


def _user_can(
    api: client.ApiClient,
    user: str,
    namespace: str,
    verb: str,
    resource: str,
    subresource: str | None = None,
) -> bool:
    review = client.AuthorizationV1Api(api).create_subject_access_review(
        client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=user,
                resource_attributes=client.V1ResourceAttributes(
                    verb=verb,
                    resource=resource,
                    group=G,
                    namespace=namespace,
                    subresource=subresource,
                ),
            )
        )
    )
    return bool(review.status.allowed)


def test_user_roles_grant_view_and_edit_and_match_the_aggregation_selectors(
    install: Callable[..., list[dict[str, Any]]],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    docs = install(base_values(watchNamespaces=[namespace]))
    rbac = client.RbacAuthorizationV1Api(k8s_api)
    ours = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterRole"}
    view, edit = f"{namespace}-aigateway-operator-view", f"{namespace}-aigateway-operator-edit"
    # The built-in roles select ours by label (what the aggregation controller acts on).
    for builtin, role in (("view", view), ("edit", view), ("edit", edit), ("admin", edit)):
        rule = rbac.read_cluster_role(builtin).aggregation_rule
        selectors = [s.match_labels or {} for s in rule.cluster_role_selectors]
        labels = ours[role]["metadata"]["labels"]
        assert any(sel.items() <= labels.items() for sel in selectors), (builtin, role)
    _bind(rbac, namespace, "viewer", view)
    _bind(rbac, namespace, "editor", view)
    _bind(rbac, namespace, "editor", edit)

    def can(user: str, verb: str, resource: str, subresource: str | None = None) -> bool:
        return _user_can(k8s_api, user, namespace, verb, resource, subresource)

    assert can("viewer", "list", "aiproviders")
    assert can("viewer", "get", "aigatewaycoderdkeys")
    assert not can("viewer", "create", "aiproviders")
    assert can("editor", "create", "aiproviders")
    assert can("editor", "delete", "aigatewaycoderdkeys")
    assert can("editor", "list", "aiproviders")
    assert not can("editor", "patch", "aiproviders", "status")  # status is the operator's


def test_builtin_view_and_edit_aggregate_our_roles(
    install: Callable[..., list[dict[str, Any]]],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    install(base_values(watchNamespaces=[namespace]))
    rbac = client.RbacAuthorizationV1Api(k8s_api)

    def aggregated(role: str, verb: str) -> bool:
        rules = rbac.read_cluster_role(role).rules or []
        return any("aiproviders" in (r.resources or []) and verb in (r.verbs or []) for r in rules)

    # The verb matters: ``edit`` aggregates ``view`` too, so our read rules can reach it before
    # our write rules do. Aggregation takes well under a second when the controller works.
    wait_for(
        lambda: aggregated("view", "list") and aggregated("edit", "create"),
        10,
        "view/edit aggregation",
    )
    _bind(rbac, namespace, "builtin-viewer", "view")
    _bind(rbac, namespace, "builtin-editor", "edit")
    assert _user_can(k8s_api, "builtin-viewer", namespace, "list", "aiproviders")
    assert not _user_can(k8s_api, "builtin-viewer", namespace, "create", "aiproviders")
    assert _user_can(k8s_api, "builtin-editor", namespace, "create", "aiproviders")
