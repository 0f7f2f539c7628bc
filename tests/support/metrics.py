"""The operator's /metrics page, read the way Prometheus reads it; and the metrics as the
README and the chart's files/metrics.txt list them."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families


def scrape(port: int, timeout: float = 5) -> str:
    """The raw text of ``http://127.0.0.1:<port>/metrics``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as resp:
        return str(resp.read().decode())


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample of ``name`` (a counter's ``_total`` included) by its sorted labels."""
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = float(sample.value)
    return out


def value(text: str, metric: str, /, **labels: str) -> float:
    """The sum of the samples of ``metric`` whose labels include ``labels`` (0 when none; a
    label may be called ``name``: the metric is positional-only)."""
    want = set(labels.items())
    return sum(v for key, v in samples(text, metric).items() if want <= set(key))


# -- the documented metrics -------------------------------------------------------------------

README = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
METRICS_TXT = (
    Path(__file__).resolve().parents[2] / "deploy" / "helm" / "aigateway-operator" / "files"
) / "metrics.txt"
_PARAGRAPH_START = "Metrics (`AIGW_METRICS_PORT`"
_TABLE_HEADER = "| metric | label | values |"


def readme_metrics(text: str | None = None) -> dict[str, frozenset[str]]:
    """The README's "Metrics" paragraph: every series it names -> its label names."""
    text = README.read_text() if text is None else text
    paragraph = text[text.index(_PARAGRAPH_START) :]
    paragraph = paragraph[: paragraph.index("\n\n")]
    out: dict[str, frozenset[str]] = {}
    for name, labels in re.findall(r"`(aigw_[a-z_]+)(?:\{([a-z_,]+)\})?`", paragraph):
        assert name not in out, f"the README names {name} twice"
        out[name] = frozenset(labels.split(",")) if labels else frozenset()
    return out


def metrics_txt() -> dict[str, tuple[str, frozenset[str]]]:
    """The chart's files/metrics.txt: name -> (type, label names)."""
    out: dict[str, tuple[str, frozenset[str]]] = {}
    for line in METRICS_TXT.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, kind, labels = line.split("\t")
        assert name not in out, f"{name} listed twice"
        out[name] = (kind, frozenset() if labels == "-" else frozenset(labels.split(",")))
    return out


def readme_label_values(text: str | None = None) -> dict[tuple[str, str], frozenset[str] | None]:
    """The README's table of label values after the "Metrics" paragraph:
    (metric, label) -> the values it lists, each in backticks; None where the row describes
    them in words (a version, an object's name: nothing to enumerate)."""
    text = README.read_text() if text is None else text
    table = text[text.index(_TABLE_HEADER, text.index(_PARAGRAPH_START)) :]
    table = table[: table.index("\n\n")]
    out: dict[tuple[str, str], frozenset[str] | None] = {}
    for line in table.splitlines()[2:]:
        metrics, labels, values = (c.strip() for c in line.strip().strip("|").split("|"))
        listed = frozenset(re.findall(r"`([^`]+)`", values)) or None
        for metric in re.findall(r"`(aigw_[a-z_]+)`", metrics):
            for label in re.findall(r"`([a-z_]+)`", labels):
                assert (metric, label) not in out, f"{metric}{{{label}}} has two rows"
                out[(metric, label)] = listed
    return out
