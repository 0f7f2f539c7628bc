"""A real, secure Kubernetes control plane: etcd, kube-apiserver, controller-manager (+ scheduler).

Without a node (the default, as controller-runtime's envtest) it serves on loopback: objects
are stored, validated (OpenAPI, CEL), authorised (RBAC) and served exactly as on a real
cluster, but no Pod ever runs, and kube-controller-manager runs only the controllers an
operator's contract depends on (garbage collection of owned objects, namespace deletion,
service accounts).

For a node (``address`` = the node network's gateway, ``scheduler`` given) the API server
serves and advertises on that address instead (pods reach it there), authorises kubelets with
the Node authorizer (``Node,RBAC``, NodeRestriction admission), talks to kubelets with its own
client certificate, resolves Service references (webhooks) to endpoint IPs
(``--enable-aggregator-routing``: there is no kube-proxy), and kube-scheduler plus the
deployment, replicaset, node-lifecycle and endpointslice controllers run too. etcd stays on
loopback either way.
"""

from __future__ import annotations

import base64
import ssl
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tools.devenv import pki as pki_mod
from tools.devenv.build import ControlPlaneBinaries
from tools.devenv.procs import ProcessExited, free_port, spawn, terminate, wait_until

KCM_CONTROLLERS = ",".join(
    [
        "garbage-collector-controller",  # ownerReferences: owned Secrets go with their owner
        "namespace-controller",  # namespace deletion finishes
        "serviceaccount-controller",
        "serviceaccount-token-controller",
        "clusterrole-aggregation-controller",  # aggregated view/edit ClusterRoles
        "root-ca-certificate-publisher-controller",
    ]
)
#: Added when there is a node: Deployments roll out, the node's not-ready taint is lifted, and
#: Services get EndpointSlices (the API server routes webhook calls through them, below).
KCM_NODE_CONTROLLERS = ",".join(
    [
        "deployment-controller",
        "replicaset-controller",
        "node-lifecycle-controller",
        "endpointslice-controller",
    ]
)
LOOPBACK = "127.0.0.1"


@dataclass
class ControlPlane:
    base_dir: Path
    apiserver_port: int
    pids: dict[str, int]
    argv: dict[str, list[str]] = field(default_factory=dict)
    """How each process was started, so a fault test can restart one of them."""
    address: str = LOOPBACK
    """Where the API server serves: loopback, or the node network's gateway."""

    @property
    def url(self) -> str:
        return f"https://{self.address}:{self.apiserver_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.base_dir / "admin.kubeconfig"

    @property
    def pki(self) -> pki_mod.Pki:
        return pki_mod.Pki(self.base_dir / "pki")

    def restart_apiserver(self, timeout: float = 120.0) -> None:
        """Kill kube-apiserver (SIGKILL, as a crash) and start it again on the same port."""
        pid = self.pids.pop("kube-apiserver", None)
        if pid:
            terminate(pid, timeout=0.1)  # SIGTERM, then SIGKILL almost at once
        logs = self.base_dir / "logs"
        api = spawn(self.argv["kube-apiserver"], logs / "kube-apiserver.restarted.log")
        self.pids["kube-apiserver"] = api.pid
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        ctx.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        wait_until(
            lambda: _http_ok(f"{self.url}/readyz", api, "kube-apiserver", ctx),
            timeout,
            "kube-apiserver /readyz after restart",
        )

    def stop(self) -> None:
        # Reverse start order: controllers, then the API server, then its storage.
        for name in ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
            pid = self.pids.pop(name, None)
            if pid:
                terminate(pid)


def _spawn(name: str, argv: list[str], log_dir: Path) -> subprocess.Popen[bytes]:
    return spawn(argv, log_dir / f"{name}.log")


def write_kubeconfig(
    path: Path, server: str, ca: Path, cert: Path, key: Path, user: str = "admin"
) -> None:
    """A self-contained kubeconfig (certificates embedded) for a client-certificate user."""

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "aigw-dev",
                "cluster": {"server": server, "certificate-authority-data": b64(ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)},
            }
        ],
        "contexts": [{"name": "aigw-dev", "context": {"cluster": "aigw-dev", "user": user}}],
        "current-context": "aigw-dev",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)


def start(
    bins: ControlPlaneBinaries,
    base_dir: Path,
    timeout: float = 120.0,
    *,
    address: str = LOOPBACK,
    scheduler: Path | None = None,
) -> ControlPlane:
    """Start etcd, kube-apiserver and kube-controller-manager; return once /readyz is ok.

    With ``scheduler`` (a kube-scheduler binary) the control plane is ready for a node:
    see the module docstring; ``address`` is then where the API server serves.
    """
    base_dir.mkdir(parents=True, exist_ok=True)
    logs = base_dir / "logs"
    logs.mkdir(exist_ok=True)
    for_node = scheduler is not None
    pki = pki_mod.generate(base_dir / "pki", extra_ips=() if address == LOOPBACK else (address,))
    etcd_port, etcd_peer, api_port = free_port(), free_port(), free_port()
    plane = ControlPlane(base_dir=base_dir, apiserver_port=api_port, pids={}, address=address)
    try:
        etcd = _spawn(
            "etcd",
            [
                str(bins.etcd),
                "--name=aigw-dev",
                f"--data-dir={base_dir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=aigw-dev=http://127.0.0.1:{etcd_peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
            logs,
        )
        plane.pids["etcd"] = etcd.pid
        wait_until(
            lambda: _http_ok(f"http://127.0.0.1:{etcd_port}/health", etcd, "etcd"),
            timeout,
            "etcd health",
        )
        plane.argv["kube-apiserver"] = [
            str(bins.kube_apiserver),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            f"--bind-address={address}",
            f"--advertise-address={address}",
            f"--secure-port={api_port}",
            f"--cert-dir={base_dir / 'certs'}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            "--authorization-mode=Node,RBAC" if for_node else "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            "--allow-privileged=true",
            # Without a node: no Service endpoints, and 127.0.0.1 is refused by the reconciler.
            # With one: the `kubernetes` Service's endpoint is the advertised address.
            "--endpoint-reconciler-type=lease" if for_node else "--endpoint-reconciler-type=none",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
            "--v=1",
        ]
        if for_node:
            plane.argv["kube-apiserver"] += [
                f"--kubelet-client-certificate={pki.kubelet_client_cert}",
                f"--kubelet-client-key={pki.kubelet_client_key}",
                "--kubelet-preferred-address-types=InternalIP",
                # No kube-proxy runs, so a Service's cluster IP routes nowhere. With aggregator
                # routing the API server resolves a `service` reference (a webhook's
                # clientConfig.service, an APIService) to a ready endpoint of the Service's
                # EndpointSlices, a pod IP on the node bridge the host reaches directly; TLS is
                # still verified against `<service>.<namespace>.svc`.
                "--enable-aggregator-routing=true",
            ]
        api = _spawn("kube-apiserver", plane.argv["kube-apiserver"], logs)
        plane.pids["kube-apiserver"] = api.pid
        write_kubeconfig(plane.kubeconfig, plane.url, pki.ca_cert, pki.admin_cert, pki.admin_key)
        ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        ctx.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        wait_until(
            lambda: _http_ok(f"{plane.url}/readyz", api, "kube-apiserver", ctx),
            timeout,
            "kube-apiserver /readyz",
        )
        kcm_port = free_port()
        kcm_config = base_dir / "controller-manager.kubeconfig"
        write_kubeconfig(
            kcm_config,
            plane.url,
            pki.ca_cert,
            pki.kcm_cert,
            pki.kcm_key,
            user="kube-controller-manager",
        )
        kcm = _spawn(
            "kube-controller-manager",
            [
                str(bins.kube_controller_manager),
                f"--kubeconfig={kcm_config}",
                f"--authentication-kubeconfig={kcm_config}",
                f"--authorization-kubeconfig={kcm_config}",
                f"--controllers={KCM_CONTROLLERS}"
                + (f",{KCM_NODE_CONTROLLERS}" if for_node else ""),
                f"--service-account-private-key-file={pki.sa_key}",
                f"--root-ca-file={pki.ca_cert}",
                # Each controller acts with its own service account, which the built-in RBAC
                # bootstraps (clusterrole-aggregation needs it to patch view/edit roles).
                "--use-service-account-credentials=true",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={kcm_port}",
                "--v=1",
            ],
            logs,
        )
        plane.pids["kube-controller-manager"] = kcm.pid
        # Its serving cert is self-signed; /healthz is always allowed unauthenticated.
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        wait_until(
            lambda: _http_ok(
                f"https://127.0.0.1:{kcm_port}/healthz", kcm, "kube-controller-manager", insecure
            ),
            timeout,
            "kube-controller-manager /healthz",
        )
        if scheduler is not None:
            _start_scheduler(plane, scheduler, pki, logs, insecure, timeout)
    except ProcessExited as exc:
        plane.stop()
        name = str(exc).split()[0]
        log = logs / f"{name}.log"
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        raise ProcessExited(f"{exc}; last log lines:\n{tail}") from None
    except BaseException:
        plane.stop()
        raise
    return plane


def _start_scheduler(
    plane: ControlPlane,
    binary: Path,
    pki: pki_mod.Pki,
    logs: Path,
    insecure: ssl.SSLContext,
    timeout: float,
) -> None:
    """kube-scheduler as ``system:kube-scheduler`` (bootstrap RBAC grants it what it needs)."""
    config = plane.base_dir / "scheduler.kubeconfig"
    write_kubeconfig(
        config, plane.url, pki.ca_cert, pki.scheduler_cert, pki.scheduler_key, "kube-scheduler"
    )
    port = free_port()
    proc = _spawn(
        "kube-scheduler",
        [
            str(binary),
            f"--kubeconfig={config}",
            f"--authentication-kubeconfig={config}",
            f"--authorization-kubeconfig={config}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            "--v=1",
        ],
        logs,
    )
    plane.pids["kube-scheduler"] = proc.pid
    wait_until(
        lambda: _http_ok(f"https://127.0.0.1:{port}/healthz", proc, "kube-scheduler", insecure),
        timeout,
        "kube-scheduler /healthz",
    )


def _http_ok(
    url: str, proc: subprocess.Popen[bytes], name: str, ctx: ssl.SSLContext | None = None
) -> bool:
    if proc.poll() is not None:
        raise ProcessExited(f"{name} exited with code {proc.returncode} before becoming ready")
    with urllib.request.urlopen(url, timeout=3, context=ctx) as resp:  # noqa: S310 - loopback
        return bool(resp.status == 200)
