"""Tenants on the real API server: ServiceAccounts holding namespaced Roles, acting only with
their own TokenRequest tokens, and what the tenancy tests read back from Coder's database.

Two tenants, as issue #13's adversarial run had them:

- an **editor**: the built-in ``edit`` ClusterRole bound in its namespace, extended by the
  chart's aggregated ClusterRoles (what ``helm install`` gives every namespace editor);
- an **AIProvider-only user**: a Role allowing AIProviders and nothing else (no Secrets).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.rbac import client_with_token, sa_token
from tests.support.wait import wait_for
from tools.devenv.helm import apply_manifests, ensure_helm, remove_cluster_scoped, render_chart

GROUP, VERSION = "aigateway.dev", "v1alpha1"
CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "aigateway-operator"
RBAC = "rbac.authorization.k8s.io"


@dataclass
class Tenant:
    """A ServiceAccount acting with its own token (never the admin's)."""

    namespace: str
    name: str
    api: client.ApiClient

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    def apply(self, plural: str, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        kind = {"aiproviders": "AIProvider", "aigatewaycoderdkeys": "AIGatewayCoderdKey"}[plural]
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": kind,
            "metadata": {"name": name},
            "spec": dict(spec),
        }
        obj: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, body
        )
        return obj

    def delete(self, plural: str, name: str) -> None:
        try:
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, self.namespace, plural, name
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    def patch(self, plural: str, name: str, patch: Mapping[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, name, dict(patch)
        )

    def can_read_secret(self, name: str) -> bool:
        try:
            self.core.read_namespaced_secret(name, self.namespace)
        except ApiException as exc:
            if exc.status == 403:
                return False
            raise
        return True


def _bind(rbac: client.RbacAuthorizationV1Api, ns: str, sa: str, kind: str, role: str) -> None:
    rbac.create_namespaced_role_binding(
        ns,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name=f"{sa}-{role}"),
            role_ref=client.V1RoleRef(api_group=RBAC, kind=kind, name=role),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name=sa, namespace=ns)],
        ),
    )


def _allowed(k8s_api: client.ApiClient, ns: str, sa: str, verb: str, resource: str) -> bool:
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=f"system:serviceaccount:{ns}:{sa}",
            groups=["system:serviceaccounts", f"system:serviceaccounts:{ns}"],
            resource_attributes=client.V1ResourceAttributes(
                namespace=ns, verb=verb, group=GROUP, resource=resource
            ),
        )
    )
    result = client.AuthorizationV1Api(k8s_api).create_subject_access_review(review)
    return bool(result.status.allowed)


def _service_account(k8s_api: client.ApiClient, ns: str, sa: str) -> None:
    client.CoreV1Api(k8s_api).create_namespaced_service_account(
        ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=sa))
    )


def editor(k8s_api: client.ApiClient, namespace: str, sa: str = "editor") -> Tenant:
    """A namespace editor: ``edit`` (with the chart's aggregated rules, see
    :func:`aggregated_roles`) bound in ``namespace``."""
    _service_account(k8s_api, namespace, sa)
    _bind(client.RbacAuthorizationV1Api(k8s_api), namespace, sa, "ClusterRole", "edit")
    # The aggregation controller folds the chart's rules into ``edit`` asynchronously.
    wait_for(
        lambda: _allowed(k8s_api, namespace, sa, "create", "aiproviders"),
        60,
        "the chart's rules to be aggregated into the edit role",
    )
    return Tenant(namespace, sa, client_with_token(k8s_api, sa_token(k8s_api, namespace, sa)))


def providers_only(
    k8s_api: client.ApiClient,
    namespace: str,
    sa: str = "author",
    readable_secrets: Sequence[str] = (),
) -> Tenant:
    """A user allowed AIProviders (and reading their status) and nothing else: no Secrets,
    except ``get`` on the Secrets ``readable_secrets`` names (the ones it deploys with)."""
    _service_account(k8s_api, namespace, sa)
    rbac = client.RbacAuthorizationV1Api(k8s_api)
    rules = [
        client.V1PolicyRule(
            api_groups=[GROUP],
            resources=["aiproviders", "aiproviders/status"],
            verbs=["get", "list", "watch", "create", "update", "patch", "delete"],
        )
    ]
    if readable_secrets:
        rules.append(
            client.V1PolicyRule(
                api_groups=[""],
                resources=["secrets"],
                resource_names=list(readable_secrets),
                verbs=["get"],
            )
        )
    role = f"aiproviders-only-{sa}"
    rbac.create_namespaced_role(
        namespace, client.V1Role(metadata=client.V1ObjectMeta(name=role), rules=rules)
    )
    _bind(rbac, namespace, sa, "Role", role)
    return Tenant(namespace, sa, client_with_token(k8s_api, sa_token(k8s_api, namespace, sa)))


@contextmanager
def aggregated_roles(k8s_api: client.ApiClient) -> Iterator[None]:
    """The chart's ClusterRoles that aggregate into ``view``/``edit``/``admin``, applied under
    a release name of their own and removed afterwards."""
    values = {"database": {"existingSecret": {"name": "db"}}}
    release = f"tn-{uuid.uuid4().hex[:6]}"
    docs = render_chart(CHART, release, "ops", values, include_crds=False, helm=ensure_helm())
    roles = [
        d
        for d in docs
        if d["kind"] == "ClusterRole"
        and any(k.startswith(f"{RBAC}/aggregate-to-") for k in d["metadata"].get("labels", {}))
    ]
    assert roles, "the chart renders aggregated ClusterRoles"
    apply_manifests(k8s_api, roles)
    try:
        yield
    finally:
        remove_cluster_scoped(k8s_api, roles)


@contextmanager
def extra_namespace(k8s_api: client.ApiClient) -> Iterator[str]:
    """Another namespace for the test (deleted afterwards)."""
    core = client.CoreV1Api(k8s_api)
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        core.delete_namespace(name)


# --- Coder's database, read back --------------------------------------------------------------


def db_rows(dsn: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(sql, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def wait_schema(dsn: str, timeout: float = 60) -> None:
    """Wait until an operator started on ``dsn`` has created Coder's tables and its own."""

    def ready() -> bool:
        sql = "SELECT to_regclass('ai_providers'), to_regclass('aigateway_operator.owners')"
        return all(db_rows(dsn, sql)[0])

    wait_for(ready, timeout, "the operator's schema")


def provider_row(dsn: str, name: str) -> tuple[Any, ...] | None:
    """``(id, type, base_url, display_name, deleted)`` of the live provider ``name``."""
    rows = db_rows(
        dsn,
        "SELECT id, type::text, base_url, display_name, deleted FROM ai_providers "
        "WHERE name = %s AND NOT deleted",
        (name,),
    )
    assert len(rows) <= 1, rows
    return rows[0] if rows else None


def key_count(dsn: str, provider_id: Any) -> int:
    sql = "SELECT count(*) FROM ai_provider_keys WHERE provider_id = %s"
    return int(db_rows(dsn, sql, (provider_id,))[0][0])


def owner_records(dsn: str) -> list[tuple[str, str, str]]:
    """``(instance, namespace, name)`` of every provider ownership record."""
    return [
        (str(i), str(ns), str(n))
        for i, ns, n in db_rows(
            dsn,
            "SELECT instance_id, namespace, name FROM aigateway_operator.owners "
            "WHERE row_table = 'ai_providers' ORDER BY 1, 2, 3",
        )
    ]


def snapshot(dsn: str) -> list[list[tuple[Any, ...]]]:
    """Every provider, key and ownership row and the audit log's length: 'untouched' means
    equal snapshots."""
    return [
        db_rows(dsn, "SELECT * FROM ai_providers ORDER BY id"),
        db_rows(dsn, "SELECT * FROM ai_provider_keys ORDER BY id"),
        db_rows(dsn, "SELECT * FROM aigateway_operator.owners ORDER BY row_table, row_id"),
        db_rows(dsn, "SELECT count(*) FROM audit_logs"),
    ]


def actor_records(dsn: str, namespace: str, name: str) -> list[tuple[str, int, str]]:
    """``(object_uid, generation, actor)`` the webhook recorded for an object."""
    return [
        (str(uid), int(gen), str(actor))
        for uid, gen, actor in db_rows(
            dsn,
            "SELECT object_uid, generation, actor FROM aigateway_operator.actors "
            "WHERE namespace = %s AND name = %s ORDER BY generation",
            (namespace, name),
        )
    ]


def token_of(tenant: Tenant) -> str:
    """The bearer token a tenant's client authenticates with."""
    value = str(tenant.api.configuration.api_key["authorization"])
    return value.removeprefix("Bearer ")
