"""Build ``helm`` from the Go module proxy, cached like the control plane.

No prebuilt binary is downloaded: ``helm.sh/helm/v3`` is fetched from the Go module proxy and
compiled with this machine's Go toolchain through a small wrapper module, then cached as
``<cache>/bin/helm-<version>`` (see :func:`tools.devenv.build.cache_dir`), so only
the first run pays for it. The ldflags are the ones helm's own Makefile sets, derived from the
downloaded ``go.mod`` (the client-go version decides the Kubernetes version ``helm template``
and ``helm lint`` assume), so ``helm version`` and capabilities match an official build.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tools.devenv.build import (
    GO_VERSION_DIRECTIVE,
    Progress,
    _build_lock,
    _go,
    _go_env,
    _progress_ticker,
    _run,
    _stderr_progress,
    cache_dir,
)

#: The approved helm release (v3.22.0 is served by the module proxy but not approved here).
HELM_VERSION = "v3.21.4"
HELM_MODULE = "helm.sh/helm/v3"


def helm_path(version: str = HELM_VERSION) -> Path:
    """Where the cached binary of ``version`` lives (it may not exist yet)."""
    return cache_dir() / "bin" / f"helm-{version}"


def client_go_version(helm_gomod: str) -> tuple[int, int]:
    """``k8s.io/client-go v0.35.1`` in helm's go.mod -> Kubernetes ``(1, 35)``.

    helm's Makefile derives the Kubernetes version it reports (``.Capabilities.KubeVersion``,
    lint's deprecation checks) from client-go the same way.
    """
    match = re.search(r"^\s*k8s\.io/client-go\s+v0\.(\d+)\.\d+", helm_gomod, re.M)
    if not match:
        raise RuntimeError("k8s.io/client-go not found in helm's go.mod")
    return 1, int(match.group(1))


def helm_ldflags(version: str, helm_gomod: str) -> str:
    major, minor = client_go_version(helm_gomod)
    flags = ["-s", "-w"]
    for key, value in (
        ("internal/version.version", version),
        ("internal/version.metadata", ""),
        ("internal/version.gitTreeState", "clean"),
        ("pkg/lint/rules.k8sVersionMajor", str(major)),
        ("pkg/lint/rules.k8sVersionMinor", str(minor)),
        ("pkg/chartutil.k8sVersionMajor", str(major)),
        ("pkg/chartutil.k8sVersionMinor", str(minor)),
    ):
        flags.append(f"-X {HELM_MODULE}/{key}={value}")
    return " ".join(flags)


def ensure_helm(version: str = HELM_VERSION, progress: Progress = _stderr_progress) -> Path:
    """Return the cached ``helm`` binary, building it first if it is missing."""
    dest = helm_path(version)
    if dest.exists():
        return dest
    root = cache_dir()
    with _build_lock(root):
        if not dest.exists():  # another session may have built it while we waited
            dest.parent.mkdir(parents=True, exist_ok=True)
            _build_helm(root, version, dest, progress)
    return dest


def _build_helm(root: Path, version: str, dest: Path, progress: Progress) -> None:
    work = root / "src" / f"helm-{version}"
    work.mkdir(parents=True, exist_ok=True)
    log = work / "build.log"
    progress(f"Building helm {version} from the Go module proxy (first run only; log {log})")
    go = _go()
    with _progress_ticker(f"{HELM_MODULE} sources (download)", progress):
        out = subprocess.run(
            [go, "mod", "download", "-json", f"{HELM_MODULE}@{version}"],
            cwd=work,
            env=_go_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"go mod download {HELM_MODULE}@{version} failed: {out.stderr}")
        helm_gomod = Path(json.loads(out.stdout)["GoMod"]).read_text()
    if re.search(r"^\s*replace\b", helm_gomod, re.M):
        # A wrapper module ignores a dependency's replace directives; building would
        # silently use other code than helm's release. Refuse rather than guess.
        raise RuntimeError(f"{HELM_MODULE}@{version} go.mod has replace directives; see {log}")
    (work / "go.mod").write_text(
        f"module aigw.local/helmbuild\n\ngo {GO_VERSION_DIRECTIVE}\n\n"
        f"require {HELM_MODULE} {version}\n"
    )
    (work / "tools.go").write_text(
        f'//go:build tools\n\npackage tools\n\nimport _ "{HELM_MODULE}/cmd/helm"\n'
    )
    with _progress_ticker("module graph (go mod tidy)", progress):
        _run([go, "mod", "tidy"], work, log)
    tmp = work / "out"
    tmp.mkdir(exist_ok=True)
    with _progress_ticker(f"helm {version}", progress):
        _run(
            [
                go,
                "build",
                "-trimpath",
                "-ldflags",
                helm_ldflags(version, helm_gomod),
                "-o",
                str(tmp / "helm"),
                f"{HELM_MODULE}/cmd/helm",
            ],
            work,
            log,
        )
    os.replace(tmp / "helm", dest)


# --- using the chart against an API server (tests and the dev environment) -------------------

#: Served by the local control plane (Kubernetes 1.37) and by default in every release since
#: 1.36, but not in helm's offline list: ``helm template`` would skip the finalizer policy.
SERVED_API_VERSIONS = ("admissionregistration.k8s.io/v1/MutatingAdmissionPolicy",)

#: Kinds that must exist (and be Established) before other objects can refer to them.
_FIRST_KINDS = ("CustomResourceDefinition", "Namespace")


def render_chart(
    chart: Path,
    release: str,
    namespace: str,
    values: Mapping[str, Any] | None = None,
    *,
    include_crds: bool = True,
    helm: Path | None = None,
    api_versions: Sequence[str] = SERVED_API_VERSIONS,
) -> list[dict[str, Any]]:
    """``helm template`` the chart with ``values``; the rendered objects, in Helm's order.

    ``include_crds`` also renders the chart's ``crds/`` directory (kopf's peering CRDs), as
    ``helm install`` would install them first. ``api_versions`` are what the target API
    server serves beyond helm's built-in list (``helm install`` discovers them itself).
    """
    binary = helm or ensure_helm()
    cmd = [str(binary), "template", release, str(chart), "--namespace", namespace]
    if include_crds:
        cmd.append("--include-crds")
    for version in api_versions:
        cmd += ["--api-versions", version]
    # Values go through a file on stdin: no shell quoting, types preserved.
    cmd += ["--values", "-"]
    proc = subprocess.run(
        cmd,
        input=json.dumps(dict(values or {})),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise HelmError(proc.stderr.strip())
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


class HelmError(RuntimeError):
    """helm exited non-zero; the message is its stderr."""


def apply_manifests(
    api: Any, docs: Sequence[Mapping[str, Any]], field_manager: str = "aigw-tests"
) -> None:
    """Server-side apply ``docs`` (what ``kubectl apply --server-side`` does).

    CRDs go first and are waited for (Established) so that objects of their kinds, rendered in
    the same set, can be applied right after, the order ``helm install`` achieves with its
    ``crds/`` directory. ``api`` is a ``kubernetes.client.ApiClient``.
    """
    from kubernetes import dynamic

    dyn = dynamic.DynamicClient(api)  # type: ignore[no-untyped-call]
    first = [d for d in docs if d.get("kind") in _FIRST_KINDS]
    rest = [d for d in docs if d.get("kind") not in _FIRST_KINDS]
    for doc in first:
        _apply_one(dyn, doc, field_manager)
    crds = [d["metadata"]["name"] for d in first if d["kind"] == "CustomResourceDefinition"]
    _wait_established(dyn, crds)
    if crds:
        dyn.resources.invalidate_cache()  # discover the new kinds
    for doc in rest:
        _apply_one(dyn, doc, field_manager)


#: Cluster-scoped kinds the chart renders besides CRDs: what a test must delete after itself
#: (CRDs stay: every test shares them). A forgotten cluster-wide finalizer policy would put
#: our finalizer on every object any later test creates.
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterKopfPeering",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
    }
)


def remove_cluster_scoped(api: Any, docs: Sequence[Mapping[str, Any]]) -> None:
    """Delete the cluster-scoped objects among ``docs`` (404 is fine: already gone)."""
    from kubernetes import dynamic
    from kubernetes.client.exceptions import ApiException

    dyn = dynamic.DynamicClient(api)  # type: ignore[no-untyped-call]
    for doc in docs:
        if doc.get("kind") in CLUSTER_SCOPED_KINDS:
            res = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
            try:
                res.delete(name=doc["metadata"]["name"])
            except ApiException as exc:
                if exc.status != 404:
                    raise


def _apply_one(dyn: Any, doc: Mapping[str, Any], field_manager: str) -> None:
    resource = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
    dyn.server_side_apply(
        resource,
        body=dict(doc),
        namespace=doc["metadata"].get("namespace"),
        field_manager=field_manager,
        force_conflicts=True,
    )


def _wait_established(dyn: Any, names: Sequence[str], timeout: float = 60.0) -> None:
    crd_api = dyn.resources.get(
        api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition"
    )
    pending = set(names)
    deadline = time.monotonic() + timeout
    while pending:
        for name in sorted(pending):
            conds = (crd_api.get(name=name).to_dict().get("status") or {}).get("conditions") or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conds):
                pending.discard(name)
        if pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRDs not Established after {timeout}s: {sorted(pending)}")
            time.sleep(0.1)  # poll interval, bounded by the deadline above


def service_account_kubeconfig(
    api: Any, namespace: str, service_account: str, path: Path, expiration_s: int = 3600
) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount (a TokenRequest bearer token).

    This is what a pod of the chart's Deployment would use: the same token, the same RBAC,
    and the cluster CA of ``api`` (a ``kubernetes.client.ApiClient``) for TLS.
    """
    from kubernetes import client

    core = client.CoreV1Api(api)
    req = core.create_namespaced_service_account_token(
        service_account,
        namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=expiration_s)
        ),
    )
    if req.status is None or not req.status.token:
        raise RuntimeError(f"TokenRequest for {namespace}/{service_account} returned no token")
    token = req.status.token
    cfg = api.configuration
    ca = Path(cfg.ssl_ca_cert).read_bytes() if cfg.ssl_ca_cert else b""
    user = f"system:serviceaccount:{namespace}:{service_account}"
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "cluster",
                "cluster": {
                    "server": cfg.host,
                    "certificate-authority-data": base64.b64encode(ca).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "cluster", "user": user}}],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(kubeconfig))
    path.chmod(0o600)
    return path
