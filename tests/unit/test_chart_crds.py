"""The chart carries real copies of the repository's CRDs (``crds/`` is the single source of
truth; ``make crds-sync`` copies them). Flux and Fleet drop symlinks in charts taken from Git,
so a symlink here would ship a chart without CRDs."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "crds"
CHART_CRDS = REPO / "deploy" / "helm" / "aigateway-operator" / "files" / "crds"


def test_chart_crds_are_real_files_equal_to_crds_byte_for_byte() -> None:
    assert not CHART_CRDS.is_symlink()
    chart = {p.name: p for p in CHART_CRDS.iterdir()}
    source = {p.name: p for p in SOURCE.glob("*.yaml")}
    assert source, "crds/ is empty"
    assert sorted(chart) == sorted(source), "run `make crds-sync`"
    for name, path in chart.items():
        assert not path.is_symlink(), name
        assert path.read_bytes() == source[name].read_bytes(), f"{name}: run `make crds-sync`"


def test_no_symlink_anywhere_in_the_chart() -> None:
    chart = CHART_CRDS.parents[1]
    links = [str(p.relative_to(chart)) for p in chart.rglob("*") if p.is_symlink()]
    assert links == []
