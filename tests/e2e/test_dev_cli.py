"""`python -m tools.devenv up` then `down` leaves nothing behind, with or without a node.

With a node, two environments run side by side (each on its own bridge and subnet, each with
a pod running), and `down` removes every process, mount, cgroup, interface and file they
made, and puts the kernel settings back.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kubernetes import client, config

from tests.support.procs import processes_mentioning
from tests.support.wait import wait_for
from tools.devenv.build import PAUSE_IMAGE
from tools.devenv.network import SYSCTLS, our_bridges, read_sysctl
from tools.devenv.node import processes_in_mount_ns
from tools.devenv.procs import pid_alive

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
#: Where a node's parts would write if they were not told otherwise (their defaults), and
#: where buildah writes whatever it is told: none of them may appear.
HOST_PATHS = (
    "/run/containerd",
    "/var/lib/containerd",
    "/opt/containerd",
    "/var/lib/kubelet",
    "/var/log/pods",
    "/var/log/containers",
    "/usr/libexec/kubernetes",
    "/etc/kubernetes",
    "/etc/cni",
    "/opt/cni",
    "/var/lib/cni",
    "/run/netns",
    "/var/run/nri",
    "/run/runc",
)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The development tool's command line, run as the Makefile runs it: from the repo root."""
    return subprocess.run(
        [sys.executable, "-m", "tools.devenv", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def _exports(env_file: Path) -> dict[str, str]:
    return dict(
        line.removeprefix("export ").split("=", 1)
        for line in env_file.read_text().splitlines()
        if line.startswith("export ")
    )


def _links(kind: str) -> set[str]:
    out = subprocess.run(
        ["ip", "-j", "link", "show", "type", kind], capture_output=True, text=True, check=True
    ).stdout
    return {str(link["ifname"]) for link in json.loads(out or "[]")}


def _host() -> dict[str, Any]:
    return {
        "sysctls": {name: read_sysctl(name) for name in SYSCTLS},
        "paths": {p: Path(p).exists() for p in HOST_PATHS},
        "veths": _links("veth"),
        "bridges": set(our_bridges()),
    }


def test_dev_up_then_down_leaves_nothing(tmp_path: Path) -> None:
    env_file = tmp_path / "dev.env"
    up = _cli("up", "--no-node", "--env-file", str(env_file))
    assert up.returncode == 0, up.stderr[-3000:]
    exports = _exports(env_file)
    for var in (
        "KUBECONFIG",
        "AIGW_DATABASE_URL",
        "AWS_ENDPOINT_URL_STS",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_EC2_METADATA_DISABLED",
    ):
        assert var in exports, var
    assert exports["AWS_EC2_METADATA_DISABLED"] == "true"
    assert "AIGW_SCHEMA" not in exports  # the operator only verifies Coder's schema ...
    with psycopg.connect(shlex.split(exports["AIGW_DATABASE_URL"])[0]) as conn:  # `up` built it
        assert conn.execute("SELECT version FROM schema_migrations").fetchall() == [(551,)]
    state_dir = Path(exports["AIGW_DEV_STATE_DIR"])
    state = json.loads((state_dir / "state.json").read_text())
    assert state["node"] is None
    pids = dict(state["pids"])
    pids["postgres"] = int(
        (Path(state["postgres_dir"]) / "data" / "postmaster.pid").read_text().split()[0]
    )
    assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager", "moto", "postgres"}
    assert all(pid_alive(p) for p in pids.values())

    status = _cli("status", "--env-file", str(env_file))
    assert status.returncode == 0, status.stdout
    assert "STOPPED" not in status.stdout

    down = _cli("down", "--env-file", str(env_file))
    assert down.returncode == 0, down.stderr
    alive = {name: pid for name, pid in pids.items() if pid_alive(pid)}
    assert alive == {}
    assert not state_dir.exists()
    assert not env_file.exists()
    assert processes_mentioning(str(state_dir)) == []
    assert _cli("status", "--env-file", str(env_file)).returncode == 3


def _pause_pod(name: str) -> client.V1Pod:
    """A pod of the node's own sandbox image (no registry here), restricted-compliant."""
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="pause",
                    image=PAUSE_IMAGE,
                    image_pull_policy="Never",
                    security_context=client.V1SecurityContext(
                        run_as_non_root=True,
                        run_as_user=65535,
                        allow_privilege_escalation=False,
                        capabilities=client.V1Capabilities(drop=["ALL"]),
                        seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault"),
                    ),
                )
            ]
        ),
    )


def test_two_environments_with_nodes_side_by_side_and_down_leaves_nothing(
    tmp_path: Path,
) -> None:
    before = _host()
    envs = []
    try:
        for name in ("a", "b"):
            env_file = tmp_path / f"{name}.env"
            up = _cli("up", "--env-file", str(env_file))
            assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-3000:]
            assert "node:" in up.stdout
            exports = _exports(env_file)
            state_dir = Path(exports["AIGW_DEV_STATE_DIR"])
            state = json.loads((state_dir / "state.json").read_text())
            envs.append((env_file, state_dir, state))
        (_, _, a), (_, _, b) = envs
        assert a["network"]["bridge"] != b["network"]["bridge"]
        assert not ipaddress.ip_network(a["network"]["subnet"]).overlaps(
            ipaddress.ip_network(b["network"]["subnet"])
        )
        # Each node is Ready (`up` waited for it) and runs a pod on its own subnet.
        for env_file, _, state in envs:
            api = config.new_client_from_config(config_file=_exports(env_file)["KUBECONFIG"])
            core = client.CoreV1Api(api)
            node = core.read_node("aigw-node")
            assert {c.type: c.status for c in node.status.conditions}["Ready"] == "True"
            core.create_namespaced_pod("default", _pause_pod("probe"))
            pod = wait_for(
                lambda core=core: (
                    (p := core.read_namespaced_pod("probe", "default")).status.phase == "Running"
                    and p
                ),
                120,
                "the pod to run",
            )
            assert ipaddress.ip_address(pod.status.pod_ip) in ipaddress.ip_network(
                state["network"]["subnet"]
            )
            api.close()
            # The pod's mounts live in the node's own mount namespace, not the host's.
            containerd = state["node"]["pids"]["containerd"]
            node_mounts = Path(f"/proc/{containerd}/mountinfo").read_text()
            assert " overlay " in node_mounts
            points = {line.split()[4] for line in node_mounts.splitlines()}
            assert {"/var/lib", "/var/log"} <= points  # the node's own, over the host's
            assert state["node"]["base_dir"] not in Path("/proc/self/mountinfo").read_text()
        assert _links("veth") - before["veths"], "the pods have no veth on the host"

        # Down, one after the other: the first leaves nothing while the second still runs.
        for i, (env_file, state_dir, state) in enumerate(envs):
            node_pids = state["node"]["pids"]
            down = _cli("down", "--env-file", str(env_file))
            assert down.returncode == 0, down.stderr
            assert not state_dir.exists()
            assert not env_file.exists()
            assert processes_mentioning(str(state_dir)) == []
            assert not any(pid_alive(p) for p in [*state["pids"].values(), *node_pids.values()])
            assert str(state_dir) not in Path("/proc/self/mountinfo").read_text()
            assert processes_in_mount_ns(state["node"]["mount_ns"]) == []
            cgroup = f"aigw-{state['network']['bridge'].removeprefix('aigw')}"
            assert list(Path("/sys/fs/cgroup").glob(f"*/{cgroup}")) == []
            assert state["network"]["bridge"] not in our_bridges()
            if i == 0:
                other = envs[1][2]["network"]["bridge"]
                assert other in our_bridges(), "down of one environment touched the other"
    finally:
        for env_file, _, _ in envs:
            if env_file.exists():
                _cli("down", "--env-file", str(env_file))
    after = _host()
    assert after["paths"] == before["paths"]
    assert after["bridges"] == before["bridges"]
    assert after["veths"] <= before["veths"]
    if not before["bridges"]:
        # No other environment was up: kubelet's kernel settings are back, ip_forward as it was.
        assert after["sysctls"] == before["sysctls"]
