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


def test_condition_gauge_is_one_series_per_type() -> None:
    metrics.set_conditions("AIProvider", "ns", "obj", [("Ready", "True"), ("Synced", "False")])
    assert metrics.CONDITION.labels("AIProvider", "ns", "obj", "Ready")._value.get() == 1.0
    assert metrics.CONDITION.labels("AIProvider", "ns", "obj", "Synced")._value.get() == 0.0
    metrics.forget_object("AIProvider", "ns", "obj", ["Ready", "Synced"])
    names = {s.labels.get("name") for m in metrics.CONDITION.collect() for s in m.samples}
    assert "obj" not in names
