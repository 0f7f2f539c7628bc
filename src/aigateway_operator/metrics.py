"""Prometheus metrics (``AIGW_METRICS_PORT``, default 9090; 0 disables the endpoint).

Labels carry names and stable reasons only: never a value from a Secret.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RECONCILES = Counter(
    "aigw_reconciles_total",
    "Reconcile passes by kind and result (synced, unchanged, retry, blocked, deleted).",
    ["kind", "result"],
)
RECONCILE_SECONDS = Histogram(
    "aigw_reconcile_duration_seconds",
    "Duration of one reconcile pass.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DB_WRITES = Counter(
    "aigw_database_writes_total",
    "Transactions that changed Coder's tables, by kind and action.",
    ["kind", "action"],
)
NOTIFIES = Counter("aigw_notifies_total", "pg_notify('ai_providers_changed') sent with a change.")
STS_VERIFICATIONS = Counter(
    "aigw_sts_verifications_total", "STS identity verifications by reason.", ["reason"]
)
DRIFT_REVERTED = Counter(
    "aigw_drift_reverted_total", "Outside edits of Coder rows reverted to the spec.", ["kind"]
)
EVENTS_DROPPED = Counter(
    "aigw_events_dropped_total",
    "Kubernetes Events not posted (the poster's queue was full or the API refused them).",
)
CONDITION = Gauge(
    "aigw_condition",
    "Each condition of each object: 1 True, 0 False, -1 Unknown.",
    ["kind", "namespace", "name", "type"],
)
# One series per condition, not one per (condition, status): at 10,000 objects the three-way
# form alone held ~80 MB of label sets and value locks.
_VALUE = {"True": 1.0, "False": 0.0, "Unknown": -1.0}
log = logging.getLogger(__name__)
_server_lock = threading.Lock()
_server_port: int | None = None


def serve(port: int) -> bool:
    """Start the /metrics HTTP endpoint once per process (0 = disabled).

    A port that cannot be bound is logged, not fatal: metrics must never stop the operator
    from keeping Coder in sync. Returns whether the endpoint is up.
    """
    global _server_port
    if port <= 0:
        return False
    with _server_lock:
        if _server_port is None:
            try:
                start_http_server(port)
            except OSError as exc:
                log.error("metrics endpoint not started on port %d: %s", port, exc)
                return False
            _server_port = port
    return True


def set_conditions(
    kind: str, namespace: str, name: str, conditions: Iterable[tuple[str, str]]
) -> None:
    """Mirror ``(type, status)`` pairs into the per-object condition gauge."""
    for type_, status in conditions:
        CONDITION.labels(kind, namespace, name, type_).set(_VALUE.get(status, -1.0))


def forget_object(kind: str, namespace: str, name: str, types: Iterable[str]) -> None:
    """Drop a deleted object's series so the gauge does not grow without bound."""
    for type_ in types:
        with contextlib.suppress(KeyError):
            CONDITION.remove(kind, namespace, name, type_)
