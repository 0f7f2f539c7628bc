"""Build the local control plane (kube-apiserver, kube-controller-manager, etcd) from Go modules.

No prebuilt binary is downloaded: everything comes from the Go module proxy and is compiled
with the Go toolchain on this machine, then cached under
``~/.cache/aigateway-operator/bin/`` keyed by version, so only the first run pays for it.

``k8s.io/kubernetes`` requires its staging modules (``k8s.io/api``, ``k8s.io/apiserver`` …)
at ``v0.0.0`` and replaces them with ``./staging/...`` paths that only exist in its git tree.
We build from a small wrapper module that ``replace``\\ s each of those with its published
``v0.<minor>.<patch>`` release. The list is read from the downloaded ``go.mod`` rather than
written by hand, so a version bump needs no code change.

etcd is built from ``go.etcd.io/etcd/server/v3`` through a one-file main calling ``etcdmain``.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.37.2"
ETCD_VERSION = "v3.6.16"
GO_VERSION_DIRECTIVE = "1.26.0"

Progress = Callable[[str], None]


def cache_dir() -> Path:
    """``$AIGW_CACHE_DIR`` or ``$XDG_CACHE_HOME/aigateway-operator`` or ``~/.cache/...``."""
    explicit = os.environ.get("AIGW_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aigateway-operator"


@dataclass(frozen=True)
class ControlPlaneBinaries:
    kube_apiserver: Path
    kube_controller_manager: Path
    etcd: Path


def staging_version(kubernetes_version: str) -> str:
    """``v1.37.2`` -> ``v0.37.2``: the published tag of every staging module for that release."""
    match = re.fullmatch(r"v1\.(\d+)\.(\d+)", kubernetes_version)
    if not match:
        raise ValueError(f"unsupported Kubernetes version {kubernetes_version!r}")
    return f"v0.{match.group(1)}.{match.group(2)}"


def staging_replaces(kubernetes_gomod: str) -> list[str]:
    """Module paths that ``k8s.io/kubernetes``'s go.mod replaces with ``./staging/...`` dirs."""
    found = re.findall(r"^\s*(k8s\.io/[A-Za-z0-9._/-]+)\s+=>\s+\./staging/", kubernetes_gomod, re.M)
    if not found:
        raise RuntimeError("no ./staging replace directives found in k8s.io/kubernetes go.mod")
    return sorted(set(found))


def kube_wrapper_gomod(kubernetes_version: str, staging: list[str]) -> str:
    """The wrapper module's go.mod: require kubernetes, replace each staging module."""
    ver = staging_version(kubernetes_version)
    lines = [
        "module aigw.local/kubebuild",
        "",
        f"go {GO_VERSION_DIRECTIVE}",
        "",
        f"require k8s.io/kubernetes {kubernetes_version}",
        "",
    ]
    lines += [f"replace {mod} => {mod} {ver}" for mod in staging]
    return "\n".join(lines) + "\n"


def _go() -> str:
    found = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    if not found:
        raise RuntimeError("the Go toolchain is required to build the local control plane (go)")
    return found


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env["CGO_ENABLED"] = "0"
    env.setdefault("GOFLAGS", "-mod=mod")
    return env


@contextmanager
def _progress_ticker(what: str, progress: Progress, every: float = 15.0) -> Iterator[None]:
    """Say what is being built, and keep saying it with the elapsed time while it runs."""
    start = time.monotonic()
    done = threading.Event()

    def tick() -> None:
        while not done.wait(every):
            progress(f"  ... still building {what} ({time.monotonic() - start:.0f}s elapsed)")

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        progress(f"  built {what} in {time.monotonic() - start:.0f}s")


def _run(cmd: list[str], cwd: Path, log: Path) -> None:
    with log.open("ab") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n".encode())
        fh.flush()
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            env=_go_env(),
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"{' '.join(cmd[:3])} failed ({proc.returncode}); log {log}:\n{tail}")


@contextmanager
def _build_lock(root: Path) -> Iterator[None]:
    """One build at a time per cache dir (parallel test sessions share the cache)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".build.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _stderr_progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ensure_control_plane(
    kubernetes_version: str = KUBERNETES_VERSION,
    etcd_version: str = ETCD_VERSION,
    progress: Progress = _stderr_progress,
) -> ControlPlaneBinaries:
    """Return cached binaries, building whatever is missing (minutes the first time)."""
    root = cache_dir()
    bindir = root / "bin"
    bins = ControlPlaneBinaries(
        kube_apiserver=bindir / f"kube-apiserver-{kubernetes_version}",
        kube_controller_manager=bindir / f"kube-controller-manager-{kubernetes_version}",
        etcd=bindir / f"etcd-{etcd_version}",
    )
    if all(p.exists() for p in (bins.kube_apiserver, bins.kube_controller_manager, bins.etcd)):
        return bins
    with _build_lock(root):
        bindir.mkdir(parents=True, exist_ok=True)
        if not (bins.kube_apiserver.exists() and bins.kube_controller_manager.exists()):
            _build_kubernetes(root, kubernetes_version, bins, progress)
        if not bins.etcd.exists():
            _build_etcd(root, etcd_version, bins.etcd, progress)
    return bins


def _build_kubernetes(
    root: Path, version: str, bins: ControlPlaneBinaries, progress: Progress
) -> None:
    work = root / "src" / f"kubernetes-{version}"
    work.mkdir(parents=True, exist_ok=True)
    log = work / "build.log"
    progress(
        f"Building kube-apiserver and kube-controller-manager {version} from the Go module proxy "
        f"(first run only: several minutes; log {log})"
    )
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
        "//go:build tools\n\npackage tools\n\n"
        'import (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver"\n'
        '\t_ "k8s.io/kubernetes/cmd/kube-controller-manager"\n)\n'
    )
    with _progress_ticker("module graph (go mod tidy)", progress):
        _run([go, "mod", "tidy"], work, log)
    major, minor = re.fullmatch(r"v(\d+)\.(\d+)\.\d+", version).groups()  # type: ignore[union-attr]
    pkg = "k8s.io/component-base/version"
    ldflags = " ".join(
        [
            "-s -w",
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    )
    tmp = work / "out"
    tmp.mkdir(exist_ok=True)
    for name, dest in (
        ("kube-apiserver", bins.kube_apiserver),
        ("kube-controller-manager", bins.kube_controller_manager),
    ):
        with _progress_ticker(name, progress):
            _run(
                [
                    go,
                    "build",
                    "-trimpath",
                    "-ldflags",
                    ldflags,
                    "-o",
                    str(tmp / name),
                    f"k8s.io/kubernetes/cmd/{name}",
                ],
                work,
                log,
            )
        os.replace(tmp / name, dest)


def _build_etcd(root: Path, version: str, dest: Path, progress: Progress) -> None:
    work = root / "src" / f"etcd-{version}"
    work.mkdir(parents=True, exist_ok=True)
    log = work / "build.log"
    progress(f"Building etcd {version} from the Go module proxy (log {log})")
    go = _go()
    (work / "go.mod").write_text(f"module aigw.local/etcdbuild\n\ngo {GO_VERSION_DIRECTIVE}\n")
    (work / "main.go").write_text(
        'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\n'
        "func main() { etcdmain.Main(os.Args) }\n"
    )
    with _progress_ticker("etcd", progress):
        _run([go, "get", f"go.etcd.io/etcd/server/v3@{version}"], work, log)
        _run([go, "mod", "tidy"], work, log)
        _run(
            [go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(work / "etcd"), "."],
            work,
            log,
        )
    os.replace(work / "etcd", dest)
