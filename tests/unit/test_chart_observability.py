"""The chart's PrometheusRule and Grafana dashboard query only metrics the operator exposes.

``files/metrics.txt`` is the one list of the operator's metrics (name, type, labels);
tests/unit/test_metrics.py checks it is exactly what the operator registers and what the
README lists. Here: every ``aigw_*`` name in
the rule template and the dashboard is on it, every dashboard query is valid PromQL (parsed
by a real PromQL parser, promql-parser), and selects and groups only by declared labels.
The rendered rule file is checked in tests/integration/test_chart.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest

from tests.support.metrics import metrics_txt

pytestmark = pytest.mark.unit

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "aigateway-operator"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
#: Labels Prometheus adds to every scraped series (target labels), and the bucket label.
TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod", "service", "endpoint", "le"})


def declared() -> dict[str, tuple[str, frozenset[str]]]:
    """metrics.txt: name -> (type, labels)."""
    return metrics_txt()


def family(sample: str, metrics: dict[str, tuple[str, frozenset[str]]]) -> str | None:
    """The declared metric a queried sample name belongs to (histogram samples included)."""
    if sample in metrics:
        return sample
    for suffix in HISTOGRAM_SUFFIXES:
        base = sample.removesuffix(suffix)
        if base != sample and metrics.get(base, ("",))[0] == "histogram":
            return base
    return None


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CHART / "files" / "dashboard.json").read_text())
    return data


def dashboard_queries() -> list[str]:
    queries = [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]
    for var in dashboard()["templating"]["list"]:
        if var["type"] == "query":
            queries.append(var["definition"])
    return queries


def as_promql(query: str) -> str:
    """Grafana's variables replaced as Grafana would before sending the query."""
    return query.replace("$__rate_interval", "5m").replace("$job", "aigw-metrics")


def test_metrics_list_is_well_formed() -> None:
    metrics = declared()
    assert len(metrics) >= 15
    for name, (kind, labels) in metrics.items():
        assert re.fullmatch(r"aigw_[a-z][a-z0-9_]*", name), name
        assert kind in {"counter", "gauge", "histogram"}, name
        assert name.endswith("_total") == (kind == "counter"), f"{name}: counters end in _total"
        assert not labels & {"job", "instance", "le"}, f"{name}: reserved label"
    # The ones the issue names, in the external-secrets / kube-state-metrics shapes.
    assert metrics["aigw_status_condition"][1] == {
        "kind",
        "namespace",
        "name",
        "condition",
        "status",
    }
    assert metrics["aigw_build_info"][1] == {"version"}
    assert metrics["aigw_reconcile_duration_seconds"][0] == "histogram"


@pytest.mark.parametrize("source", ["templates/prometheusrule.yaml", "files/dashboard.json"])
def test_every_metric_queried_is_declared(source: str) -> None:
    metrics = declared()
    used = set(re.findall(r"\baigw_[a-z0-9_]+", (CHART / source).read_text()))
    assert used, f"{source} queries no aigw_* metric"
    unknown = sorted(name for name in used if family(name, metrics) is None)
    assert unknown == [], f"{source} queries metrics not in files/metrics.txt: {unknown}"


def selectors_and_groupings(expr: promql_parser.Expr) -> tuple[list[Any], set[str]]:
    selectors: list[Any] = []
    grouping: set[str] = set()

    def visit(node: promql_parser.Expr) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            selectors.append(node)
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            grouping.update(node.modifier.labels)
        return True

    promql_parser.walk(expr, visit)
    return selectors, grouping


def test_dashboard_queries_parse_and_use_declared_labels() -> None:
    metrics = declared()
    queries = dashboard_queries()
    assert len(queries) >= 15
    for query in queries:
        if query.startswith("label_values("):  # a Grafana function, not PromQL
            name = re.fullmatch(r"label_values\((aigw_[a-z_]+), (\w+)\)", query)
            assert name, query
            assert name.group(1) in metrics
            continue
        expr = promql_parser.parse(as_promql(query))  # ValueError on invalid PromQL
        selectors, grouping = selectors_and_groupings(expr)
        assert selectors, query
        allowed: set[str] = set(TARGET_LABELS)
        for sel in selectors:
            base = family(sel.name, metrics)
            assert base is not None, f"{sel.name} in {query}"
            labels = metrics[base][1] | TARGET_LABELS
            allowed |= labels
            for matcher in sel.matchers.matchers:
                assert matcher.name in labels, f"{sel.name} has no label {matcher.name}: {query}"
            # Every dashboard query is scoped to the chosen operator(s).
            assert any(m.name == "job" for m in sel.matchers.matchers), query
        assert grouping <= allowed, f"groups by undeclared labels {grouping - allowed}: {query}"


def test_invalid_promql_is_rejected_by_the_parser() -> None:
    """The parser the checks rely on does reject what Prometheus would."""
    for bad in ("sum(rate(aigw_notifies_total[5m])", "aigw_x{job=}", "rate(aigw_x)[5m]"):
        with pytest.raises(ValueError):  # noqa: PT011 - the parser's only error type
            promql_parser.parse(bad)


def test_dashboard_is_importable() -> None:
    board = dashboard()
    assert board["uid"] == "aigateway-operator"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
