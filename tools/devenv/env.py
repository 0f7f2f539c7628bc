"""The local environment: control plane + Postgres 15 + moto STS (+ a node), with a state file.

``up`` starts everything, applies ``crds/`` and writes shell ``export`` lines. Without a node
everything listens on loopback. With one (``with_node``), the environment first creates its
bridge (:mod:`tools.devenv.network`); kube-apiserver and moto then serve on the bridge's
first address (the node IP), Postgres on it and on loopback, so pods reach all three there,
and kubelet + containerd (:mod:`tools.devenv.node`) join before ``up`` returns.
``down`` stops every process it recorded and removes every directory, mount, cgroup and
interface it made. The same :class:`DevEnv` object backs the pytest session fixtures.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.devenv import build, kube
from tools.devenv.network import NodeNetwork
from tools.devenv.node import Node
from tools.devenv.postgres import PostgresServer
from tools.devenv.procs import pid_alive, terminate
from tools.devenv.sts import StsServer

STATE_FILE = "state.json"
STATE_ENV = "AIGW_DEV_STATE_DIR"


@dataclass
class DevEnv:
    """A running local environment (or the record of one, loaded from its state dir)."""

    state_dir: Path
    kubeconfig: Path | None = None
    database_url: str = ""
    sts_env: dict[str, str] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    postgres_dir: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)
    network: NodeNetwork | None = None
    node: Node | None = None
    apiserver_url: str = ""
    # Live handles, present only in the process that started them.
    plane: kube.ControlPlane | None = None
    postgres: PostgresServer | None = None
    sts: StsServer | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    @classmethod
    def up(
        cls,
        state_dir: Path | None = None,
        *,
        with_kube: bool = True,
        with_node: bool = False,
        crds_dir: Path | None = None,
        progress: build.Progress = build._stderr_progress,
    ) -> DevEnv:
        """Start everything; on any failure stop what was started and re-raise."""
        if with_node and not with_kube:
            raise ValueError("a node needs the control plane (with_kube)")
        state = state_dir or Path(tempfile.mkdtemp(prefix="aigw-dev-"))
        state.mkdir(parents=True, exist_ok=True)
        env = cls(state_dir=state)
        try:
            t0 = time.monotonic()
            node_bins = None
            if with_kube:
                bins = build.ensure_control_plane(progress=progress)
                if with_node:
                    node_bins = build.ensure_node(progress=progress)
                env.timings["build_or_cache"] = time.monotonic() - t0
            if node_bins is not None:
                env.network = NodeNetwork.create()
                env.save()  # from here on, `down` from another process finds the bridge
                progress(
                    f"Created bridge {env.network.bridge} {env.network.subnet} "
                    f"(node IP {env.network.gateway})"
                )
            address = env.network.gateway if env.network else kube.LOOPBACK
            if with_kube:
                t1 = time.monotonic()
                progress(
                    "Starting etcd, kube-apiserver, kube-controller-manager"
                    + (", kube-scheduler" if node_bins else "")
                    + " ..."
                )
                env.plane = kube.start(
                    bins,
                    state / "kube",
                    address=address,
                    scheduler=node_bins.kube_scheduler if node_bins else None,
                )
                env.kubeconfig = env.plane.kubeconfig
                env.apiserver_url = env.plane.url
                env.pids.update(env.plane.pids)
                env.timings["control_plane"] = time.monotonic() - t1
            t2 = time.monotonic()
            progress("Starting Postgres 15 ...")
            env.postgres = PostgresServer.start(
                state / "postgres", network=str(env.network.subnet) if env.network else None
            )
            env.database_url = env.postgres.dsn
            # Coder's tables, as coderd would have created them (the operator only verifies).
            from tools.devenv.coder_schema import prepare_coder_database  # needs psycopg

            prepare_coder_database(env.database_url)
            env.postgres_dir = env.postgres.base_dir
            env.timings["postgres"] = time.monotonic() - t2
            t3 = time.monotonic()
            progress("Starting moto STS ...")
            env.sts = StsServer.start(state / "sts", host=address)
            env.sts_env = env.sts.env()
            env.pids["moto"] = env.sts.pid
            env.timings["sts"] = time.monotonic() - t3
            if with_kube and crds_dir is not None and crds_dir.is_dir():
                from tools.devenv.crds import apply_crds

                applied = apply_crds(env.kubeconfig, crds_dir)  # type: ignore[arg-type]
                if applied:
                    progress(f"Applied CRDs: {', '.join(applied)}")
            if node_bins is not None and env.plane is not None and env.network is not None:
                t4 = time.monotonic()
                progress("Starting the node: containerd, kubelet ...")
                env.node = Node(
                    base_dir=state / "node",
                    network=env.network,
                    cgroup_root=f"aigw-{env.network.env_id}",
                )
                env.save()
                env.node = Node.start(
                    node_bins, state / "node", env.plane, env.network, progress=progress
                )
                env.timings["node"] = time.monotonic() - t4
            env.timings["total"] = time.monotonic() - t0
            env.save()
        except BaseException:
            env.down()
            raise
        return env

    def down(self) -> None:
        """Stop every recorded process, remove the node's traces and the state dir (idempotent)."""
        if self.node is not None:
            self._stop_node(self.node)
        if self.plane is not None:
            self.plane.stop()
        if self.sts is not None:
            self.sts.stop()
        if self.postgres is not None:
            self.postgres.stop()
        elif self.postgres_dir is not None and self.postgres_dir.exists():
            PostgresServer(base_dir=self.postgres_dir, port=0, password="").stop()
        for name in ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd", "moto"):
            pid = self.pids.get(name)
            if pid and pid_alive(pid):
                terminate(pid)
        self.pids.clear()
        if self.network is not None:
            self.network.delete()
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def _stop_node(self, node: Node) -> None:
        """Pods first (kubelet stops them, CNI releases their addresses), then the node.

        The scheduler and controller manager stop before, so no pod starts again; if the API
        server or kubelet is already gone, the node's sweep removes whatever is left.
        """
        for name in ("kube-scheduler", "kube-controller-manager"):
            pid = self.pids.pop(name, None)
            if self.plane is not None:
                self.plane.pids.pop(name, None)
            if pid and pid_alive(pid):
                terminate(pid)
        kubelet = node.pids.get("kubelet")
        if self.apiserver_url and kubelet and pid_alive(kubelet) and node.ctr_binary:
            pki = kube.ControlPlane(base_dir=self.state_dir / "kube", apiserver_port=0, pids={}).pki
            try:
                node.delete_pods(self.apiserver_url, pki)
            except Exception as exc:
                print(f"devenv: pods not stopped cleanly ({exc}); sweeping", flush=True)
        node.stop()

    # ---- persistence -----------------------------------------------------------------------

    def save(self) -> None:
        data = {
            "kubeconfig": str(self.kubeconfig) if self.kubeconfig else None,
            "database_url": self.database_url,
            "sts_env": self.sts_env,
            "pids": self.pids,
            "postgres_dir": str(self.postgres_dir) if self.postgres_dir else None,
            "timings": self.timings,
            "network": self.network.to_json() if self.network else None,
            "node": self.node.to_json() if self.node else None,
            "apiserver_url": self.apiserver_url,
        }
        path = self.state_dir / STATE_FILE
        path.write_text(json.dumps(data, indent=2))
        path.chmod(0o600)

    @classmethod
    def load(cls, state_dir: Path) -> DevEnv:
        data: dict[str, Any] = json.loads((state_dir / STATE_FILE).read_text())
        return cls(
            state_dir=state_dir,
            kubeconfig=Path(data["kubeconfig"]) if data.get("kubeconfig") else None,
            database_url=data.get("database_url", ""),
            sts_env=dict(data.get("sts_env", {})),
            pids={k: int(v) for k, v in data.get("pids", {}).items()},
            postgres_dir=Path(data["postgres_dir"]) if data.get("postgres_dir") else None,
            timings=dict(data.get("timings", {})),
            network=NodeNetwork.from_json(data["network"]) if data.get("network") else None,
            node=Node.from_json(data["node"]) if data.get("node") else None,
            apiserver_url=str(data.get("apiserver_url") or ""),
        )

    # ---- what clients need -----------------------------------------------------------------

    def environ(self) -> dict[str, str]:
        """The variables a shell, the operator or a test needs to use this environment."""
        env: dict[str, str] = {STATE_ENV: str(self.state_dir)}
        if self.kubeconfig:
            env["KUBECONFIG"] = str(self.kubeconfig)
        env["AIGW_DATABASE_URL"] = self.database_url
        # The local database has Coder's schema (``coder_schema``, built by ``up``) and no coderd
        # keys: choose plaintext on purpose (the operator refuses otherwise); to try encryption,
        # register a key as coderd would (``coder_schema.prepare_coder_database``) and export
        # it as AIGW_ENCRYPTION_KEYS.
        env["AIGW_ALLOW_PLAINTEXT"] = "true"
        env.update(self.sts_env)
        return env

    def write_env_file(self, path: Path) -> None:
        lines = [
            "# written by `python -m tools.devenv up`; remove with "
            "`python -m tools.devenv down --env-file`"
        ]
        lines += [f"export {k}={shlex.quote(v)}" for k, v in self.environ().items()]
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)

    def pod_environ(self) -> dict[str, str]:
        """What a pod of this environment needs to reach its services (see the README).

        There is no kube-proxy, so the ``kubernetes`` Service's ClusterIP does not route: the
        API server's own address goes into ``KUBERNETES_SERVICE_HOST``/``_PORT``, as on
        clusters that run without kube-proxy. STS is moto on the node IP; no AWS identity.
        """
        if self.network is None or not self.apiserver_url:
            raise RuntimeError("this environment has no node")
        port = self.apiserver_url.rsplit(":", 1)[1]
        return {
            "KUBERNETES_SERVICE_HOST": self.network.gateway,
            "KUBERNETES_SERVICE_PORT": port,
            "AWS_ENDPOINT_URL_STS": self.sts_env["AWS_ENDPOINT_URL_STS"],
            "AWS_ENDPOINT_URL_IAM": self.sts_env["AWS_ENDPOINT_URL_IAM"],
            "AWS_DEFAULT_REGION": self.sts_env["AWS_DEFAULT_REGION"],
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def status(self) -> dict[str, bool]:
        running = {name: pid_alive(pid) for name, pid in self.pids.items()}
        if self.node is not None:
            running.update({name: pid_alive(pid) for name, pid in self.node.pids.items()})
        if self.postgres_dir is not None:
            pidfile = self.postgres_dir / "data" / "postmaster.pid"
            try:
                running["postgres"] = pid_alive(int(pidfile.read_text().split()[0]))
            except (OSError, ValueError, IndexError):
                running["postgres"] = False
        return running


def state_dir_from_env_file(path: Path) -> Path:
    """Find the state dir recorded in an env file written by :meth:`DevEnv.write_env_file`."""
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith(f"export {STATE_ENV}="):
            return Path(shlex.split(line.split("=", 1)[1])[0])
    raise ValueError(
        f"{path} does not name {STATE_ENV}; was it written by `python -m tools.devenv up`?"
    )


def default_env_file() -> Path:
    return Path(os.environ.get("AIGW_DEV_ENV_FILE", ".dev/env"))
