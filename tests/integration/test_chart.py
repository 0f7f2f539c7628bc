"""The Helm chart, rendered by a real helm (built from the Go module proxy) and linted.

What a reviewer would check by reading the templates, asserted on the rendered objects: the
Deployment's security and probes, that secrets are only referenced, the RBAC per mode, the
CRDs being exactly the repository's ``crds/`` (one source), and the values schema.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from tests.support.gitops import SYNC_OPTIONS, SYNC_WAVE, keep_violations
from tools.devenv.helm import HelmError, ensure_helm, render_chart

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "aigateway-operator"
BASE: dict[str, Any] = {
    "database": {"existingSecret": {"name": "coder-db", "key": "url"}},
    "encryption": {"existingSecret": {"name": "coder-external-token-keys", "key": "keys"}},
}
Render = Callable[..., list[dict[str, Any]]]
#: Every optional feature on at once (lint must pass with it too).
EVERYTHING: dict[str, Any] = {
    "database": {
        "existingSecret": {"name": "coder-db", "key": "url"},
        "tls": {"caSecret": {"name": "coder-db-ca", "key": "ca.crt"}},
    },
    "global": {"imagePullSecrets": ["regcred", {"name": "shared"}]},
    "imagePullSecrets": [{"name": "regcred"}, "own"],
    "commonLabels": {"team": "platform"},
    "deploymentAnnotations": {"reloader.example/auto": "true"},
    "podAnnotations": {"prometheus.io/scrape": "false"},
    "revisionHistoryLimit": 2,
    "extraVolumes": [{"name": "pg-bundle", "configMap": {"name": "pg-bundle"}}],
    "extraVolumeMounts": [{"name": "pg-bundle", "mountPath": "/etc/pg-bundle", "readOnly": True}],
    "extraObjects": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "{{ .Release.Name }}-a"}},
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-b\n",
    ],
    "networkPolicy": {
        "enabled": True,
        "egress": {
            "apiServer": {"to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}]},
            "database": {
                "to": [
                    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "db"}}}
                ]
            },
        },
        "ingress": {
            "metrics": {"from": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]}
        },
    },
    "metrics": {
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True, "labels": {"release": "kps"}},
        "grafanaDashboard": {"enabled": True},
    },
    "instanceID": "prod-eu-1",
    "encryption": {"existingSecret": {"name": "keys", "key": "keys"}, "allowPlaintext": False},
    "adoption": {"namespaces": ["ai", "legacy"]},
    "logFormat": "json",
}


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
    "/events": {"create", "patch"},
    "events.k8s.io/events": {"create"},
}

#: Restart on rotation: opted-in Deployments and StatefulSets are found and stamped.
RESTART_RULES = {
    "apps/deployments": {"get", "list", "patch"},
    "apps/statefulsets": {"get", "list", "patch"},
}


def test_lint_passes_strict(helm: Path, tmp_path: Path) -> None:
    for name, values in {
        "default": BASE,
        "namespaced": merged({"watchNamespaces": ["team-a", "team-b"]}),
        "objects": merged(
            {
                "providers": [{"name": "openai", "spec": {"type": "openai"}}],
                "gatewayKeys": [{"name": "ci", "namespace": "team-a", "spec": {}}],
                "crds": {"enabled": False},
                "metrics": {"enabled": True, "port": 9191, "serviceMonitor": {"enabled": True}},
            }
        ),
        "everything": merged(EVERYTHING),
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
    probes = {
        p: container[p]["httpGet"] for p in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert probes == {
        "startupProbe": {"path": "/startupz", "port": "health"},
        "livenessProbe": {"path": "/healthz", "port": "health"},
        "readinessProbe": {"path": "/readyz", "port": "health"},
    }
    # Startup is generous (first database connection, key proof): 30 x 10 s.
    assert (
        container["startupProbe"]["failureThreshold"] * container["startupProbe"]["periodSeconds"]
        >= 300
    )
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8080, "metrics": 9090}

    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["AIGW_NAMESPACES"] == ""
    assert env["AIGW_PEERING"] == "aigw-aigateway-operator"
    assert env["AIGW_HEALTH_PORT"] == "8080"
    assert env["AIGW_METRICS_PORT"] == "9090"
    assert env["POD_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    # The values the operator reads for identity, encryption, adoption and logs.
    assert env["AIGW_INSTANCE_ID"] == "ops-aigw"
    assert env["AIGW_ALLOW_PLAINTEXT"] == "false"
    assert env["AIGW_ADOPTION_NAMESPACES"] == ""
    assert env["AIGW_LOG_FORMAT"] == "text"
    assert env["AIGW_SECRET_ACCESS"] == "annotated", "safe where namespace tenants exist"
    assert "PGSSLROOTCERT" not in env
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
        **RESTART_RULES,
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
            **RESTART_RULES,
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
    """One source: the chart renders its copies of ``crds/`` (tests/unit/test_chart_crds.py
    keeps them equal), unchanged except for Helm's labels and the keep policy."""
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
        # Kept by Helm, never pruned or deleted by Argo CD or Flux (deleting a CRD deletes
        # every object of its kind, and through their finalizers Coder's rows).
        assert meta["annotations"] == {
            "helm.sh/resource-policy": "keep",
            "argocd.argoproj.io/sync-options": "Prune=false,Delete=false",
            "kustomize.toolkit.fluxcd.io/prune": "disabled",
        }
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert doc["spec"] == source[name]["spec"], f"{name} differs from crds/"

    no_keep = render(merged({"crds": {"keep": False}}), include_crds=False)
    for doc in no_keep:
        if doc["kind"] == "CustomResourceDefinition":
            assert "annotations" not in doc["metadata"]
    not_installed = render(merged({"crds": {"enabled": False}}), include_crds=False)
    assert not [d for d in not_installed if d["kind"] == "CustomResourceDefinition"]


def test_packaged_chart_carries_the_crd_files(helm: Path, tmp_path: Path) -> None:
    """The packaged chart holds the CRD files, byte for byte, and no symlink."""
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
                "crds": {"enabled": False},
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
    # Kept on uninstall and never pruned, by every tool: deleting them would delete Coder's
    # rows.
    bundled = [openai, key, only(docs, "AIProvider", "other")]
    assert keep_violations(bundled) == []
    # A sync option of the user's own is kept after ours; a Prune= of theirs cannot undo it.
    own = render(
        merged(
            {
                "providers": [
                    {
                        "name": "p",
                        "spec": spec,
                        "annotations": {SYNC_OPTIONS: "Prune=true, ServerSideApply=true"},
                    }
                ],
                "crds": {"enabled": False},
            }
        )
    )
    assert only(own, "AIProvider", "p")["metadata"]["annotations"][SYNC_OPTIONS] == (
        "Prune=false,Delete=false,ServerSideApply=true"
    )
    loose = render(
        merged(
            {
                "providers": [{"name": "p", "spec": spec, "annotations": {"a": "b"}}],
                "bundledObjects": {"keepOnUninstall": False},
                "crds": {"enabled": False},
            }
        )
    )
    assert only(loose, "AIProvider", "p")["metadata"]["annotations"] == {"a": "b"}


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
        (
            merged({"config": {"AIGW_DATABASE_URL": "postgres://u:p@db/coder"}}),
            "at '/config/AIGW_DATABASE_URL'",
        ),
        (merged({"config": {"AIGW_ENCRYPTION_KEYS": "a2V5"}}), "at '/config/AIGW_ENCRYPTION_KEYS'"),
        (merged({"config": {"NOT_OURS": "1"}}), "additional properties 'NOT_OURS'"),
        (merged({"extraEnv": [{"name": "AIGW_DATABASE_URL", "value": "x"}]}), "'not' failed"),
        (merged({"extraEnv": [{"name": "AIGW_ADMISSION_PORT", "value": "1"}]}), "'not' failed"),
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


def test_config_and_extra_env_refuse_every_setting_the_deployment_sets(render: Render) -> None:
    """Found from the template itself, not listed by hand: every ``AIGW_*`` the Deployment
    template sets is refused in ``config`` and in ``extraEnv`` (a second value would
    silently win or lose against the chart's)."""
    template = (CHART / "templates" / "deployment.yaml").read_text()
    names = sorted(set(re.findall(r"\bAIGW_[A-Z0-9_]+\b", template)))
    assert "AIGW_SECRET_ACCESS" in names
    assert "AIGW_ADMISSION" in names
    accepted = []
    for name in names:
        for where, values in (
            ("config", merged({"config": {name: "x"}})),
            ("extraEnv", merged({"extraEnv": [{"name": name, "value": "x"}]})),
        ):
            try:
                render(values)
            except HelmError:
                continue
            accepted.append((where, name))
    assert accepted == [], f"settings the chart sets but also accepts from values: {accepted}"


def env_of(docs: list[dict[str, Any]]) -> dict[str, Any]:
    container = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_crds_enabled_without_crd_files_fails_loudly(helm: Path, tmp_path: Path) -> None:
    """A chart fetched without its files (a dropped symlink) must not install an operator
    without its API: the render fails, naming what is missing."""
    copy = tmp_path / "aigateway-operator"
    shutil.copytree(CHART, copy)
    shutil.rmtree(copy / "files" / "crds")
    with pytest.raises(HelmError) as info:
        render_chart(copy, "aigw", "ops", BASE, helm=helm)
    assert "crds.enabled=true but the chart carries no CRD aiproviders.aigateway.dev" in str(
        info.value
    )
    # Turning CRDs off is the explicit way to install without them.
    docs = render_chart(copy, "aigw", "ops", merged({"crds": {"enabled": False}}), helm=helm)
    assert not [d for d in docs if d["metadata"]["name"].endswith(".aigateway.dev")]


def test_operator_settings_from_values(render: Render) -> None:
    env = env_of(render(merged(EVERYTHING)))
    assert env["AIGW_INSTANCE_ID"] == "prod-eu-1"
    assert env["AIGW_ADOPTION_NAMESPACES"] == "ai,legacy"
    assert env["AIGW_LOG_FORMAT"] == "json"
    assert env["AIGW_ALLOW_PLAINTEXT"] == "false"
    plaintext = env_of(
        render({"database": BASE["database"], "encryption": {"allowPlaintext": True}})
    )
    assert plaintext["AIGW_ALLOW_PLAINTEXT"] == "true"  # only when set on purpose
    assert "AIGW_ENCRYPTION_KEYS_FILE" not in plaintext
    # The default identity follows the release, so a cluster rebuilt from the same Git
    # (same namespace, same release name) gets the same one.
    assert env_of(render())["AIGW_INSTANCE_ID"] == "ops-aigw"
    assert env_of(render_chart(CHART, "aigw", "other", BASE))["AIGW_INSTANCE_ID"] == "other-aigw"


def test_probe_timings_are_values(render: Render) -> None:
    docs = render(
        merged({"startupProbe": {"periodSeconds": 5, "failureThreshold": 60, "timeoutSeconds": 2}})
    )
    container = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["startupProbe"] == {
        "httpGet": {"path": "/startupz", "port": "health"},
        "periodSeconds": 5,
        "failureThreshold": 60,
        "timeoutSeconds": 2,
    }


def test_database_ca_is_mounted_where_the_dsn_points(render: Render) -> None:
    """database.tls.caSecret: the CA file lands where PGSSLROOTCERT (and the documented
    sslrootcert= of the URL) point."""
    docs = render(merged(EVERYTHING))
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = env_of(docs)
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    ca = volumes["database-ca"]["secret"]
    assert ca["secretName"] == "coder-db-ca"
    (item,) = ca["items"]
    path = f"{mounts['database-ca']['mountPath']}/{item['path']}"
    assert mounts["database-ca"]["readOnly"] is True
    assert env["PGSSLROOTCERT"] == path == "/etc/aigateway-operator/database-ca/ca.crt"
    readme = (CHART / "README.md").read_text() + (REPO / "docs" / "operations.md").read_text()
    assert f"sslmode=verify-full&sslrootcert={path}" in readme
    assert "database-ca" not in json.dumps(render())  # nothing without the value


def test_extension_points(render: Render) -> None:
    docs = render(merged(EVERYTHING))
    deploy = only(docs, "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert deploy["metadata"]["annotations"] == {"reloader.example/auto": "true"}
    assert deploy["spec"]["template"]["metadata"]["annotations"] == {
        "prometheus.io/scrape": "false"
    }
    assert deploy["spec"]["revisionHistoryLimit"] == 2
    assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "shared"}, {"name": "own"}]
    assert {"name": "pg-bundle", "configMap": {"name": "pg-bundle"}} in pod["volumes"]
    assert {"name": "pg-bundle", "mountPath": "/etc/pg-bundle", "readOnly": True} in container[
        "volumeMounts"
    ]
    # commonLabels on every object the chart renders (pods included), never in selectors;
    # not on kopf's CRDs (Helm's crds/, verbatim) nor on extraObjects (yours, as given).
    extra = {"aigw-a", "aigw-b"}
    for doc in docs:
        name = doc["metadata"]["name"]
        if name.endswith(".kopf.dev") or name in extra:
            continue
        assert doc["metadata"]["labels"]["team"] == "platform", doc["kind"]
    assert deploy["spec"]["template"]["metadata"]["labels"]["team"] == "platform"
    assert "team" not in deploy["spec"]["selector"]["matchLabels"]
    extras = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
    assert {"aigw-a", "aigw-b"} <= extras  # objects and strings, through tpl
    assert render()[0]  # and by default none of it:
    default = only(render(), "Deployment")
    assert "imagePullSecrets" not in default["spec"]["template"]["spec"]
    assert "annotations" not in default["metadata"]
    assert default["spec"]["revisionHistoryLimit"] == 5


def test_strategy_value_and_its_guard(render: Render) -> None:
    custom = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    deploy = only(render(merged({"strategy": custom})), "Deployment")
    assert deploy["spec"]["strategy"] == custom
    with pytest.raises(HelmError) as info:
        render(
            merged(
                {
                    "replicaCount": 1,
                    "peering": {"enabled": False},
                    "strategy": {"type": "RollingUpdate"},
                }
            )
        )
    assert "strategy.type=RollingUpdate needs peering.enabled=true" in str(info.value)


def test_network_policy(render: Render) -> None:
    assert not [d for d in render() if d["kind"] == "NetworkPolicy"]  # off by default
    policy = only(render(merged(EVERYTHING)), "NetworkPolicy")
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "aigateway-operator",
        "app.kubernetes.io/instance": "aigw",
    }
    (ingress,) = spec["ingress"]
    assert ingress["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert ingress["from"] == [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]
    by_port = {tuple(p["port"] for p in rule["ports"]): rule.get("to") for rule in spec["egress"]}
    assert by_port == {
        (53, 53): None,  # DNS, anywhere
        (443, 6443): [{"ipBlock": {"cidr": "10.0.0.1/32"}}],  # API server
        (5432,): [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "db"}}}],
        (443,): [{"ipBlock": {"cidr": "0.0.0.0/0"}}],  # STS
    }
    no_sts = only(
        render(merged(EVERYTHING, {"networkPolicy": {**EVERYTHING["networkPolicy"], "egress": {
            **EVERYTHING["networkPolicy"]["egress"], "sts": {"enabled": False}}}})),
        "NetworkPolicy",
    )  # fmt: skip
    assert (443,) not in {tuple(p["port"] for p in r["ports"]) for r in no_sts["spec"]["egress"]}
    for missing in ("apiServer", "database"):
        egress = dict(EVERYTHING["networkPolicy"]["egress"])
        del egress[missing]
        with pytest.raises(HelmError) as info:
            render(merged({"networkPolicy": {"enabled": True, "egress": egress}}))
        assert f"networkPolicy.egress.{missing}.to is required" in str(info.value)


#: What Argo CD passes as --api-versions for a fresh cluster (an excerpt: core and apps, as
#: group/version and group/version/kind, kopf.dev absent); tests/e2e/test_gitops_node.py uses
#: the real list of the node's API server.
FRESH_CLUSTER_API_VERSIONS = (
    "v1", "v1/Namespace", "v1/Secret", "v1/Service", "apps/v1", "apps/v1/Deployment",
    "apiextensions.k8s.io/v1", "apiextensions.k8s.io/v1/CustomResourceDefinition",
)  # fmt: skip


def test_peering_object_is_rendered_whatever_api_versions_say(helm: Path) -> None:
    """An offline render (helm template, Argo CD) always carries the peering object, ordered
    for Argo CD after kopf's CRDs and before the operator; a live render without kopf.dev (a
    dry run on a fresh cluster) leaves it out: test_chart_install.py."""

    def peerings(api_versions: tuple[str, ...], **values: Any) -> list[dict[str, Any]]:
        docs = render_chart(
            CHART, "aigw", "ops", merged(values), helm=helm, api_versions=api_versions
        )
        return [d for d in docs if d["kind"].endswith("KopfPeering")]

    for api_versions in (
        (),
        FRESH_CLUSTER_API_VERSIONS,
        (*FRESH_CLUSTER_API_VERSIONS, "kopf.dev/v1"),
    ):
        (peering,) = peerings(api_versions)
        assert peering["kind"] == "ClusterKopfPeering"
        assert peering["metadata"]["annotations"] == {
            SYNC_WAVE: "-1",
            SYNC_OPTIONS: "SkipDryRunOnMissingResource=true",
        }
    namespaced = peerings(FRESH_CLUSTER_API_VERSIONS, watchNamespaces=["a", "b"])
    assert [(p["kind"], p["metadata"]["namespace"]) for p in namespaced] == [
        ("KopfPeering", "a"),
        ("KopfPeering", "b"),
    ]
    assert all(p["metadata"]["annotations"][SYNC_WAVE] == "-1" for p in namespaced)
    # kopf's CRDs (crds/) come first in Argo CD's sync and are never pruned.
    kopf_crds = [
        d
        for d in render_chart(CHART, "aigw", "ops", BASE, helm=helm)
        if d["kind"] == "CustomResourceDefinition" and d["spec"]["group"] == "kopf.dev"
    ]
    assert len(kopf_crds) == 2
    for crd in kopf_crds:
        assert crd["metadata"]["annotations"][SYNC_WAVE] == "-2"
        assert crd["metadata"]["annotations"][SYNC_OPTIONS] == "Prune=false,Delete=false"


def test_a_render_is_reproducible(helm: Path) -> None:
    """Argo CD re-renders on every refresh: two renders of the same values are the same
    bytes (nothing random or dated), with everything on and with admission through
    cert-manager. (Admission without cert-manager generates its certificate per render: the
    docs/operations.md "Argo CD" says so and what to use instead.)"""
    admission = {
        "admission": {
            "enabled": True,
            "certManager": {"enabled": True, "issuerRef": {"kind": "ClusterIssuer", "name": "ca"}},
        }
    }
    for values in (BASE, merged(EVERYTHING), merged(admission)):
        first = render_chart(CHART, "aigw", "ops", values, helm=helm)
        second = render_chart(CHART, "aigw", "ops", values, helm=helm)
        assert first == second


def test_prometheus_rule_is_a_valid_rule_file(render: Render) -> None:
    """What promtool would check, with a real PromQL parser: unique alert names, parseable
    expressions selecting this release's job and only declared metrics, valid durations,
    severity and summary on every alert."""
    docs = render(merged(EVERYTHING))
    rule = only(docs, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kps"
    metrics = {
        line.split("\t")[0]
        for line in (CHART / "files" / "metrics.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    (group,) = rule["spec"]["groups"]
    alerts = [r["alert"] for r in group["rules"]]
    assert alerts == [
        "AIGatewayObjectNotReady",
        "AIGatewayDatabaseUnreachable",
        "AIGatewaySTSFailures",
        "AIGatewayNoActiveReplica",
    ]
    for r in group["rules"]:
        expr = promql_parser.parse(r["expr"])
        names: list[tuple[str, dict[str, str]]] = []

        def visit(node: Any, names: list[tuple[str, dict[str, str]]] = names) -> bool:
            if isinstance(node, promql_parser.VectorSelector):
                names.append((node.name, {m.name: m.value for m in node.matchers.matchers}))
            return True

        promql_parser.walk(expr, visit)
        assert names, r["alert"]
        for name, matchers in names:
            assert name in metrics, (r["alert"], name)
            assert matchers["job"] == "aigw-aigateway-operator-metrics", r["alert"]
        assert re.fullmatch(r"(\d+[smhdwy])+", r["for"]), r["for"]
        promql_parser.parse_duration(r["for"])
        assert r["labels"]["severity"] in {"warning", "critical"}
        assert r["annotations"]["summary"]
        assert r["annotations"]["description"]
    off = render()
    assert not [d for d in off if d["kind"] in ("PrometheusRule", "ServiceMonitor")]


def test_grafana_dashboard_configmap(render: Render) -> None:
    docs = render(merged(EVERYTHING))
    (cm,) = [d for d in docs if d["metadata"]["name"] == "aigw-aigateway-operator-dashboard"]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(cm["data"]["aigateway-operator.json"])
    assert dashboard == json.loads((CHART / "files" / "dashboard.json").read_text())
    assert not [d for d in render() if d["kind"] == "ConfigMap"]


@pytest.mark.parametrize(
    ("values", "key"),
    [
        (merged({"replicaCount": "two"}), "/replicaCount"),
        (merged({"logFormat": "xml"}), "/logFormat"),
        (merged({"encryption": {"existingSecret": {"name": "k", "key": "k"},
                                "allowPlaintext": "yes"}}), "/encryption/allowPlaintext"),
        (merged({"networkPolicy": {"egress": {"database": {"cidr": "10.0.0.0/8"}}}}),
         "/networkPolicy/egress/database"),
        (merged({"metrics": {"prometheusRule": {"notReadyFor": "15 minutes"}}}),
         "/metrics/prometheusRule/notReadyFor"),
        (merged({"adoption": {"namespaces": ["Not_A_Namespace"]}}), "/adoption/namespaces/0"),
        (merged({"crds": {"install": False}}), "/crds"),
        (merged({"extraVolumeMounts": [{"name": "x"}]}), "/extraVolumeMounts/0"),
        (merged({"config": {"AIGW_INSTANCE_ID": "x"}}), "/config/AIGW_INSTANCE_ID"),
        (merged({"config": {"AIGW_ADMISSION_TIMEOUT_S": 5}}), "/config/AIGW_ADMISSION_TIMEOUT_S"),
        (merged({"config": {"AIGW_ADMISSION_CA_FILE": "/x"}}), "/config/AIGW_ADMISSION_CA_FILE"),
        (merged({"admission": {"timeoutSeconds": 30}}), "/admission/timeoutSeconds"),
    ],
)  # fmt: skip
def test_schema_errors_name_the_offending_key(
    render: Render, values: dict[str, Any], key: str
) -> None:
    with pytest.raises(HelmError) as info:
        render(values)
    assert f"at '{key}'" in str(info.value)


def test_admission_off_by_default_and_what_it_installs(render: Render) -> None:
    assert not [d for d in render() if "webhook" in d["metadata"]["name"]]
    docs = render(merged({"admission": {"enabled": True}, "watchNamespaces": ["team-a"]}))
    service = only(docs, "Service", "aigw-aigateway-operator-webhook")
    assert service["spec"]["ports"] == [
        {"name": "webhook", "port": 443, "targetPort": "webhook", "protocol": "TCP"}
    ]
    tls = only(docs, "Secret", "aigw-aigateway-operator-webhook-tls")
    assert set(tls["data"]) == {"tls.crt", "tls.key", "ca.crt"}  # one pair for every replica
    # The one cluster-wide admission right: SubjectAccessReviews as the requester (#23).
    role = only(docs, "ClusterRole", "aigw-aigateway-operator-admission")
    assert rules_by_resource(role["rules"]) == {
        "authorization.k8s.io/subjectaccessreviews": {"create"}
    }
    # The chart owns the configuration: by Service reference, with the chart's CA.
    cfg = only(docs, "ValidatingWebhookConfiguration", "aigw-aigateway-operator.aigateway.dev")
    hooks = {h["name"]: h for h in cfg["webhooks"]}
    assert set(hooks) == {
        "validate-aiprovider.aigw-aigateway-operator.aigateway.dev",
        "validate-aigatewaycoderdkey.aigw-aigateway-operator.aigateway.dev",
    }
    for kind, hook in (
        ("aiprovider", hooks["validate-aiprovider.aigw-aigateway-operator.aigateway.dev"]),
        (
            "aigatewaycoderdkey",
            hooks["validate-aigatewaycoderdkey.aigw-aigateway-operator.aigateway.dev"],
        ),
    ):
        assert hook["clientConfig"]["service"] == {
            "name": "aigw-aigateway-operator-webhook",
            "namespace": "ops",
            "port": 443,
            "path": f"/validate-{kind}",
        }
        assert "url" not in hook["clientConfig"]
        assert hook["clientConfig"]["caBundle"] == tls["data"]["ca.crt"]
        assert hook["failurePolicy"] == "Ignore"
        assert hook["sideEffects"] == "NoneOnDryRun"
        assert hook["timeoutSeconds"] == 10
        assert hook["rules"][0]["resources"] == [f"{kind}s"]
        assert hook["rules"][0]["operations"] == ["CREATE", "UPDATE"]
        assert hook["namespaceSelector"]["matchExpressions"] == [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a"]}
        ]
        assert [c["expression"] for c in hook["matchConditions"]] == [
            "request.operation == 'CREATE' || object.spec != oldObject.spec",
            "!has(object.metadata.deletionTimestamp)",
        ]
    # No mutating configuration, and no RBAC for any: the operator manages none.
    assert not [d for d in docs if d["kind"] == "MutatingWebhookConfiguration"]
    assert not [
        r
        for d in docs
        if d["kind"] in ("ClusterRole", "Role")
        for r in d.get("rules") or []
        if "admissionregistration.k8s.io" in r["apiGroups"]
    ]
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["AIGW_ADMISSION"] == "true"
    assert env["AIGW_ADMISSION_FAILURE_POLICY"] == "Ignore"
    assert env["AIGW_ADMISSION_CONFIG_NAME"] == ""  # kopf manages no configuration
    assert "AIGW_ADMISSION_HOST" not in env
    assert env["AIGW_ADMISSION_TIMEOUT_S"] == "8"  # below the API server's timeoutSeconds
    assert env["AIGW_ADMISSION_CA_FILE"] == "/etc/aigateway-operator/webhook/ca.crt"
    assert {"name": "webhook", "containerPort": 9443, "protocol": "TCP"} in container["ports"]
    # Cluster-wide: every namespace goes to the webhook.
    wide = only(render(merged({"admission": {"enabled": True}})), "ValidatingWebhookConfiguration")
    assert all("namespaceSelector" not in h for h in wide["webhooks"])

    managed = render(
        merged(
            {
                "admission": {
                    "enabled": True,
                    "failurePolicy": "Fail",
                    "certManager": {
                        "enabled": True,
                        "issuerRef": {"kind": "ClusterIssuer", "name": "ca"},
                    },
                }
            }
        )
    )
    cert = only(managed, "Certificate")
    assert cert["spec"]["secretName"] == "aigw-aigateway-operator-webhook-tls"
    cfg = only(managed, "ValidatingWebhookConfiguration")
    assert cfg["metadata"]["annotations"] == {
        "cert-manager.io/inject-ca-from": "ops/aigw-aigateway-operator-webhook"
    }
    for hook in cfg["webhooks"]:
        assert hook["failurePolicy"] == "Fail"
        assert "caBundle" not in hook["clientConfig"]  # cert-manager's injector fills it
    assert cert["spec"]["dnsNames"] == ["aigw-aigateway-operator-webhook.ops.svc"]
    assert not [d for d in managed if d["kind"] == "Secret" and "webhook" in d["metadata"]["name"]]
    with pytest.raises(HelmError) as info:
        render(merged({"admission": {"enabled": True, "certManager": {"enabled": True}}}))
    assert "admission.certManager.issuerRef is required" in str(info.value)
