"""Metrics never stop the operator: a port in use is logged, not fatal."""

from __future__ import annotations

import socket

import pytest

from aigateway_operator import metrics

pytestmark = pytest.mark.unit


def test_metrics_port_in_use_is_not_fatal() -> None:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))  # noqa: S104 - the same wildcard address the exporter uses
        sock.listen()
        port = sock.getsockname()[1]
        assert metrics.serve(port) is False
    assert metrics.serve(0) is False


def series(name: str) -> set[tuple[str, ...]]:
    """The label values of every sample of ``metrics.STATUS_CONDITION`` about object ``name``."""
    return {
        (s.labels["condition"], s.labels["status"])
        for m in metrics.STATUS_CONDITION.collect()
        for s in m.samples
        if s.labels.get("name") == name
    }


def test_status_condition_exports_the_current_status_only() -> None:
    metrics.set_conditions("AIProvider", "ns", "obj", [("Ready", "True"), ("Synced", "False")])
    assert series("obj") == {("Ready", "True"), ("Synced", "False")}
    metrics.set_conditions("AIProvider", "ns", "obj", [("Ready", "False")])
    assert series("obj") == {("Ready", "False"), ("Synced", "False")}
    metrics.LAST_SYNC.labels("AIProvider", "ns", "obj").set(1.0)
    metrics.forget_object("AIProvider", "ns", "obj")
    assert series("obj") == set()
    assert all(
        s.labels.get("name") != "obj" for m in metrics.LAST_SYNC.collect() for s in m.samples
    )


def test_no_created_series() -> None:
    from prometheus_client import generate_latest

    metrics.RECONCILES.labels("AIProvider", "synced").inc()
    assert b"_created" not in generate_latest()
