"""Build the local control plane and node from Go modules (nothing prebuilt is downloaded).

No prebuilt binary is downloaded: everything comes from the Go module proxy and is compiled
with the Go toolchain on this machine, then cached under
``~/.cache/aigateway-operator/bin/`` keyed by version, so only the first run pays for it.

``k8s.io/kubernetes`` requires its staging modules (``k8s.io/api``, ``k8s.io/apiserver`` …)
at ``v0.0.0`` and replaces them with ``./staging/...`` paths that only exist in its git tree.
We build from a small wrapper module that ``replace``\\ s each of those with its published
``v0.<minor>.<patch>`` release. The list is read from the downloaded ``go.mod`` rather than
written by hand, so a version bump needs no code change.

etcd is built from ``go.etcd.io/etcd/server/v3`` through a one-file main calling ``etcdmain``.

The node (:func:`ensure_node`): kubelet and kube-scheduler from the same wrapper module (same
``replace`` lines, same ldflags), containerd v2 with its runc shim and ``ctr``, the CNI
``bridge``, ``host-local`` and ``loopback`` plugins (each ``go install``\\ ed at its release
tag), and the sandbox ("pause") image: a small Go program of ours made into an OCI archive
(:mod:`tools.devenv.images`). runc is Debian's package (``scripts/setup-system.sh``). Each part
is cached under its own version key, beside the control plane's binaries.
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
CONTAINERD_VERSION = "v2.4.2"
CNI_PLUGINS_VERSION = "v1.9.1"
#: Our own sandbox program (see PAUSE_MAIN); bump when its source changes.
PAUSE_VERSION = "3.10-aigw1"
PAUSE_IMAGE = f"localhost/aigw-pause:{PAUSE_VERSION}"
CONTAINERD_MODULE = "github.com/containerd/containerd/v2"
CNI_MODULE = "github.com/containernetworking/plugins"
#: The containerd commands the node needs: the daemon, its runc shim, and ctr (image import).
CONTAINERD_COMMANDS = ("containerd", "containerd-shim-runc-v2", "ctr")
#: The CNI plugins of the node's network, by their package under the plugins module.
CNI_PLUGINS = {
    "bridge": "main/bridge",
    "host-local": "ipam/host-local",
    "loopback": "main/loopback",
}
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


@dataclass(frozen=True)
class NodeBinaries:
    """Everything a node runs besides the control plane (see :func:`ensure_node`)."""

    kubelet: Path
    kube_scheduler: Path
    containerd_dir: Path
    """``containerd``, ``containerd-shim-runc-v2`` (found on PATH by containerd) and ``ctr``."""
    cni_dir: Path
    """``bridge``, ``host-local``, ``loopback``."""
    pause_image: Path
    """The sandbox image as an OCI archive (``ctr image import``)."""
    runc: Path

    @property
    def containerd(self) -> Path:
        return self.containerd_dir / "containerd"

    @property
    def ctr(self) -> Path:
        return self.containerd_dir / "ctr"


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
def _build_lock(root: Path, name: str = ".build.lock") -> Iterator[None]:
    """One build at a time per cache dir and lock name (parallel test sessions share the
    cache; the Go builds and the image builds take different locks)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / name).open("w") as fh:
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
        missing = [
            (name, dest)
            for name, dest in (
                ("kube-apiserver", bins.kube_apiserver),
                ("kube-controller-manager", bins.kube_controller_manager),
            )
            if not dest.exists()
        ]
        if missing:
            _build_kubernetes(root, kubernetes_version, missing, progress)
        if not bins.etcd.exists():
            _build_etcd(root, etcd_version, bins.etcd, progress)
    return bins


#: Every command built from the wrapper module: its tools.go names them all, so one module
#: graph (one ``go mod tidy``) serves the control plane, the node and ``kubectl`` alike.
KUBERNETES_COMMANDS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kubelet",
    "kube-scheduler",
    "kubectl",
)


def kubectl_path(version: str = KUBERNETES_VERSION) -> Path:
    """Where the cached ``kubectl`` of ``version`` lives (it may not exist yet)."""
    return cache_dir() / "bin" / f"kubectl-{version}"


def ensure_kubectl(
    version: str = KUBERNETES_VERSION, progress: Progress = _stderr_progress
) -> Path:
    """Return the cached ``kubectl`` (the README's install steps call it: the test that runs
    them as written needs the project's own), built like the control plane from the same
    wrapper module at the same version, so client and server match."""
    dest = kubectl_path(version)
    if dest.exists():
        return dest
    root = cache_dir()
    with _build_lock(root):
        if not dest.exists():  # another session may have built it while we waited
            dest.parent.mkdir(parents=True, exist_ok=True)
            _build_kubernetes(root, version, [("kubectl", dest)], progress)
    return dest


def kubernetes_ldflags(version: str) -> str:
    """The version stamp ``hack/lib/version.sh`` would set (``kubectl version``, node info)."""
    match = re.fullmatch(r"v(\d+)\.(\d+)\.\d+", version)
    if not match:
        raise ValueError(f"unsupported Kubernetes version {version!r}")
    major, minor = match.groups()
    pkg = "k8s.io/component-base/version"
    return " ".join(
        [
            "-s -w",
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    )


def _build_kubernetes(
    root: Path, version: str, targets: list[tuple[str, Path]], progress: Progress
) -> None:
    """Build each ``(command, destination)`` of ``k8s.io/kubernetes/cmd`` from the wrapper."""
    work = root / "src" / f"kubernetes-{version}"
    work.mkdir(parents=True, exist_ok=True)
    log = work / "build.log"
    names = ", ".join(name for name, _ in targets)
    progress(
        f"Building {names} {version} from the Go module proxy "
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
    imports = "".join(f'\t_ "k8s.io/kubernetes/cmd/{cmd}"\n' for cmd in KUBERNETES_COMMANDS)
    (work / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{imports})\n")
    with _progress_ticker("module graph (go mod tidy)", progress):
        _run([go, "mod", "tidy"], work, log)
    ldflags = kubernetes_ldflags(version)
    tmp = work / "out"
    tmp.mkdir(exist_ok=True)
    for name, dest in targets:
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


# --- the node ----------------------------------------------------------------------------------

#: The sandbox ("pause") program: PID 1 of every pod, holding its namespaces. It reaps the
#: orphans a shared PID namespace hands it and exits on SIGINT/SIGTERM, like Kubernetes' own
#: pause.c, written in Go so the machine's toolchain builds it statically.
PAUSE_MAIN = """package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Println("pause (aigateway-operator dev environment)")
		return
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "warning: pause should be the first process")
	}
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			fmt.Fprintf(os.Stderr, "shutting down, got signal: %v\\n", sig)
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
"""


def runc_path() -> Path:
    """Debian's runc (``scripts/setup-system.sh`` installs it)."""
    found = shutil.which("runc") or ("/usr/sbin/runc" if Path("/usr/sbin/runc").exists() else None)
    if not found:
        raise RuntimeError(
            "runc is required by the node (Debian package runc); run `make setup`, whose "
            "scripts/setup-system.sh installs it"
        )
    return Path(found)


def node_binaries(
    kubernetes_version: str = KUBERNETES_VERSION,
    containerd_version: str = CONTAINERD_VERSION,
    cni_version: str = CNI_PLUGINS_VERSION,
    pause_version: str = PAUSE_VERSION,
) -> NodeBinaries:
    """Where each node part is cached (it may not be built yet)."""
    bindir = cache_dir() / "bin"
    return NodeBinaries(
        kubelet=bindir / f"kubelet-{kubernetes_version}",
        kube_scheduler=bindir / f"kube-scheduler-{kubernetes_version}",
        containerd_dir=bindir / f"containerd-{containerd_version}",
        cni_dir=bindir / f"cni-plugins-{cni_version}",
        pause_image=cache_dir() / "images" / f"pause-{pause_version}.oci.tar",
        runc=Path("/usr/sbin/runc"),
    )


def _complete(bins: NodeBinaries) -> bool:
    return (
        bins.kubelet.exists()
        and bins.kube_scheduler.exists()
        and all((bins.containerd_dir / c).exists() for c in CONTAINERD_COMMANDS)
        and all((bins.cni_dir / p).exists() for p in CNI_PLUGINS)
        and bins.pause_image.exists()
    )


def ensure_node(
    kubernetes_version: str = KUBERNETES_VERSION,
    containerd_version: str = CONTAINERD_VERSION,
    cni_version: str = CNI_PLUGINS_VERSION,
    progress: Progress = _stderr_progress,
) -> NodeBinaries:
    """Return the node's cached parts, building whatever is missing (minutes the first time)."""
    bins = node_binaries(kubernetes_version, containerd_version, cni_version)
    bins = NodeBinaries(**{**bins.__dict__, "runc": runc_path()})
    if _complete(bins):
        return bins
    root = cache_dir()
    start = time.monotonic()
    with _build_lock(root):
        (root / "bin").mkdir(parents=True, exist_ok=True)
        missing = [
            (name, dest)
            for name, dest in (("kubelet", bins.kubelet), ("kube-scheduler", bins.kube_scheduler))
            if not dest.exists()
        ]
        if missing:
            _build_kubernetes(root, kubernetes_version, missing, progress)
        if not all((bins.containerd_dir / c).exists() for c in CONTAINERD_COMMANDS):
            _build_containerd(root, containerd_version, bins.containerd_dir, progress)
        if not all((bins.cni_dir / p).exists() for p in CNI_PLUGINS):
            _build_cni(root, cni_version, bins.cni_dir, progress)
        if not bins.pause_image.exists():
            _build_pause(root, bins.pause_image, progress)
    progress(f"node parts ready in {time.monotonic() - start:.0f}s")
    return bins


def _go_install(
    work: Path,
    packages: list[tuple[str, str]],
    dest_dir: Path,
    log: Path,
    progress: Progress,
    tags: str = "",
    ldflags: str = "-s -w",
) -> None:
    """``go install pkg@version`` each ``(package@version, command name)`` into ``dest_dir``.

    ``go install`` at a version builds exactly the released module (its own go.mod and
    go.sum, no wrapper); the results land in a scratch GOBIN first, then move together.
    """
    go = _go()
    gobin = work / "gobin"
    gobin.mkdir(parents=True, exist_ok=True)
    for package, name in packages:
        cmd = [go, "install", "-trimpath", "-ldflags", ldflags]
        if tags:
            cmd += ["-tags", tags]
        with _progress_ticker(name, progress):
            _run_env([*cmd, package], work, log, {"GOBIN": str(gobin)})
    staging = dest_dir.with_name(dest_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for _, name in packages:
        os.replace(gobin / name, staging / name)
    os.replace(staging, dest_dir)


def _run_env(cmd: list[str], cwd: Path, log: Path, extra: dict[str, str]) -> None:
    with log.open("ab") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n".encode())
        fh.flush()
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            env={**_go_env(), **extra},
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"{' '.join(cmd[:3])} failed ({proc.returncode}); log {log}:\n{tail}")


def _build_containerd(root: Path, version: str, dest: Path, progress: Progress) -> None:
    work = root / "src" / f"containerd-{version}"
    work.mkdir(parents=True, exist_ok=True)
    log = work / "build.log"
    progress(f"Building containerd {version} (daemon, runc shim, ctr) from the Go module proxy")
    # The release's own build tags for a static binary without the cgo snapshotters.
    ldflags = f"-s -w -X {CONTAINERD_MODULE}/version.Version={version}"
    _go_install(
        work,
        [(f"{CONTAINERD_MODULE}/cmd/{c}@{version}", c) for c in CONTAINERD_COMMANDS],
        dest,
        log,
        progress,
        tags="no_btrfs no_zfs no_devmapper",
        ldflags=ldflags,
    )


def _build_cni(root: Path, version: str, dest: Path, progress: Progress) -> None:
    work = root / "src" / f"cni-plugins-{version}"
    work.mkdir(parents=True, exist_ok=True)
    log = work / "build.log"
    progress(f"Building the CNI plugins {version} (bridge, host-local, loopback)")
    ldflags = f"-s -w -X {CNI_MODULE}/pkg/utils/buildversion.BuildVersion={version}"
    _go_install(
        work,
        [(f"{CNI_MODULE}/plugins/{path}@{version}", name) for name, path in CNI_PLUGINS.items()],
        dest,
        log,
        progress,
        ldflags=ldflags,
    )


def _build_pause(root: Path, dest: Path, progress: Progress) -> None:
    from tools.devenv.images import single_file_image

    work = root / "src" / f"pause-{PAUSE_VERSION}"
    work.mkdir(parents=True, exist_ok=True)
    log = work / "build.log"
    progress(f"Building the sandbox image pause {PAUSE_VERSION}")
    (work / "go.mod").write_text(f"module aigw.local/pause\n\ngo {GO_VERSION_DIRECTIVE}\n")
    (work / "main.go").write_text(PAUSE_MAIN)
    with _progress_ticker("pause", progress):
        _run([_go(), "build", "-trimpath", "-ldflags", "-s -w", "-o", "pause", "."], work, log)
        dest.parent.mkdir(parents=True, exist_ok=True)
        single_file_image(
            work / "pause",
            dest,
            name=PAUSE_IMAGE,
            entrypoint=["/pause"],
            user="65535:65535",
        )
