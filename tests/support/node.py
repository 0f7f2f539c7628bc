"""Helpers for tests of the operator running as pods on the local node.

The host reaches pod IPs on the environment's bridge directly, so the probes and the metrics
endpoint are read exactly where the kubelet reads them. Pod logs are read from the files the
runtime writes on the node, with its timestamps (a deleted pod's log is gone from the API).
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from tools.devenv.chart import operator_pods, pod_ready
from tools.devenv.node import Node

HEALTH_PORT = 8080
METRICS_PORT = 9090


def probe(pod: client.V1Pod, path: str, timeout: float = 3.0) -> tuple[int, dict[str, Any]]:
    """GET ``path`` on the pod's health port: (HTTP status, JSON body)."""
    url = f"http://{pod.status.pod_ip}:{HEALTH_PORT}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status), json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return int(exc.code), json.loads(exc.read() or b"{}")


def scrape(
    pod: client.V1Pod, timeout: float = 5.0
) -> dict[str, list[tuple[dict[str, str], float]]]:
    """The pod's /metrics: series name -> [(labels, value)] (counters as ``*_total``)."""
    url = f"http://{pod.status.pod_ip}:{METRICS_PORT}/metrics"
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        text = resp.read().decode()
    series: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return series


def metric_families(pod: client.V1Pod, timeout: float = 5.0) -> set[str]:
    """Series names from the ``# TYPE`` lines (a labelled series has one before any sample);
    counters under their ``_total`` name, as they are documented and queried."""
    url = f"http://{pod.status.pod_ip}:{METRICS_PORT}/metrics"
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        text = resp.read().decode()
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()[:4]
            names.add(
                f"{name}_total" if kind == "counter" and not name.endswith("_total") else name
            )
    return names


def value(
    series: dict[str, list[tuple[dict[str, str], float]]], metric: str, /, **labels: str
) -> float | None:
    """The value of the one sample of ``metric`` whose labels include ``labels`` (a label may
    be called ``name``: the metric is positional-only)."""
    for got, val in series.get(metric, []):
        if all(got.get(k) == v for k, v in labels.items()):
            return val
    return None


def running_pods(api: client.ApiClient, namespace: str, release: str) -> list[client.V1Pod]:
    """The release's pods that are not being deleted and have an IP."""
    return [
        p
        for p in operator_pods(api, namespace, release)
        if p.metadata.deletion_timestamp is None and p.status.pod_ip
    ]


def ready_pods(api: client.ApiClient, namespace: str, release: str) -> list[client.V1Pod]:
    return [p for p in operator_pods(api, namespace, release) if pod_ready(p)]


def active_pods(api: client.ApiClient, namespace: str, release: str) -> list[client.V1Pod]:
    """The pods whose /readyz says they are the active replica."""
    active = []
    for pod in running_pods(api, namespace, release):
        try:
            if probe(pod, "/readyz")[1].get("active") is True:
                active.append(pod)
        except OSError:
            continue
    return active


@dataclass
class PodLog:
    """One container's log as the runtime wrote it (CRI format, with its timestamps)."""

    pod: str
    lines: list[tuple[datetime, str]] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def times_of(self, fragment: str) -> list[datetime]:
        return [t for t, line in self.lines if fragment in line]


def parse_cri_time(stamp: str) -> datetime:
    # RFC 3339 with nanoseconds: keep microseconds for datetime.
    head, _, frac = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00")


def pod_log_file(node: Node, pod: client.V1Pod, container: str = "operator") -> Path:
    """Where the kubelet has the runtime write the container's log (its first start)."""
    meta = pod.metadata
    return (
        node.base_dir
        / "pod-logs"
        / f"{meta.namespace}_{meta.name}_{meta.uid}"
        / container
        / "0.log"
    )


@contextmanager
def follow_logs(node: Node, pods: list[client.V1Pod]) -> Iterator[dict[str, PodLog]]:
    """Follow each pod's log file on the node while inside, and to its end on leaving.

    The file is opened at once and read through that handle, so a pod that is deleted
    meanwhile (the kubelet removes its logs) is still read to its last line.
    """
    logs = {p.metadata.name: PodLog(p.metadata.name) for p in pods}
    stop = threading.Event()
    handles = {p.metadata.name: pod_log_file(node, p).open() for p in pods}

    def read(log: PodLog) -> bool:
        got = False
        for raw in handles[log.pod].readlines():
            stamp, _, rest = raw.rstrip("\n").partition(" ")
            _stream, _, rest = rest.partition(" ")
            _tag, _, text = rest.partition(" ")
            log.lines.append((parse_cri_time(stamp), text))
            got = True
        return got

    def run() -> None:
        while not stop.is_set():
            got = [read(log) for log in logs.values()]  # every file, no short cut
            if not any(got):
                stop.wait(0.05)  # the file's poll period, not synchronisation

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield logs
    finally:
        stop.set()
        thread.join(timeout=10)
        for log in logs.values():
            read(log)
        for handle in handles.values():
            handle.close()
