"""A real single node for the local control plane: containerd v2 + runc + CNI bridge + kubelet.

Everything lives under the node's own directory and the environment's own bridge
(:mod:`tools.devenv.network`): containerd's root, state, sockets, runc root and network
namespaces; kubelet's root, pod logs and volume plugins; the CNI configuration, plugins'
state and IP allocations; and the pods' cgroups under ``/<cgroup root>`` of each cgroup
hierarchy (``aigw-<id>``, so two environments never share ``/kubepods``).

containerd and kubelet (and so every shim, container and mount they make) run in a mount
namespace of the node's own, as kind runs a node in a container: the rootfs overlays, the
pods' volumes and network-namespace pins never appear in the host's mount table, and vanish
with the node's processes. Inside it, ``/var/lib`` and ``/var/log`` are the node's own
directories, because three paths are fixed in the code of kubelet and the CNI library
(``/var/lib/kubelet/device-plugins``, ``/var/log/containers``, ``/var/lib/cni``).

What these machines need (see the README): cgroup v1 (``failCgroupV1: false``, cgroupfs
driver), no ``CAP_SYS_RESOURCE`` (``restrict_oom_score_adj``), no registry (the sandbox image is
ours and imported; pods use images imported with :meth:`Node.import_image`).

The API server reaches the kubelet (logs, exec, port-forward) on the node IP with its own client
certificate; the kubelet authenticates it with the cluster CA and authorises it with a
SubjectAccessReview (webhook mode), as kubeadm sets a node up. The kubelet itself is
``system:node:aigw-node`` (Node authorizer).

:meth:`Node.stop` leaves nothing: pods are deleted through the API first (so kubelet stops
them and CNI releases their addresses), then kubelet and containerd stop, and whatever is
left (a shim, a container process, a mount, a cgroup) is found by its path under this node's
directory or cgroup root and removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tools.devenv import pki as pki_mod
from tools.devenv.build import PAUSE_IMAGE, NodeBinaries, Progress, _stderr_progress
from tools.devenv.kube import ControlPlane, write_kubeconfig
from tools.devenv.network import NodeNetwork
from tools.devenv.procs import ProcessExited, free_port, pid_alive, spawn, terminate, wait_until

NODE_NAME = pki_mod.NODE_NAME
#: containerd refuses a longer shim socket directory (unix socket paths are short).
MAX_SOCKET_DIR = 42
K8S_NAMESPACE = "k8s.io"


def _cgroup_mounts() -> list[Path]:
    """Mount points of every cgroup hierarchy (v1 controllers and a v2 unified one)."""
    mounts = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] in ("cgroup", "cgroup2"):
            mounts.append(Path(parts[1]))
    return mounts


def _mounts_under(directory: Path) -> list[Path]:
    """Mount points at or below ``directory``, deepest first."""
    prefix = str(directory.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(Path(point))
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            if text.encode() in cmdline and pid_alive(int(entry)):
                pids.append(int(entry))
    return pids


def processes_in_mount_ns(inode: int) -> list[int]:
    """Processes whose mount namespace is the one with this inode."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{entry}/ns/mnt").st_ino == inode:
                    pids.append(int(entry))
    return pids


@dataclass
class Node:
    """A running node (or the record of one, loaded from an environment's state)."""

    base_dir: Path
    network: NodeNetwork
    cgroup_root: str
    pids: dict[str, int] = field(default_factory=dict)
    mount_ns: int = 0
    """The inode of the node's mount namespace (no process may be left in it after stop)."""
    containerd_dir: Path | None = None
    ctr_binary: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)

    # --- paths -------------------------------------------------------------------------------

    @property
    def containerd_socket(self) -> Path:
        return self.base_dir / "run" / "containerd.sock"

    @property
    def shim_socket_dir(self) -> Path:
        """Where shims put their sockets: at most 42 characters (containerd's limit)."""
        own = self.base_dir / "s"
        if len(str(own)) <= MAX_SOCKET_DIR:
            return own
        return Path(tempfile.gettempdir()) / f"aigw-s-{self.network.env_id}"

    @property
    def kubelet_root(self) -> Path:
        return self.base_dir / "kubelet"

    @property
    def logs(self) -> Path:
        return self.base_dir / "logs"

    def cgroup_dirs(self) -> list[Path]:
        return [m / self.cgroup_root for m in _cgroup_mounts()]

    # --- state ------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "base_dir": str(self.base_dir),
            "network": self.network.to_json(),
            "cgroup_root": self.cgroup_root,
            "pids": self.pids,
            "mount_ns": self.mount_ns,
            "ctr": str(self.ctr_binary) if self.ctr_binary else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Node:
        return cls(
            base_dir=Path(data["base_dir"]),
            network=NodeNetwork.from_json(data["network"]),
            cgroup_root=str(data["cgroup_root"]),
            pids={k: int(v) for k, v in data.get("pids", {}).items()},
            mount_ns=int(data.get("mount_ns") or 0),
            ctr_binary=Path(data["ctr"]) if data.get("ctr") else None,
        )

    # --- start ------------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        bins: NodeBinaries,
        base_dir: Path,
        plane: ControlPlane,
        network: NodeNetwork,
        progress: Progress = _stderr_progress,
        timeout: float = 120.0,
    ) -> Node:
        """Start containerd and kubelet; return once the node is Ready and schedulable."""
        node = cls(
            base_dir=base_dir,
            network=network,
            cgroup_root=f"aigw-{network.env_id}",
            containerd_dir=bins.containerd_dir,
            ctr_binary=bins.ctr,
        )
        base_dir.mkdir(parents=True, exist_ok=True)
        node.logs.mkdir(exist_ok=True)
        try:
            t0 = time.monotonic()
            node._start_containerd(bins, timeout)
            node.import_image(bins.pause_image)
            node.timings["containerd"] = time.monotonic() - t0
            t1 = time.monotonic()
            node._make_cgroup_root()
            node._start_kubelet(bins, plane, timeout)
            node._wait_ready(plane, timeout)
            node.timings["kubelet_ready"] = time.monotonic() - t1
        except BaseException:
            node.stop()
            raise
        progress(
            f"node {NODE_NAME} Ready on {network.bridge} {network.subnet} "
            f"(containerd {node.timings['containerd']:.1f}s, "
            f"kubelet to Ready {node.timings['kubelet_ready']:.1f}s)"
        )
        return node

    def _start_containerd(self, bins: NodeBinaries, timeout: float) -> None:
        cni_conf = self.base_dir / "cni" / "net.d"
        cni_conf.mkdir(parents=True, exist_ok=True)
        (cni_conf / "10-aigw.conflist").write_text(json.dumps(self.cni_conflist(), indent=2))
        config = self.base_dir / "containerd.toml"
        config.write_text(self.containerd_config(bins))
        env = dict(os.environ)
        # containerd finds its shim on PATH; runc is named in the config.
        env["PATH"] = f"{bins.containerd_dir}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
        # The node's mount namespace: unshare and sh exec, so the pid is containerd's.
        binds = []
        for host_dir in ("/var/lib", "/var/log"):
            own = self.base_dir / "host" / host_dir.strip("/").replace("/", "-")
            own.mkdir(parents=True, exist_ok=True)
            binds.append(f"mount --bind {shlex.quote(str(own))} {host_dir}")
        script = " && ".join(
            [
                *binds,
                f"exec {shlex.quote(str(bins.containerd))} --config {shlex.quote(str(config))}",
            ]
        )
        proc = spawn(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script],
            self.logs / "containerd.log",
            env=env,
        )
        self.pids["containerd"] = proc.pid

        def up() -> bool:
            if proc.poll() is not None:
                raise ProcessExited(f"containerd exited with code {proc.returncode}")
            return self.ctr("version").returncode == 0

        wait_until(up, timeout, "containerd")
        self.mount_ns = os.stat(f"/proc/{proc.pid}/ns/mnt").st_ino

    def containerd_config(self, bins: NodeBinaries) -> str:
        """containerd's configuration (format version 4): every path under this node's dir."""
        d = self.base_dir
        return f"""# written by tools/devenv/node.py
version = 4
root = '{d / "containerd" / "root"}'
state = '{d / "containerd" / "state"}'
temp = '{d / "containerd" / "tmp"}'
imports = []
# NRI would listen on /var/run/nri; nothing here uses it.
disabled_plugins = ['io.containerd.nri.v1.nri']

[plugins]
  [plugins.'io.containerd.server.v1.grpc']
    address = '{self.containerd_socket}'
  [plugins.'io.containerd.server.v1.ttrpc']
    address = '{d / "run" / "containerd.sock.ttrpc"}'
  [plugins.'io.containerd.server.v1.debug']
    address = ''
  [plugins.'io.containerd.server.v1.metrics']
    address = ''
  [plugins.'io.containerd.internal.v1.opt']
    path = '{d / "containerd" / "opt"}'
  [plugins.'io.containerd.image-verifier.v1.bindir']
    bin_dir = '{d / "containerd" / "image-verifier"}'
  [plugins.'io.containerd.shim.v1.manager']
    socket_dir = '{self.shim_socket_dir}'

  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'

  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '{PAUSE_IMAGE}'

  [plugins.'io.containerd.cri.v1.runtime']
    # No CAP_SYS_RESOURCE here: sandboxes fail with "can't get final child's PID" otherwise.
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    cdi_spec_dirs = []
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '{bins.runc}'
          Root = '{d / "runc"}'
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['{bins.cni_dir}']
      conf_dir = '{d / "cni" / "net.d"}'
      max_conf_num = 1
"""

    def cni_conflist(self) -> dict[str, Any]:
        first, last = self.network.pod_range
        return {
            "cniVersion": "1.0.0",
            "name": "aigw",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.network.bridge,
                    # The bridge already has the node IP; not a gateway means the plugin
                    # never turns on ip_forward, and without ipMasq it writes no iptables.
                    "isGateway": False,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [
                            [
                                {
                                    "subnet": str(self.network.subnet),
                                    "rangeStart": first,
                                    "rangeEnd": last,
                                    "gateway": self.network.gateway,
                                }
                            ]
                        ],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.base_dir / "cni" / "ipam"),
                    },
                }
            ],
        }

    def ctr(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        if self.ctr_binary is None:
            raise RuntimeError("this node record has no ctr binary")
        return subprocess.run(
            [str(self.ctr_binary), "--address", str(self.containerd_socket), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )

    def import_image(self, archive: Path) -> list[str]:
        """``ctr image import`` an OCI archive into the CRI namespace; the names imported."""
        proc = self.ctr(
            "--namespace", K8S_NAMESPACE, "images", "import", "--no-unpack=false", str(archive)
        )
        if proc.returncode != 0:
            raise RuntimeError(f"ctr images import {archive} failed: {proc.stderr.strip()}")
        return [
            line.split()[1]
            for line in proc.stdout.splitlines()
            if line.startswith(("Importing", "unpacking"))
        ]

    def images(self) -> dict[str, int]:
        """Images in the CRI namespace: name -> size in bytes (as ctr counts it)."""
        proc = self.ctr("--namespace", K8S_NAMESPACE, "images", "ls")
        out: dict[str, int] = {}
        for line in proc.stdout.splitlines()[1:]:
            parts = line.split()
            if parts:
                out[parts[0]] = _parse_size(parts[3] + (parts[4] if len(parts) > 4 else ""))
        return out

    def _make_cgroup_root(self) -> None:
        """kubelet's ``cgroupRoot`` must exist in every hierarchy before it starts."""
        for path in self.cgroup_dirs():
            path.mkdir(exist_ok=True)
            if path.parent.name == "cpuset" or (path.parent / "cpuset.cpus").exists():
                for name in ("cpuset.cpus", "cpuset.mems"):
                    parent_value = (path.parent / name).read_text().strip()
                    if not (path / name).read_text().strip():
                        (path / name).write_text(parent_value)

    def kubelet_config(self, plane: ControlPlane, port: int, healthz_port: int) -> dict[str, Any]:
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # These machines run cgroup v1 and no systemd as PID 1.
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{self.cgroup_root}",
            "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "address": self.network.gateway,
            "port": port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": healthz_port,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(plane.pki.ca_cert)},
            },
            "authorization": {"mode": "Webhook"},
            "rotateCertificates": False,
            "serverTLSBootstrap": False,
            "podLogsDir": str(self.base_dir / "pod-logs"),
            "volumePluginDir": str(self.base_dir / "volume-plugins"),
            "resolvConf": "",
            # No kube-proxy and no iptables here: kubelet writes no chains of its own.
            "makeIPTablesUtilChains": False,
            # Imported images cannot be pulled again: never collect them.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "50Mi",
                "nodefs.available": "1%",
                "nodefs.inodesFree": "1%",
                "imagefs.available": "1%",
            },
            "nodeStatusUpdateFrequency": "4s",
            "syncFrequency": "10s",
            "fileCheckFrequency": "0s",
            "shutdownGracePeriod": "0s",
            "maxPods": 50,
        }

    def _start_kubelet(self, bins: NodeBinaries, plane: ControlPlane, timeout: float) -> None:
        port, healthz_port = free_port(), free_port()
        config = self.base_dir / "kubelet.yaml"
        config.write_text(yaml.safe_dump(self.kubelet_config(plane, port, healthz_port)))
        kubeconfig = self.base_dir / "kubelet.kubeconfig"
        pki = plane.pki
        write_kubeconfig(
            kubeconfig,
            plane.url,
            pki.ca_cert,
            pki.node_cert,
            pki.node_key,
            f"system:node:{NODE_NAME}",
        )
        self.kubelet_root.mkdir(exist_ok=True)
        proc = spawn(
            [
                "nsenter",
                f"--target={self.pids['containerd']}",
                "--mount",
                "--",
                str(bins.kubelet),
                f"--config={config}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={self.kubelet_root}",
                f"--cert-dir={self.base_dir / 'kubelet-pki'}",
                f"--node-ip={self.network.gateway}",
                f"--hostname-override={NODE_NAME}",
                "--v=1",
            ],
            self.logs / "kubelet.log",
        )
        self.pids["kubelet"] = proc.pid

        def healthy() -> bool:
            if proc.poll() is not None:
                raise ProcessExited(f"kubelet exited with code {proc.returncode}")
            with urllib.request.urlopen(
                f"http://127.0.0.1:{healthz_port}/healthz", timeout=3
            ) as resp:
                return bool(resp.status == 200)

        wait_until(healthy, timeout, "kubelet /healthz")

    def _wait_ready(self, plane: ControlPlane, timeout: float) -> None:
        ctx = ssl.create_default_context(cafile=str(plane.pki.ca_cert))
        ctx.load_cert_chain(str(plane.pki.admin_cert), str(plane.pki.admin_key))
        kubelet = self.pids["kubelet"]

        def ready() -> bool:
            if not pid_alive(kubelet):
                raise ProcessExited("kubelet exited before its node became Ready")
            with urllib.request.urlopen(  # noqa: S310 - our API server
                f"{plane.url}/api/v1/nodes/{NODE_NAME}", timeout=3, context=ctx
            ) as resp:
                node = json.loads(resp.read())
            conditions = node.get("status", {}).get("conditions") or []
            is_ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
            # The node-lifecycle controller lifts the not-ready taint kubelet registers with.
            taints = node.get("spec", {}).get("taints") or []
            return is_ready and not any(t["key"].startswith("node.kubernetes.io/") for t in taints)

        wait_until(ready, timeout, f"node {NODE_NAME} Ready and schedulable", interval=0.25)

    # --- stop -------------------------------------------------------------------------------

    def delete_pods(self, plane_url: str, pki: pki_mod.Pki, timeout: float = 60.0) -> None:
        """Delete every pod through the API and wait until containerd runs no task.

        Call with the scheduler stopped, or a Deployment's new pods would start again.
        """
        ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        ctx.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        req = urllib.request.Request(  # noqa: S310 - our API server
            f"{plane_url}/api/v1/pods", method="GET"
        )
        with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:  # noqa: S310
            pods = json.loads(resp.read()).get("items") or []
        for pod in pods:
            meta = pod["metadata"]
            if pod.get("spec", {}).get("nodeName") != NODE_NAME:
                continue
            delete = urllib.request.Request(  # noqa: S310 - our API server
                f"{plane_url}/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
                "?gracePeriodSeconds=2",
                method="DELETE",
            )
            with contextlib.suppress(OSError):
                urllib.request.urlopen(delete, timeout=10, context=ctx).close()  # noqa: S310

        def no_tasks() -> bool:
            proc = self.ctr("--namespace", K8S_NAMESPACE, "tasks", "ls", timeout=10)
            return proc.returncode == 0 and len(proc.stdout.strip().splitlines()) <= 1

        wait_until(no_tasks, timeout, "containerd to run no task", interval=0.25)

    def stop(self) -> None:
        """Stop kubelet and containerd and remove everything they left (idempotent)."""
        pid = self.pids.pop("kubelet", None)
        if pid:
            terminate(pid)
        self._kill_cgroup_processes()
        pid = self.pids.pop("containerd", None)
        if pid:
            terminate(pid)
        # Shims outlive containerd by design; ours name our socket on their command line.
        for leftover in _processes_mentioning(str(self.containerd_socket)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(leftover, signal.SIGKILL)
        for leftover in _processes_mentioning(str(self.base_dir)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(leftover, signal.SIGKILL)
        if self.mount_ns:
            # Whatever still holds the node's mount namespace (and so its mounts) is ours.
            for leftover in processes_in_mount_ns(self.mount_ns):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(leftover, signal.SIGKILL)
        self._kill_cgroup_processes()
        for point in _mounts_under(self.base_dir):
            if subprocess.run(["umount", str(point)], capture_output=True, check=False).returncode:
                subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)
        self._remove_cgroups()
        if not self.shim_socket_dir.is_relative_to(self.base_dir):
            shutil.rmtree(self.shim_socket_dir, ignore_errors=True)

    def _kill_cgroup_processes(self, timeout: float = 10.0) -> None:
        """SIGKILL every process in this node's cgroups (containers whose shim is gone)."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self._cgroup_pids()
            if not pids or time.monotonic() > deadline:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)  # let the kernel reap them, bounded by the deadline above

    def _cgroup_pids(self) -> set[int]:
        pids: set[int] = set()
        for root in self.cgroup_dirs():
            if not root.exists():
                continue
            for procs in root.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    pids.update(int(p) for p in procs.read_text().split())
        return pids

    def _remove_cgroups(self) -> None:
        for root in self.cgroup_dirs():
            if not root.exists():
                continue
            dirs = sorted(
                (p for p in root.rglob("*") if p.is_dir()),
                key=lambda p: len(p.parts),
                reverse=True,
            )
            for path in [*dirs, root]:
                with contextlib.suppress(OSError):
                    path.rmdir()

    def leftovers(self) -> dict[str, list[str]]:
        """What of this node still exists on the machine (empty lists when it is all gone)."""
        in_ns = processes_in_mount_ns(self.mount_ns) if self.mount_ns else []
        return {
            "processes": [str(p) for p in _processes_mentioning(str(self.base_dir)) + in_ns],
            "mounts": [str(p) for p in _mounts_under(self.base_dir)]
            if self.base_dir.exists()
            else [],
            "cgroups": [str(p) for p in self.cgroup_dirs() if p.exists()],
        }


def _parse_size(text: str) -> int:
    units = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}
    for unit, factor in sorted(units.items(), key=lambda u: -len(u[0])):
        if text.endswith(unit):
            with contextlib.suppress(ValueError):
                return int(float(text[: -len(unit)]) * factor)
    return 0
