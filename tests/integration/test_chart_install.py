"""The chart installed with the real ``helm`` CLI against real API servers, each path a user
takes: a fresh cluster in one step, ``--dry-run=server`` on a fresh cluster, an install after
the CRDs were applied outside Helm (with objects bundled in values), and ``helm uninstall``
leaving the CRDs and the bundled objects (and so Coder's rows) in place.

"Fresh" means fresh: those tests start their own etcd + kube-apiserver (the session's cluster
already has the CRDs, applied the way ``kubectl apply`` would).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.support.helm import HelmCli
from tests.support.wait import wait_for
from tools.devenv import build, kube
from tools.devenv.helm import apply_manifests, ensure_helm

pytestmark = pytest.mark.integration

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "aigateway-operator"
OUR_CRDS = ("aiproviders.aigateway.dev", "aigatewaycoderdkeys.aigateway.dev")
GROUP, VERSION = "aigateway.dev", "v1alpha1"
KEEP = {"helm.sh/resource-policy": "keep"}


def values(namespace: str, **extra: Any) -> dict[str, Any]:
    return {
        "database": {"existingSecret": {"name": "coder-db"}},
        "encryption": {"existingSecret": {"name": "coder-keys"}},
        # The finalizer policy would give objects a finalizer no operator here releases.
        "finalizerPolicy": {"enabled": False},
        "watchNamespaces": [namespace],
        **extra,
    }


BUNDLED = {
    "providers": [
        {
            "name": "openai",
            "spec": {
                "type": "openai",
                "apiKeys": [{"secretKeyRef": {"name": "llm-keys", "key": "openai"}}],
            },
        }
    ],
    "gatewayKeys": [{"name": "gateway-eu", "spec": {"rotation": {"every": "720h"}}}],
}


@dataclass
class Cluster:
    api: client.ApiClient
    helm: HelmCli

    def crd_names(self) -> set[str]:
        crds = client.ApiextensionsV1Api(self.api).list_custom_resource_definition().items
        return {c.metadata.name for c in crds}

    def crd(self, name: str) -> Any:
        return client.ApiextensionsV1Api(self.api).read_custom_resource_definition(name)

    def objects(self, namespace: str, plural: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = client.CustomObjectsApi(
            self.api
        ).list_namespaced_custom_object(GROUP, VERSION, namespace, plural)["items"]
        return items

    def namespace(self) -> str:
        name = f"t-{uuid.uuid4().hex[:10]}"
        client.CoreV1Api(self.api).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=name))
        )
        return name

    def releases(self, namespace: str) -> list[str]:
        secrets = client.CoreV1Api(self.api).list_namespaced_secret(
            namespace, label_selector="owner=helm"
        )
        return [s.metadata.name for s in secrets.items]


@pytest.fixture(scope="session")
def helm_binary() -> Path:
    return ensure_helm()


@pytest.fixture
def fresh_cluster(helm_binary: Path, tmp_path: Path) -> Iterator[Cluster]:
    """A new, empty API server (no CRDs at all) for one test."""
    base = Path(tempfile.mkdtemp(prefix="aigw-test-fresh-"))
    plane = kube.start(build.ensure_control_plane(), base)
    api = config.new_client_from_config(config_file=str(plane.kubeconfig))
    try:
        yield Cluster(api, HelmCli(helm_binary, plane.kubeconfig, tmp_path / "helm"))
    finally:
        api.close()
        plane.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def shared_cluster(
    helm_binary: Path, kubeconfig: Path, k8s_api: client.ApiClient, tmp_path: Path
) -> Cluster:
    """The session's API server, whose CRDs were applied outside Helm (as kubectl would)."""
    return Cluster(k8s_api, HelmCli(helm_binary, kubeconfig, tmp_path / "helm"))


def manifest_of(helm_output: str) -> list[dict[str, Any]]:
    """The objects of a ``helm install --dry-run`` output (after MANIFEST:, before NOTES:)."""
    text = helm_output.split("\nMANIFEST:\n", 1)[1].split("\nNOTES:\n", 1)[0]
    return [d for d in yaml.safe_load_all(text) if d]


def test_dry_run_server_on_a_fresh_cluster(fresh_cluster: Cluster) -> None:
    cluster = fresh_cluster
    ns = cluster.namespace()
    assert not cluster.crd_names()
    out = cluster.helm.ok(
        "install", "aigw", str(CHART), "-n", ns, "--dry-run=server", values=values(ns)
    )
    kinds = sorted(d["kind"] for d in manifest_of(out))
    assert kinds.count("CustomResourceDefinition") == len(OUR_CRDS)
    assert {"Deployment", "Role", "RoleBinding", "ServiceAccount"} <= set(kinds)
    # kopf's peering CRDs come from crds/, which a dry run does not create: the peering
    # object is left out (and said so) instead of failing the whole check.
    assert "KopfPeering" not in kinds
    assert "does not serve kopf.dev/v1" in out
    # Nothing was created: no CRD, no release record.
    assert not cluster.crd_names()
    assert cluster.releases(ns) == []

    # Objects bundled in values cannot be checked before their CRD exists (Helm builds every
    # object against discovery first): a loud error naming the kind, not a partial install.
    bundled = cluster.helm.run(
        "install", "aigw", str(CHART), "-n", ns, "--dry-run=server", values=values(ns, **BUNDLED)
    )
    assert bundled.returncode != 0
    assert 'no matches for kind "AIProvider"' in bundled.stderr
    assert "ensure CRDs are installed first" in bundled.stderr


def test_fresh_cluster_install_in_one_step_then_bundled_objects_survive_uninstall(
    fresh_cluster: Cluster,
) -> None:
    cluster = fresh_cluster
    ns = cluster.namespace()
    cluster.helm.ok("install", "aigw", str(CHART), "-n", ns, values=values(ns))

    # One step: our CRDs (templates, kept), kopf's (crds/), the peering object, the operator.
    assert set(OUR_CRDS) <= cluster.crd_names()
    for name in OUR_CRDS:
        crd = cluster.crd(name)
        assert crd.metadata.annotations["helm.sh/resource-policy"] == "keep"
        assert crd.metadata.annotations["meta.helm.sh/release-name"] == "aigw"
        assert crd.metadata.labels["app.kubernetes.io/managed-by"] == "Helm"
    assert {"kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"} <= cluster.crd_names()
    client.CustomObjectsApi(cluster.api).get_namespaced_custom_object(
        "kopf.dev", "v1", ns, "kopfpeerings", "aigw-aigateway-operator"
    )
    deploy = client.AppsV1Api(cluster.api).read_namespaced_deployment("aigw-aigateway-operator", ns)
    env = {e.name: e.value for e in deploy.spec.template.spec.containers[0].env}
    assert env["AIGW_INSTANCE_ID"] == f"{ns}-aigw"

    # The same release, objects now bundled: created by `helm upgrade`, kept by default.
    cluster.helm.ok("upgrade", "aigw", str(CHART), "-n", ns, values=values(ns, **BUNDLED))
    (provider,) = cluster.objects(ns, "aiproviders")
    (key,) = cluster.objects(ns, "aigatewaycoderdkeys")
    for obj in (provider, key):
        assert obj["metadata"]["annotations"].items() >= KEEP.items()

    out = cluster.helm.ok("uninstall", "aigw", "-n", ns)
    assert "kept due to the resource policy" in out
    # The operator is gone; its API and the objects (Coder's rows) are not.
    with pytest.raises(ApiException) as info:
        client.AppsV1Api(cluster.api).read_namespaced_deployment("aigw-aigateway-operator", ns)
    assert info.value.status == 404
    assert set(OUR_CRDS) <= cluster.crd_names()
    assert [o["metadata"]["name"] for o in cluster.objects(ns, "aiproviders")] == ["openai"]
    assert [o["metadata"]["name"] for o in cluster.objects(ns, "aigatewaycoderdkeys")] == [
        "gateway-eu"
    ]
    # Installing the same release again adopts what was kept.
    cluster.helm.ok("install", "aigw", str(CHART), "-n", ns, values=values(ns, **BUNDLED))
    (again,) = cluster.objects(ns, "aiproviders")
    assert again["metadata"]["uid"] == provider["metadata"]["uid"]


def test_install_after_crds_applied_with_kubectl_bundles_objects_in_one_step(
    shared_cluster: Cluster, namespace: str
) -> None:
    cluster = shared_cluster
    assert set(OUR_CRDS) <= cluster.crd_names()
    for name in OUR_CRDS:  # applied outside Helm: no release owns them
        assert "meta.helm.sh/release-name" not in (cluster.crd(name).metadata.annotations or {})
    release = f"r{uuid.uuid4().hex[:6]}"
    vals = values(namespace, crds={"enabled": False}, **BUNDLED)
    try:
        # --dry-run=server first: with the CRDs served, the bundled objects validate too.
        dry = cluster.helm.ok(
            "install", release, str(CHART), "-n", namespace, "--dry-run=server", values=vals
        )
        assert {"AIProvider", "AIGatewayCoderdKey"} <= {d["kind"] for d in manifest_of(dry)}
        assert cluster.objects(namespace, "aiproviders") == []

        cluster.helm.ok("install", release, str(CHART), "-n", namespace, values=vals)
        (provider,) = cluster.objects(namespace, "aiproviders")
        # As given (plus the CRD's defaults).
        assert provider["spec"].items() >= BUNDLED["providers"][0]["spec"].items()
        assert provider["metadata"]["annotations"].items() >= KEEP.items()
        # The chart did not take the CRDs over.
        for name in OUR_CRDS:
            assert "meta.helm.sh/release-name" not in (cluster.crd(name).metadata.annotations or {})

        cluster.helm.ok("uninstall", release, "-n", namespace)
        assert len(cluster.objects(namespace, "aiproviders")) == 1
        assert len(cluster.objects(namespace, "aigatewaycoderdkeys")) == 1
    finally:
        cluster.helm.run("uninstall", release, "-n", namespace)


def test_keep_on_uninstall_false_lets_uninstall_delete_the_objects(
    shared_cluster: Cluster, namespace: str
) -> None:
    cluster = shared_cluster
    release = f"r{uuid.uuid4().hex[:6]}"
    vals = values(
        namespace, crds={"enabled": False}, bundledObjects={"keepOnUninstall": False}, **BUNDLED
    )
    try:
        out = cluster.helm.ok("install", release, str(CHART), "-n", namespace, values=vals)
        assert "bundledObjects.keepOnUninstall=false" in out  # NOTES warn about it
        (provider,) = cluster.objects(namespace, "aiproviders")
        assert "helm.sh/resource-policy" not in (provider["metadata"].get("annotations") or {})
        cluster.helm.ok("uninstall", release, "-n", namespace)
        wait_for(
            lambda: (
                cluster.objects(namespace, "aiproviders") == []
                and cluster.objects(namespace, "aigatewaycoderdkeys") == []
            ),
            30,
            "the bundled objects to be deleted",
        )
    finally:
        cluster.helm.run("uninstall", release, "-n", namespace)


def test_crds_applied_with_kubectl_then_taken_over_by_the_chart(fresh_cluster: Cluster) -> None:
    """CRDs applied first (``kubectl apply --server-side -f crds/``), then the chart with its
    CRDs enabled: Helm refuses objects it does not own, ``--take-ownership`` (Helm >= 3.17)
    adopts them, and the bundled objects go in with the same install."""
    cluster = fresh_cluster
    ns = cluster.namespace()
    docs = [
        yaml.safe_load(p.read_text()) for p in sorted((CHART.parents[2] / "crds").glob("*.yaml"))
    ]
    apply_manifests(cluster.api, docs, field_manager="kubectl")
    assert set(OUR_CRDS) <= cluster.crd_names()

    refused = cluster.helm.run(
        "install", "aigw", str(CHART), "-n", ns, values=values(ns, **BUNDLED)
    )
    assert refused.returncode != 0
    assert "invalid ownership metadata" in refused.stderr
    assert cluster.objects(ns, "aiproviders") == []

    cluster.helm.ok(
        "install", "aigw", str(CHART), "-n", ns, "--take-ownership", values=values(ns, **BUNDLED)
    )
    for name in OUR_CRDS:
        assert cluster.crd(name).metadata.annotations["meta.helm.sh/release-name"] == "aigw"
    assert [o["metadata"]["name"] for o in cluster.objects(ns, "aiproviders")] == ["openai"]
