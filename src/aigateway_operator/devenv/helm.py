"""Build ``helm`` from the Go module proxy, cached like the control plane.

No prebuilt binary is downloaded: ``helm.sh/helm/v3`` is fetched from the Go module proxy and
compiled with this machine's Go toolchain through a small wrapper module, then cached as
``<cache>/bin/helm-<version>`` (see :func:`aigateway_operator.devenv.build.cache_dir`), so only
the first run pays for it. The ldflags are the ones helm's own Makefile sets, derived from the
downloaded ``go.mod`` (the client-go version decides the Kubernetes version ``helm template``
and ``helm lint`` assume), so ``helm version`` and capabilities match an official build.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from aigateway_operator.devenv.build import (
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

HELM_VERSION = "v3.22.0"
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
