"""Prometheus metrics (``AIGW_METRICS_PORT``, default 9090; 0 disables the endpoint).

Labels carry names and stable reasons only: never a value from a Secret. Every series and
label value is listed in docs/operations.md ("Metrics"; tests/unit/test_metrics.py keeps it equal to
this module and to the chart's files/metrics.txt); the label values the operator sets from
its own words are typed below (:data:`DatabaseErrorKind`, :data:`ReconcileResult`,
:data:`WriteAction`), so mypy holds every caller to them. ``_created`` samples are disabled
(they double every counter's series and nobody queries them).

Per-object series (``aigw_status_condition``, ``aigw_last_sync_timestamp_seconds``) are
dropped when the object goes. ``aigw_status_condition`` has the shape external-secrets and
kube-state-metrics use (``{condition, status}``) but only the *current* status of each
condition is exported, with value 1: one series per condition instead of three. Both are
written at scrape time from one small entry per object (:class:`ObjectSeries`, a custom
collector, prometheus_client's documented extension): a ``Gauge`` child per series costs a
metric object, a lock and a value each, ~5.4 KB per object for its 6 conditions and last
sync time against ~0.6 KB as one entry (measured with tracemalloc, 1,000 objects).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from typing import Literal, get_args

from prometheus_client import (
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

disable_created_metrics()  # type: ignore[no-untyped-call]

log = logging.getLogger(__name__)

#: ``kind`` of ``aigw_database_errors_total``: what failed (controllers.shared's
#: ``database_error_kind`` maps each store error to one).
DatabaseErrorKind = Literal["unavailable", "timeout", "privileges", "schema", "encryption", "other"]
#: ``result`` of ``aigw_reconciles_total``: synced (rows written), unchanged (nothing to
#: write), retry (a transient failure), blocked (stopped before the database: a Secret, the
#: name, the spec), error (an unexpected exception), deleted (a finalizer released).
ReconcileResult = Literal["synced", "unchanged", "retry", "blocked", "error", "deleted"]
#: What a pass did to Coder's rows: AIProvider created, updated, adopted, revived;
#: AIGatewayCoderdKey issued, rotated, retired; ``unchanged`` is not counted
#: (``action`` of ``aigw_database_writes_total``).
WriteAction = Literal[
    "created", "updated", "adopted", "revived", "issued", "rotated", "retired", "unchanged"
]


def _values(literal: object) -> str:
    return ", ".join(str(v) for v in get_args(literal))


BUILD_INFO = Gauge("aigw_build_info", "Always 1; the operator's version.", ["version"])
CODER_INFO = Gauge(
    "aigw_coder_info",
    "Always 1; the Coder release range detected from the database schema.",
    ["version"],
)
ACTIVE_REPLICA = Gauge(
    "aigw_active_replica",
    "1 while this replica runs passes (kopf peering: the active one), 0 while paused.",
)
DATABASE_UP = Gauge(
    "aigw_database_up", "1 when the last check of Coder's database succeeded, else 0."
)
DATABASE_ERRORS = Counter(
    "aigw_database_errors_total",
    f"Passes that failed on Coder's database, by kind ({_values(DatabaseErrorKind)}).",
    ["kind"],
)
STS_ERRORS = Counter(
    "aigw_sts_errors_total",
    "STS verifications that did not verify, by reason "
    "(AccessDenied, InvalidRoleARN, NoBaseIdentity, STSUnavailable).",
    ["reason"],
)
WORK_PENDING = Gauge(
    "aigw_work_pending",
    "Objects whose pass is due and waiting for a worker slot, by kind.",
    ["kind"],
)
RECONCILES = Counter(
    "aigw_reconciles_total",
    f"Passes by kind and result ({_values(ReconcileResult)}).",
    ["kind", "result"],
)
RECONCILE_SECONDS = Histogram(
    "aigw_reconcile_duration_seconds",
    "Duration of one pass.",
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
    "Kubernetes Events not posted (the recorder's queue was full or the API refused them).",
)
_STATUSES = ("True", "False", "Unknown")
_server_lock = threading.Lock()
_server_port: int | None = None


class _Object:
    """One object's series: ``conditions`` (condition -> current status) and ``synced``."""

    __slots__ = ("conditions", "synced")

    def __init__(self) -> None:
        self.conditions: dict[str, str] = {}
        self.synced: float | None = None


class ObjectSeries(Collector):
    """``aigw_status_condition`` and ``aigw_last_sync_timestamp_seconds``: one entry per
    object, turned into samples when /metrics is scraped."""

    CONDITION = (
        "aigw_status_condition",
        "1 for the current status of each condition of each object.",
        ["kind", "namespace", "name", "condition", "status"],
    )
    LAST_SYNC = (
        "aigw_last_sync_timestamp_seconds",
        "When each object's rows in Coder were last confirmed to match its spec (Unix time).",
        ["kind", "namespace", "name"],
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[tuple[str, str, str], _Object] = {}

    def _entry(self, key: tuple[str, str, str]) -> _Object:
        entry = self._objects.get(key)
        if entry is None:
            entry = self._objects[key] = _Object()
        return entry

    def set_conditions(self, key: tuple[str, str, str], pairs: Iterable[tuple[str, str]]) -> None:
        with self._lock:
            self._entry(key).conditions.update(pairs)

    def set_synced(self, key: tuple[str, str, str], when: float) -> None:
        with self._lock:
            self._entry(key).synced = when

    def forget(self, key: tuple[str, str, str]) -> None:
        with self._lock:
            self._objects.pop(key, None)

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(*self.CONDITION[:2], labels=self.CONDITION[2]),
            GaugeMetricFamily(*self.LAST_SYNC[:2], labels=self.LAST_SYNC[2]),
        )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        conditions, synced = self._families()
        with self._lock:
            entries = [(k, dict(e.conditions), e.synced) for k, e in self._objects.items()]
        for key, pairs, when in entries:
            for condition, status in pairs.items():
                conditions.add_metric([*key, condition, status], 1)
            if when is not None:
                synced.add_metric(list(key), when)
        yield conditions
        yield synced


OBJECT_SERIES = ObjectSeries()
REGISTRY.register(OBJECT_SERIES)


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
    """Export the current ``(condition, status)`` pairs of one object (value 1 each)."""
    OBJECT_SERIES.set_conditions((kind, namespace, name), conditions)


def set_last_sync(kind: str, namespace: str, name: str, when: float) -> None:
    """When one object's rows were last confirmed to match its spec (Unix time)."""
    OBJECT_SERIES.set_synced((kind, namespace, name), when)


def forget_object(kind: str, namespace: str, name: str) -> None:
    """Drop a deleted object's series so they do not grow without bound."""
    OBJECT_SERIES.forget((kind, namespace, name))


def count_pass(kind: str, result: ReconcileResult) -> None:
    """One pass of ``kind`` ended with ``result`` (``aigw_reconciles_total``)."""
    RECONCILES.labels(kind, result).inc()


def statuses() -> tuple[str, ...]:
    """The label values ``status`` takes."""
    return _STATUSES
