"""Build ``kubectl`` from the Go module proxy, cached beside the control plane.

The README's install steps are run as written by a test (``tests/e2e/test_readme_install.py``),
and they call ``kubectl``: the project builds its own, the same way as the control plane
(:mod:`tools.devenv.build`): ``k8s.io/kubernetes/cmd/kubectl`` from a wrapper module that
``replace``\\ s each staging module with its published release, at the control plane's version
(so client and server match), with the same version stamp. It has a work directory of its own
(its ``tools.go`` names only kubectl), so building it never touches the control plane's module
graph; the Go module and build caches are shared, so it costs a few minutes once.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tools.devenv.build import (
    KUBERNETES_VERSION,
    Progress,
    _build_lock,
    _go,
    _go_env,
    _progress_ticker,
    _run,
    _stderr_progress,
    cache_dir,
    kube_wrapper_gomod,
    kubernetes_ldflags,
    staging_replaces,
)


def kubectl_path(version: str = KUBERNETES_VERSION) -> Path:
    """Where the cached binary of ``version`` lives (it may not exist yet)."""
    return cache_dir() / "bin" / f"kubectl-{version}"


def ensure_kubectl(
    version: str = KUBERNETES_VERSION, progress: Progress = _stderr_progress
) -> Path:
    """Return the cached ``kubectl`` binary, building it first if it is missing."""
    dest = kubectl_path(version)
    if dest.exists():
        return dest
    root = cache_dir()
    with _build_lock(root):
        if not dest.exists():  # another session may have built it while we waited
            dest.parent.mkdir(parents=True, exist_ok=True)
            _build_kubectl(root, version, dest, progress)
    return dest


def _build_kubectl(root: Path, version: str, dest: Path, progress: Progress) -> None:
    work = root / "src" / f"kubectl-{version}"
    work.mkdir(parents=True, exist_ok=True)
    log = work / "build.log"
    progress(f"Building kubectl {version} from the Go module proxy (first run only; log {log})")
    go = _go()
    with _progress_ticker("k8s.io/kubernetes sources (download)", progress):
        out = subprocess.run(
            [go, "mod", "download", "-json", f"k8s.io/kubernetes@{version}"],
            cwd=work,
            env=_go_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"go mod download k8s.io/kubernetes@{version} failed: {out.stderr}")
        gomod = Path(json.loads(out.stdout)["GoMod"]).read_text()
    (work / "go.mod").write_text(kube_wrapper_gomod(version, staging_replaces(gomod)))
    (work / "tools.go").write_text(
        '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/kubectl"\n'
    )
    with _progress_ticker("module graph (go mod tidy)", progress):
        _run([go, "mod", "tidy"], work, log)
    tmp = work / "out"
    tmp.mkdir(exist_ok=True)
    with _progress_ticker(f"kubectl {version}", progress):
        _run(
            [
                go,
                "build",
                "-trimpath",
                "-ldflags",
                kubernetes_ldflags(version),
                "-o",
                str(tmp / "kubectl"),
                "k8s.io/kubernetes/cmd/kubectl",
            ],
            work,
            log,
        )
    os.replace(tmp / "kubectl", dest)
