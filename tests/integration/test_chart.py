"""The Helm chart, rendered by a real helm (built from the Go module proxy) and linted.

What a reviewer would check by reading the templates, asserted on the rendered objects: the
Deployment's security and probes, that secrets are only referenced, the RBAC per mode, the
CRDs being exactly the repository's ``crds/`` (one source), and the values schema.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.devenv.helm import HelmError, ensure_helm, render_chart

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "aigateway-operator"
BASE: dict[str, Any] = {
    "database": {"existingSecret": {"name": "coder-db", "key": "url"}},
    "encryption": {"existingSecret": {"name": "coder-external-token-keys", "key": "keys"}},
}
Render = Callable[..., list[dict[str, Any]]]


def merged(*overrides: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(BASE))
    for o in overrides:
        out.update(o)
    return out


@pytest.fixture(scope="session")
def helm() -> Path:
    return ensure_helm()


@pytest.fixture
def render(helm: Path) -> Render:
    def run(values: dict[str, Any] | None = None, **kw: Any) -> list[dict[str, Any]]:
        return render_chart(CHART, "aigw", "ops", values if values is not None else BASE, **kw)

    return run


def only(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"{kind} {name}: {[d['metadata']['name'] for d in found]}"
    return found[0]


def kinds(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(d["kind"] for d in docs)


def rules_by_resource(rules: list[dict[str, Any]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for res in rule["resources"]:
                key = f"{group}/{res}" + (
                    f"[{','.join(rule['resourceNames'])}]" if rule.get("resourceNames") else ""
                )
                out.setdefault(key, set()).update(rule["verbs"])
    return out


OPERATOR_RULES = {
    "aigateway.dev/aiproviders": {"get", "list", "watch", "patch"},
    "aigateway.dev/aigatewaycoderdkeys": {"get", "list", "watch", "patch"},
    "aigateway.dev/aiproviders/status": {"patch"},
    "aigateway.dev/aigatewaycoderdkeys/status": {"patch"},
    "/secrets": {"get", "list", "watch", "create", "update", "patch", "delete"},
    "/events": {"create"},
    "events.k8s.io/events": {"create"},
}


def test_lint_passes_strict(helm: Path, tmp_path: Path) -> None:
    for name, values in {
        "default": BASE,
        "namespaced": merged({"watchNamespaces": ["team-a", "team-b"]}),
        "objects": merged(
            {
                "providers": [{"name": "openai", "spec": {"type": "openai"}}],
                "gatewayKeys": [{"name": "ci", "namespace": "team-a", "spec": {}}],
                "crds": {"install": False},
                "metrics": {"enabled": True, "port": 9191, "serviceMonitor": {"enabled": True}},
            }
        ),
    }.items():
        file = tmp_path / f"{name}.yaml"
        file.write_text(yaml.safe_dump(values))
        for strict in ([], ["--strict"]):
            proc = subprocess.run(
                [str(helm), "lint", *strict, str(CHART), "--values", str(file)],
                capture_output=True,
                text=True,
                check=False,
            )
            assert proc.returncode == 0, f"{name} {strict}: {proc.stdout}{proc.stderr}"
            assert "0 chart(s) failed" in proc.stdout


def test_default_is_cluster_wide_two_replicas_with_peering(render: Render) -> None:
    docs = render()
    assert kinds(docs) == sorted(
        [
            "ClusterKopfPeering",
            "ClusterRole",  # the operator's
            "ClusterRole",  # aggregate-to-view
            "ClusterRole",  # aggregate-to-edit
            "ClusterRoleBinding",
            "CustomResourceDefinition",  # kopf peerings, from crds/
            "CustomResourceDefinition",
            *["CustomResourceDefinition"] * len(list((REPO / "crds").glob("*.yaml"))),
            "Deployment",
            "MutatingAdmissionPolicy",  # our finalizer on create (test_finalizer_policy.py)
            "MutatingAdmissionPolicyBinding",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount",
        ]
    )
    deploy = only(docs, "Deployment")
    assert deploy["spec"]["replicas"] == 2
    assert deploy["spec"]["strategy"]["type"] == "RollingUpdate"
    pod = deploy["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "aigw-aigateway-operator"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["args"] == ["run"]
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["resources"]["limits"]["memory"]
    assert container["resources"]["requests"]["cpu"]
    for probe, path in (
        ("startupProbe", "/startupz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ):
        assert container[probe]["httpGet"] == {"path": path, "port": "health"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8080, "metrics": 9090}

    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["AIGW_NAMESPACES"] == ""
    assert env["AIGW_PEERING"] == "aigw-aigateway-operator"
    assert env["AIGW_HEALTH_PORT"] == "8080"
    assert env["AIGW_METRICS_PORT"] == "9090"
    assert env["POD_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    # Secrets are referenced and mounted as files, never values in the manifest.
    assert "AIGW_DATABASE_URL" not in env
    assert "AIGW_ENCRYPTION_KEYS" not in env
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert env["AIGW_DATABASE_URL_FILE"] == mounts["database"] + "/url"
    assert env["AIGW_ENCRYPTION_KEYS_FILE"] == mounts["encryption"] + "/keys"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["database"]["secret"]["secretName"] == "coder-db"
    assert volumes["database"]["secret"]["items"] == [{"key": "url", "path": "url"}]
    assert volumes["encryption"]["secret"]["secretName"] == "coder-external-token-keys"
    assert "emptyDir" in volumes["tmp"]  # the only writable path

    assert only(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert only(docs, "ClusterKopfPeering")["metadata"]["name"] == "aigw-aigateway-operator"

    role = only(docs, "ClusterRole", "aigw-aigateway-operator")
    rules = rules_by_resource(role["rules"])
    assert rules == {
        **OPERATOR_RULES,
        "kopf.dev/clusterkopfpeerings": {"get", "list", "watch"},
        "kopf.dev/clusterkopfpeerings[aigw-aigateway-operator]": {"patch"},
    }
    binding = only(docs, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "aigw-aigateway-operator", "namespace": "ops"}
    ]
    # No scanning: no CRD/namespace access, no pods, and no update (finalizers are patches).
    flat = json.dumps(role)
    for absent in ("customresourcedefinitions", "namespaces", "pods", '"*"'):
        assert absent not in flat
    assert all("update" not in v for k, v in rules.items() if k.startswith("aigateway.dev"))


def test_watch_namespaces_gives_roles_only(render: Render) -> None:
    docs = render(merged({"watchNamespaces": ["team-a", "team-b"]}))
    assert not [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    cluster_roles = [d["metadata"]["name"] for d in docs if d["kind"] == "ClusterRole"]
    assert sorted(cluster_roles) == ["aigw-aigateway-operator-edit", "aigw-aigateway-operator-view"]
    roles = [d for d in docs if d["kind"] == "Role"]
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for role in roles:
        assert rules_by_resource(role["rules"]) == {
            **OPERATOR_RULES,
            "kopf.dev/kopfpeerings": {"get", "list", "watch"},
            "kopf.dev/kopfpeerings[aigw-aigateway-operator]": {"patch"},
        }
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"][0]["namespace"] == "ops"
    peerings = [d for d in docs if d["kind"] == "KopfPeering"]
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b"]
    assert not [d for d in docs if d["kind"] == "ClusterKopfPeering"]
    container = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["AIGW_NAMESPACES"] == "team-a,team-b"


def test_gateway_key_secret_writes_can_be_turned_off(render: Render) -> None:
    docs = render(merged({"rbac": {"manageGatewayKeySecrets": False}}))
    rules = rules_by_resource(only(docs, "ClusterRole", "aigw-aigateway-operator")["rules"])
    assert rules["/secrets"] == {"get", "list", "watch"}


def test_aggregated_user_roles(render: Render) -> None:
    docs = render()
    view = only(docs, "ClusterRole", "aigw-aigateway-operator-view")
    edit = only(docs, "ClusterRole", "aigw-aigateway-operator-edit")
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert "rbac.authorization.k8s.io/aggregate-to-view" not in edit["metadata"]["labels"]
    assert rules_by_resource(edit["rules"]) == {
        "aigateway.dev/aiproviders": {"create", "update", "patch", "delete", "deletecollection"},
        "aigateway.dev/aigatewaycoderdkeys": {
            "create",
            "update",
            "patch",
            "delete",
            "deletecollection",
        },
    }
    assert set(rules_by_resource(view["rules"])["aigateway.dev/aiproviders"]) == {
        "get",
        "list",
        "watch",
    }


def test_crds_are_the_repository_crds(render: Render) -> None:
    """One source: the chart renders ``crds/`` itself (through a symlink), unchanged except for
    Helm's labels and the keep policy."""
    link = CHART / "files" / "crds"
    assert link.is_symlink()
    assert link.resolve() == (REPO / "crds").resolve()
    source = {}
    for path in sorted((REPO / "crds").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        source[doc["metadata"]["name"]] = doc
    assert "aiproviders.aigateway.dev" in source
    rendered = {
        d["metadata"]["name"]: d
        for d in render(include_crds=False)
        if d["kind"] == "CustomResourceDefinition"
    }
    assert set(rendered) == set(source)
    for name, doc in rendered.items():
        meta = doc["metadata"]
        assert meta["annotations"] == {"helm.sh/resource-policy": "keep"}
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert doc["spec"] == source[name]["spec"], f"{name} differs from crds/"

    no_keep = render(merged({"crds": {"keep": False}}), include_crds=False)
    for doc in no_keep:
        if doc["kind"] == "CustomResourceDefinition":
            assert "annotations" not in doc["metadata"]
    not_installed = render(merged({"crds": {"install": False}}), include_crds=False)
    assert not [d for d in not_installed if d["kind"] == "CustomResourceDefinition"]


def test_packaged_chart_carries_the_crd_files(helm: Path, tmp_path: Path) -> None:
    """``helm package`` follows the symlink: the archive holds the files, byte for byte."""
    proc = subprocess.run(
        [str(helm), "package", str(CHART), "--destination", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    (archive,) = tmp_path.glob("aigateway-operator-*.tgz")
    with tarfile.open(archive) as tar:
        members = {
            Path(m.name).name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.name.startswith("aigateway-operator/files/crds/") and m.isfile()
        }
        assert not [m for m in tar.getmembers() if m.issym()]
    source = {p.name: p.read_bytes() for p in (REPO / "crds").glob("*.yaml")}
    assert members == source


def test_providers_and_gateway_keys_from_values(render: Render) -> None:
    spec = {
        "type": "openai",
        "apiKeys": [{"secretKeyRef": {"name": "openai-keys", "key": "primary"}}],
    }
    docs = render(
        merged(
            {
                "providers": [
                    {"name": "openai", "spec": spec, "labels": {"team": "ml"}},
                    {"name": "other", "namespace": "team-b", "spec": {"type": "anthropic"}},
                ],
                "gatewayKeys": [{"name": "ci-bot", "spec": {"secretName": "ci-bot-key"}}],
                "crds": {"install": False},
            }
        )
    )
    openai = only(docs, "AIProvider", "openai")
    assert openai["apiVersion"] == "aigateway.dev/v1alpha1"
    assert openai["metadata"]["namespace"] == "ops"
    assert openai["metadata"]["labels"]["team"] == "ml"
    assert openai["spec"] == spec  # passed through; the CRD validates it
    assert only(docs, "AIProvider", "other")["metadata"]["namespace"] == "team-b"
    key = only(docs, "AIGatewayCoderdKey", "ci-bot")
    assert key["spec"] == {"secretName": "ci-bot-key"}


def test_metrics_service_monitor_and_irsa(render: Render) -> None:
    docs = render(
        merged(
            {
                "metrics": {"enabled": True, "port": 9191, "serviceMonitor": {"enabled": True}},
                "serviceAccount": {
                    "create": True,
                    "annotations": {
                        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/aigw"
                    },
                },
            }
        )
    )
    monitor = only(docs, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    svc = only(docs, "Service")
    assert svc["spec"]["ports"][0]["port"] == 9191
    assert monitor["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    sa = only(docs, "ServiceAccount")
    assert sa["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/aigw"
    }
    off = render(merged({"metrics": {"enabled": False}}))
    assert not [d for d in off if d["kind"] in ("Service", "ServiceMonitor")]


def test_single_replica_without_peering_uses_recreate(render: Render) -> None:
    docs = render(merged({"replicaCount": 1, "peering": {"enabled": False}}))
    deploy = only(docs, "Deployment")
    assert deploy["spec"]["strategy"]["type"] == "Recreate"
    env = {
        e["name"]: e.get("value")
        for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["AIGW_PEERING"] == ""
    assert not [d for d in docs if d["kind"] in ("ClusterKopfPeering", "KopfPeering")]
    assert "kopf.dev" not in json.dumps(only(docs, "ClusterRole", "aigw-aigateway-operator"))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "database.existingSecret.name is required"),
        (merged({"replicaCount": 2, "peering": {"enabled": False}}), "needs peering.enabled"),
        (merged({"config": {"AIGW_DATABASE_URL": "postgres://u:p@db/coder"}}), "'not' failed"),
        (merged({"config": {"AIGW_ENCRYPTION_KEYS": "a2V5"}}), "'not' failed"),
        (merged({"config": {"NOT_OURS": "1"}}), "does not match pattern"),
        (merged({"extraEnv": [{"name": "AIGW_DATABASE_URL", "value": "x"}]}), "'not' failed"),
        (merged({"databaseUrl": "postgres://u:p@db/coder"}), "additional properties"),
        (merged({"watchNamespaces": ["Bad_NS"]}), "does not match pattern"),
        (merged({"providers": [{"name": "p"}]}), "missing property 'spec'"),
    ],
)
def test_schema_and_guards_refuse_bad_values(
    render: Render, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(HelmError) as info:
        render(values)
    assert message in str(info.value)
