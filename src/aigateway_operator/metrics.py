"""Prometheus metrics (``AIGW_METRICS_PORT``, default 9090; 0 disables the endpoint).

Labels carry names and stable reasons only: never a value from a Secret. Every series and
label value is listed in docs/operations.md ("Metrics"; tests/unit/test_metrics.py keeps it equal to
this module and to the chart's files/metrics.txt); the label values the operator sets from
its own words are typed below (:data:`DatabaseErrorKind`, :data:`ReconcileResult`,
:data:`WriteAction`), so mypy holds every caller to them. ``_created`` samples are disabled
(they double every counter's series and nobody queries them).

Per-object series (``aigw_status_condition``, ``aigw_last_sync_timestamp_seconds``) are
dropped when the object goes; which condition series an object has is kept on its record
(``controllers.record``: :data:`Exported`), not in a map here. ``aigw_status_condition`` has
the shape external-secrets and kube-state-metrics use (``{condition, status}``) but only the
*current* status of each condition is exported, with value 1: one series per condition
instead of three, which at 10,000 objects is the difference between ~25 MB and ~80 MB of
label sets.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable
from typing import Literal, get_args

from prometheus_client import (
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)

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
STATUS_CONDITION = Gauge(
    "aigw_status_condition",
    "1 for the current status of each condition of each object.",
    ["kind", "namespace", "name", "condition", "status"],
)
LAST_SYNC = Gauge(
    "aigw_last_sync_timestamp_seconds",
    "When each object's rows in Coder were last confirmed to match its spec (Unix time).",
    ["kind", "namespace", "name"],
)

_STATUSES = ("True", "False", "Unknown")
_server_lock = threading.Lock()
_server_port: int | None = None

#: The ``(condition, status)`` pairs exported for one object, kept by the caller (the
#: object's record). Each pair is shared by every object exporting it (:func:`_pair`).
Exported = tuple[tuple[str, str], ...]
_pairs: dict[tuple[str, str], tuple[str, str]] = {}
"""One tuple per (condition, status) value: a handful in all, never per object."""


def _pair(condition: str, status: str) -> tuple[str, str]:
    key = (condition, status)
    return _pairs.setdefault(key, key)


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
    kind: str,
    namespace: str,
    name: str,
    conditions: Iterable[tuple[str, str]],
    exported: Exported = (),
) -> Exported:
    """Export the current ``(condition, status)`` pairs of one object (value 1 each), given
    what was ``exported`` for it before; what is exported now (conditions not named keep
    their series)."""
    now = dict(exported)
    for condition, status in conditions:
        before = now.get(condition)
        if before == status:
            continue
        if before is not None:
            with contextlib.suppress(KeyError):
                STATUS_CONDITION.remove(kind, namespace, name, condition, before)
        STATUS_CONDITION.labels(kind, namespace, name, condition, status).set(1)
        now[condition] = status
    return tuple(_pair(c, s) for c, s in now.items())


def forget_object(kind: str, namespace: str, name: str, exported: Exported) -> None:
    """Drop a deleted object's series (``exported``: its condition series) so they do not grow
    without bound."""
    for condition, status in exported:
        with contextlib.suppress(KeyError):
            STATUS_CONDITION.remove(kind, namespace, name, condition, status)
    with contextlib.suppress(KeyError):
        LAST_SYNC.remove(kind, namespace, name)


def count_pass(kind: str, result: ReconcileResult) -> None:
    """One pass of ``kind`` ended with ``result`` (``aigw_reconciles_total``)."""
    RECONCILES.labels(kind, result).inc()


def statuses() -> tuple[str, ...]:
    """The label values ``status`` takes."""
    return _STATUSES
