"""Metrics never stop the operator (a port in use is logged, not fatal), export only what is
current, and are documented as they are: the README's list, the chart's files/metrics.txt and
the collectors the operator registers are one list, and every label value the README's table
lists is what the code can set."""

from __future__ import annotations

import socket
from typing import get_args

import pytest
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from aigateway_operator import metrics
from aigateway_operator.api.common import ConditionType, Reason
from aigateway_operator.api.identity import AIPROVIDER, KINDS
from aigateway_operator.controllers.shared import database_error_kind
from aigateway_operator.store import (
    EncryptionKeyMismatch,
    InsufficientPrivileges,
    NotSupportedByCoder,
    PlaintextRefused,
    SchemaMismatch,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
)
from aigateway_operator.store.models import Action as ProviderAction
from aigateway_operator.store.versions import CODER_RELEASES
from aigateway_operator.validation.identity import VerdictReason
from tests.support.metrics import metrics_txt, readme_label_values, readme_metrics

pytestmark = pytest.mark.unit


def test_metrics_port_in_use_is_not_fatal() -> None:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))  # noqa: S104 - the same wildcard address the exporter uses
        sock.listen()
        port = sock.getsockname()[1]
        assert metrics.serve(port) is False
    assert metrics.serve(0) is False


def samples(metric: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of ``metric`` about object ``name``, as /metrics serves it."""
    return [
        (s.labels, s.value)
        for m in REGISTRY.collect()
        if m.name == metric
        for s in m.samples
        if s.labels.get("name") == name
    ]


def series(name: str) -> set[tuple[str, ...]]:
    """The (condition, status) of every ``aigw_status_condition`` sample about ``name``."""
    return {
        (labels["condition"], labels["status"])
        for labels, value in samples("aigw_status_condition", name)
        if value == 1
    }


def test_status_condition_exports_the_current_status_only() -> None:
    metrics.set_conditions("AIProvider", "ns", "obj", [("Ready", "True"), ("Synced", "False")])
    assert series("obj") == {("Ready", "True"), ("Synced", "False")}
    assert len(samples("aigw_status_condition", "obj")) == 2
    metrics.set_conditions("AIProvider", "ns", "obj", [("Ready", "False")])
    assert series("obj") == {("Ready", "False"), ("Synced", "False")}
    assert len(samples("aigw_status_condition", "obj")) == 2
    metrics.set_last_sync("AIProvider", "ns", "obj", 1.0)
    assert samples("aigw_last_sync_timestamp_seconds", "obj") == [
        ({"kind": "AIProvider", "namespace": "ns", "name": "obj"}, 1.0)
    ]
    metrics.forget_object("AIProvider", "ns", "obj")
    assert series("obj") == set()
    assert samples("aigw_last_sync_timestamp_seconds", "obj") == []


def test_per_object_series_are_one_small_entry_each() -> None:
    """The per-object series cost one entry per object, not a Gauge child per series."""
    import tracemalloc

    names = [f"m-{i}" for i in range(500)]
    conditions = [(c.value, "True") for c in ConditionType]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in names:
            metrics.set_conditions("AIProvider", "ns", n, conditions)
            metrics.set_last_sync("AIProvider", "ns", n, 1.0)
        per_object = (tracemalloc.get_traced_memory()[0] - before) / len(names)
    finally:
        tracemalloc.stop()
        for n in names:
            metrics.forget_object("AIProvider", "ns", n)
    assert per_object < 1500, f"{per_object:.0f} bytes per object"


def test_no_created_series() -> None:
    from prometheus_client import generate_latest

    metrics.RECONCILES.labels("AIProvider", "synced").inc()
    assert b"_created" not in generate_latest()


# -- the three lists of metrics: the README, the chart's metrics.txt, the code ----------------


def registered() -> dict[str, tuple[str, frozenset[str]]]:
    """What importing :mod:`aigateway_operator.metrics` registers with prometheus_client's
    default registry (what /metrics serves): name as queried -> (type, label names)."""
    out: dict[str, tuple[str, frozenset[str]]] = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            (family,) = value.describe()
            name = family.name + ("_total" if family.type == "counter" else "")
            out[name] = (family.type, frozenset(value._labelnames))
    # The per-object series: a custom collector, its label names from its own tuples.
    for metric, _, labels in (metrics.ObjectSeries.CONDITION, metrics.ObjectSeries.LAST_SYNC):
        out[metric] = ("gauge", frozenset(labels))
    served = {
        f.name + ("_total" if f.type == "counter" else "")
        for f in REGISTRY.collect()
        if f.name.startswith("aigw_")
    }
    assert served == set(out), "aigw_ collectors registered outside aigateway_operator.metrics"
    return out


def test_the_readme_the_chart_and_the_code_list_the_same_metrics() -> None:
    """Rules and the dashboard are checked against metrics.txt, the live scrape against the
    README: both lists must be what the operator registers, labels included."""
    code = registered()
    assert len(code) >= 16
    chart = metrics_txt()
    assert chart == code, "files/metrics.txt differs from aigateway_operator.metrics"
    assert readme_metrics() == {name: labels for name, (_, labels) in code.items()}, (
        "the README's Metrics paragraph differs from aigateway_operator.metrics"
    )


def code_label_values() -> dict[tuple[str, str], frozenset[str]]:
    """(metric, label) -> every value the operator can set, from its constants and types."""
    kinds = frozenset(k.kind for k in KINDS)
    verdicts = frozenset(str(r) for r in get_args(VerdictReason))
    out = {(name, "kind"): kinds for name, (_, labels) in registered().items() if "kind" in labels}
    out |= {
        # Only the AIProvider pass reverts drift (a gateway key's row has nothing to revert).
        ("aigw_drift_reverted_total", "kind"): frozenset({AIPROVIDER.kind}),
        ("aigw_database_errors_total", "kind"): frozenset(get_args(metrics.DatabaseErrorKind)),
        ("aigw_reconciles_total", "result"): frozenset(get_args(metrics.ReconcileResult)),
        ("aigw_database_writes_total", "action"): (
            frozenset(get_args(metrics.WriteAction)) - {"unchanged"}  # not counted
        ),
        ("aigw_sts_verifications_total", "reason"): verdicts,
        ("aigw_sts_errors_total", "reason"): verdicts - {Reason.VERIFIED},
        ("aigw_status_condition", "condition"): frozenset(c.value for c in ConditionType),
        ("aigw_status_condition", "status"): frozenset(metrics.statuses()),
        # The store refuses a Coder older than supported before the gauge is set.
        ("aigw_coder_info", "version"): frozenset(r.label for r in CODER_RELEASES if r.supported),
    }
    return out


#: Labels whose values are not the operator's words: they are described, not listed.
FREE_TEXT = {
    ("aigw_build_info", "version"),
    ("aigw_status_condition", "namespace"),
    ("aigw_status_condition", "name"),
    ("aigw_last_sync_timestamp_seconds", "namespace"),
    ("aigw_last_sync_timestamp_seconds", "name"),
}


def test_every_label_value_is_documented_as_the_code_has_it() -> None:
    documented = readme_label_values()
    every = {(name, label) for name, (_, labels) in registered().items() for label in labels}
    assert sorted(every - set(documented)) == [], "labels the README's table does not cover"
    assert sorted(set(documented) - every) == [], "the table names labels that do not exist"
    assert {pair for pair, values in documented.items() if values is None} == FREE_TEXT
    expected = code_label_values()
    assert set(expected) | FREE_TEXT == every
    for pair, values in expected.items():
        assert documented[pair] == values, f"{pair[0]}{{{pair[1]}}}"


def test_the_typed_label_values_hold_what_the_passes_set() -> None:
    """The types the tests read are the ones the passes use: the store's provider actions
    (all but the two a pass does not count) are write actions, every store error maps to a
    database error kind, and the HELP texts list the same values."""
    counted = set(get_args(ProviderAction)) - {"unchanged", "left_alone"}
    assert counted <= set(get_args(metrics.WriteAction))
    errors = [
        StoreUnavailable("x"),
        StoreTimeout("x"),
        InsufficientPrivileges(["x"]),
        SchemaMismatch(["x"]),
        NotSupportedByCoder("x"),
        EncryptionKeyMismatch("x"),
        PlaintextRefused("x"),
        StoreError("x"),
    ]
    assert {database_error_kind(e) for e in errors} == set(get_args(metrics.DatabaseErrorKind))
    help_lists = {
        metrics.DATABASE_ERRORS: get_args(metrics.DatabaseErrorKind),
        metrics.RECONCILES: get_args(metrics.ReconcileResult),
        metrics.STS_ERRORS: sorted(code_label_values()[("aigw_sts_errors_total", "reason")]),
    }
    for collector, values in help_lists.items():
        (family,) = collector.describe()
        listed = family.documentation.rsplit("(", 1)[1].rstrip(").").split(", ")
        assert sorted(listed) == sorted(values), family.name
