"""A release of the chart on the node environment, installed as a user installs it.

A namespace enforcing the ``restricted`` Pod Security level, the database URL and the
encryption key in Secrets, ``helm install --wait`` of the repository's chart with the built
image; ``uninstall`` removes the release (the operator's finalizers then by hand, as the
README says) and the namespace.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.operator import fresh_database
from tests.support.wait import wait_for
from tools.devenv.chart import (
    CHART,
    create_namespace,
    create_operator_secrets,
    helm,
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
class ChartRelease:
    env: DevEnv
    api: client.ApiClient
    namespace: str
    name: str
    database_url: str
    image: BuiltImage
    installed_with: dict[str, Any] = field(default_factory=dict)
    """The values given at install (beyond the environment's)."""

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


def install_release(
    env: DevEnv, api: client.ApiClient, image: BuiltImage, name: str, **values: Any
) -> ChartRelease:
    """A fresh namespace and database, the operator's two Secrets, ``helm install --wait``."""
    assert env.postgres is not None
    namespace = f"op-{uuid.uuid4().hex[:8]}"
    create_namespace(api, namespace)
    dsn = fresh_database(env.postgres)
    create_operator_secrets(api, namespace, dsn, secrets.token_bytes(32))
    rel = ChartRelease(env, api, namespace, name, dsn, image, dict(values))
    helm(
        env, "install", name, str(CHART), "--namespace", namespace, "--wait", "--timeout", "5m",
        values=rel.values(),
    )  # fmt: skip
    return rel


def remove_release(rel: ChartRelease) -> None:
    """Uninstall (if still installed), release our finalizers by hand, drop the namespace."""
    helm(rel.env, "uninstall", rel.name, "--namespace", rel.namespace, "--wait", check=False)
    custom = client.CustomObjectsApi(rel.api)
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
