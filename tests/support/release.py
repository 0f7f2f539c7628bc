"""A release of the chart on the node environment, installed as a user installs it: the one
install/upgrade/uninstall helper of the node tests.

:func:`operator_namespace` makes what a release needs before ``helm install``: a namespace
enforcing the ``restricted`` Pod Security level, a fresh database, and the database URL and
encryption key in the two Secrets the chart references (the GitOps test, which applies the
rendered chart itself instead of ``helm install``, uses it alone). :func:`install_release`
adds ``helm install --wait`` of the repository's chart with the built image;
:meth:`ChartRelease.upgrade` and :func:`remove_release` (uninstall, the operator's finalizers
then by hand as the README says, the namespace) complete it.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.operator import ALLOW_ALL, condition, fresh_database
from tests.support.wait import wait_for
from tools.devenv.chart import (
    CHART,
    create_namespace,
    create_operator_secrets,
    helm,
    operator_pods,
    operator_values,
)
from tools.devenv.env import DevEnv
from tools.devenv.images import BuiltImage

GROUP, VERSION = "aigateway.dev", "v1alpha1"
PLURALS = ("aiproviders", "aigatewaycoderdkeys")
CRDS = tuple(f"{plural}.{GROUP}" for plural in PLURALS)


def crds_present(api: client.ApiClient) -> bool:
    """Whether the two CRDs exist (another release installed them, and keeps them)."""
    names = {
        c.metadata.name
        for c in client.ApiextensionsV1Api(api).list_custom_resource_definition().items
    }
    return set(CRDS) <= names


def remove_crds(api: client.ApiClient, timeout: float = 60) -> None:
    """Delete the two CRDs (the chart keeps them on uninstall) and wait until they are gone,
    so that a later release can install them as its own."""
    ext = client.ApiextensionsV1Api(api)
    for name in CRDS:
        try:
            ext.delete_custom_resource_definition(name)
        except ApiException as exc:
            if exc.status != 404:
                raise
    wait_for(lambda: not _any_crd(ext), timeout, "the CRDs to be deleted")


def _any_crd(ext: client.ApiextensionsV1Api) -> bool:
    return bool({c.metadata.name for c in ext.list_custom_resource_definition().items} & set(CRDS))


@dataclass
class OperatorNamespace:
    """A namespace ready for a release: its database and the key in the chart's Secrets."""

    namespace: str
    database_url: str
    key: bytes


def operator_namespace(env: DevEnv, api: client.ApiClient, prefix: str = "op") -> OperatorNamespace:
    """A fresh namespace enforcing ``restricted``, a fresh database, the two Secrets."""
    assert env.postgres is not None
    namespace = f"{prefix}-{uuid.uuid4().hex[:8]}"
    create_namespace(api, namespace)
    key = secrets.token_bytes(32)
    dsn = fresh_database(env.postgres)
    create_operator_secrets(api, namespace, dsn, key)
    return OperatorNamespace(namespace, dsn, key)


@dataclass
class ChartRelease:
    env: DevEnv
    api: client.ApiClient
    namespace: str
    name: str
    database_url: str
    key: bytes
    image: BuiltImage
    installed_with: dict[str, Any] = field(default_factory=dict)
    """The values given at install (beyond the environment's)."""

    # --- the release ----------------------------------------------------------------------

    @property
    def fullname(self) -> str:
        return f"{self.name}-aigateway-operator"

    def values(self, **overrides: Any) -> dict[str, Any]:
        merged = {**self.installed_with, **overrides}
        return operator_values(self.env, self.image, self.namespace, **merged)

    def upgrade(self, **overrides: Any) -> None:
        """``helm upgrade --wait`` with the install's values, top-level keys of ``overrides``
        replacing theirs."""
        helm(
            self.env, "upgrade", self.name, str(CHART), "--namespace", self.namespace,
            "--wait", "--timeout", "5m", values=self.values(**overrides),
        )  # fmt: skip

    def uninstall(self) -> None:
        helm(self.env, "uninstall", self.name, "--namespace", self.namespace, "--wait")

    def pods(self) -> list[client.V1Pod]:
        return operator_pods(self.api, self.namespace, self.name)

    def logs(self, tail: int) -> list[str]:
        core = client.CoreV1Api(self.api)
        return [
            f"--- {p.metadata.name}\n"
            + core.read_namespaced_pod_log(p.metadata.name, self.namespace, tail_lines=tail)
            for p in self.pods()
        ]

    # --- its objects and its database -----------------------------------------------------

    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    def get(self, plural: str, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom().get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, name
        )
        return obj

    def apply(self, kind: str, plural: str, name: str, spec: dict[str, Any]) -> None:
        self.custom().create_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            plural,
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": kind,
                "metadata": {"name": name},
                "spec": spec,
            },
        )

    def wait_ready(self, plural: str, name: str, timeout: float = 120) -> dict[str, Any]:
        """The object once its Ready condition is True for its current generation."""

        def ready() -> dict[str, Any] | None:
            obj = self.get(plural, name)
            c = condition(obj, "Ready")
            gen = obj["metadata"]["generation"]
            ok = c and c["status"] == "True" and c.get("observedGeneration") == gen
            return obj if ok else None

        try:
            return wait_for(ready, timeout, f"{plural}/{name} Ready")
        except AssertionError as exc:
            status = self.get(plural, name).get("status")
            logs = "\n".join(self.logs(40))
            raise AssertionError(f"{exc}\nstatus: {status}\npod logs:\n{logs}") from None

    def secret(self, name: str, data: dict[str, str]) -> None:
        """A Secret AIProviders may use (the chart's default secretAccess is "annotated")."""
        client.CoreV1Api(self.api).create_namespaced_secret(
            self.namespace,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name=name, annotations=ALLOW_ALL),
                string_data=data,
            ),
        )

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def execute(self, sql: str) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]


def install_release(
    env: DevEnv,
    api: client.ApiClient,
    image: BuiltImage,
    name: str,
    *,
    prefix: str = "op",
    llm_keys: dict[str, str] | None = None,
    **values: Any,
) -> ChartRelease:
    """:func:`operator_namespace`, ``llm_keys`` (if given) as the ``llm-keys`` Secret (for
    objects bundled through ``providers:``), then ``helm install --wait`` with ``values``."""
    ns = operator_namespace(env, api, prefix)
    rel = ChartRelease(env, api, ns.namespace, name, ns.database_url, ns.key, image, dict(values))
    try:
        if llm_keys:
            rel.secret("llm-keys", llm_keys)
        helm(
            env, "install", name, str(CHART), "--namespace", ns.namespace, "--wait",
            "--timeout", "5m", values=rel.values(),
        )  # fmt: skip
    except BaseException:
        remove_release(rel)  # nothing is left behind by a failed install
        raise
    return rel


def remove_release(rel: ChartRelease) -> None:
    """Uninstall (if still installed), release our finalizers by hand, drop the namespace."""
    helm(rel.env, "uninstall", rel.name, "--namespace", rel.namespace, "--wait", check=False)
    custom = rel.custom()
    for plural in PLURALS:
        for obj in custom.list_namespaced_custom_object(GROUP, VERSION, rel.namespace, plural)[
            "items"
        ]:
            try:
                custom.patch_namespaced_custom_object(
                    GROUP, VERSION, rel.namespace, plural, obj["metadata"]["name"],
                    {"metadata": {"finalizers": []}},
                )  # fmt: skip
            except ApiException as exc:
                if exc.status != 404:
                    raise
    client.CoreV1Api(rel.api).delete_namespace(rel.namespace)
