"""The node's network: one Linux bridge the environment creates, and removes in ``down``.

Every address a node and its pods use lives on that bridge: its first address is the node IP
(where kube-apiserver, Postgres and STS also listen, so pods reach them as they would reach a
control plane), the rest of its /24 is the pod range (CNI ``bridge`` + ``host-local``). Pods
have no way off the host: the bridge plugin runs with ``isGateway: false`` and ``ipMasq:
false``, so the environment never turns on ``net.ipv4.ip_forward`` (the host's value stays what
it was), and no iptables rule is written (kubelet's ``makeIPTablesUtilChains`` is off).

Each environment picks a free /24 (no address or route of the host overlaps it) under a lock,
so two environments run side by side. Network namespaces are made and removed by containerd
(under the node's own state directory, ``netns_mounts_under_state_dir``).

kubelet sets six kernel tunables at start (``vm.overcommit_memory`` and friends, as on every
node). The values before the first node started are kept in the cache directory and put back
when the last node on this machine goes down.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tools.devenv.build import cache_dir

BRIDGE_PREFIX = "aigw"
#: /24s are picked from here (10.248.0.0 - 10.251.255.0): far from the usual Docker,
#: Kubernetes and VPN ranges.
POOL = ipaddress.IPv4Network("10.248.0.0/14")
#: What kubelet changes (``setupKernelTunables``), and ip_forward, which nothing here changes.
SYSCTLS = (
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "net.ipv4.ip_forward",
)


class NetworkError(RuntimeError):
    """The bridge could not be made or removed."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def _json(*args: str) -> list[dict[str, object]]:
    out = _ip("-j", *args).stdout
    return list(json.loads(out)) if out.strip() else []


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    """One environment at a time picks a subnet, creates or removes a bridge."""
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".network.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the host has an address in or a route to."""
    nets: list[ipaddress.IPv4Network] = []
    for link in _json("-4", "addr", "show"):
        for addr in link.get("addr_info") or []:  # type: ignore[attr-defined]
            nets.append(
                ipaddress.ip_network(f"{addr['local']}/{addr['prefixlen']}", strict=False)  # type: ignore[arg-type]
            )
    for route in _json("-4", "route", "show", "table", "all"):
        dst = str(route.get("dst", ""))
        if dst and dst != "default" and not dst.startswith(("local", "broadcast")):
            with contextlib.suppress(ValueError):
                nets.append(ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False))  # type: ignore[arg-type]
    return [n for n in nets if isinstance(n, ipaddress.IPv4Network)]


def our_bridges() -> list[str]:
    """Bridges of environments on this machine (ours and any other one's)."""
    return [
        str(link["ifname"])
        for link in _json("link", "show", "type", "bridge")
        if str(link.get("ifname", "")).startswith(BRIDGE_PREFIX)
    ]


def read_sysctl(name: str) -> str:
    return Path("/proc/sys", *name.split(".")).read_text().strip()


def write_sysctl(name: str, value: str) -> None:
    Path("/proc/sys", *name.split(".")).write_text(value + "\n")


def _sysctl_record() -> Path:
    return cache_dir() / "node-sysctls.json"


@dataclass
class NodeNetwork:
    """A bridge with a /24: ``gateway`` is the node IP, the rest is for pods."""

    bridge: str
    subnet: ipaddress.IPv4Network

    @property
    def gateway(self) -> str:
        return str(self.subnet.network_address + 1)

    @property
    def pod_range(self) -> tuple[str, str]:
        return str(self.subnet.network_address + 2), str(self.subnet.broadcast_address - 1)

    @property
    def env_id(self) -> str:
        return self.bridge.removeprefix(BRIDGE_PREFIX)

    def to_json(self) -> dict[str, str]:
        return {"bridge": self.bridge, "subnet": str(self.subnet)}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> NodeNetwork:
        return cls(bridge=data["bridge"], subnet=ipaddress.IPv4Network(data["subnet"]))

    @classmethod
    def create(cls) -> NodeNetwork:
        """Pick a free /24, create the bridge with the first address, bring it up."""
        with _lock():
            used = used_networks()
            candidates = list(POOL.subnets(new_prefix=24))
            for _ in range(64):
                subnet = candidates[secrets.randbelow(len(candidates))]
                if not any(subnet.overlaps(n) for n in used):
                    break
            else:
                raise NetworkError(f"no free /24 found in {POOL}")
            net = cls(bridge=f"{BRIDGE_PREFIX}{secrets.token_hex(3)}", subnet=subnet)
            record = _sysctl_record()
            if not record.exists() and not our_bridges():
                # The first node on this machine: what to put back when the last one goes.
                record.write_text(json.dumps({n: read_sysctl(n) for n in SYSCTLS}))
            _ip("link", "add", net.bridge, "type", "bridge")
            try:
                _ip("addr", "add", f"{net.gateway}/{subnet.prefixlen}", "dev", net.bridge)
                _ip("link", "set", net.bridge, "up")
            except BaseException:
                _ip("link", "del", net.bridge, check=False)
                raise
        return net

    def exists(self) -> bool:
        return _ip("link", "show", self.bridge, check=False).returncode == 0

    def delete(self) -> dict[str, str]:
        """Remove the bridge; the last environment to go puts the kernel tunables back.

        Returns the tunables it restored (name -> value), empty if others still run.
        """
        restored: dict[str, str] = {}
        with _lock():
            if self.exists():
                _ip("link", "del", self.bridge)
            record = _sysctl_record()
            if record.exists() and not our_bridges():
                before: dict[str, str] = json.loads(record.read_text())
                for name, value in before.items():
                    if read_sysctl(name) != value:
                        write_sysctl(name, value)
                        restored[name] = value
                record.unlink()
        return restored
