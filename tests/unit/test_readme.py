"""The API reference (docs/api.md) is checked against the CRDs, so the two cannot drift apart."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from aigateway_operator.api.common import ConditionType, EventReason, Reason

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "docs" / "api.md").read_text()


def _spec_fields(crd_file: str) -> list[str]:
    crd: dict[str, Any] = yaml.safe_load((ROOT / "crds" / crd_file).read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = schema["properties"]["spec"]["properties"]
    fields = list(spec)
    for name, node in spec.items():
        for sub in node.get("properties") or {}:
            fields.append(f"{name}.{sub}")
    return fields


@pytest.mark.parametrize(
    "crd_file", ["aigateway.dev_aiproviders.yaml", "aigateway.dev_aigatewaycoderdkeys.yaml"]
)
def test_every_spec_field_is_documented(crd_file: str) -> None:
    documented = set(re.findall(r"`([A-Za-z][A-Za-z0-9.]*)", README))
    missing = []
    for field in _spec_fields(crd_file):
        leaf = field.split(".")[-1]
        if field not in documented and leaf not in documented:
            missing.append(field)
    assert missing == [], f"README does not document {missing} of {crd_file}"


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def _reason_rows() -> dict[str, list[str]]:
    """The rows of the reasons table in "Conditions and reasons": reason -> its cells."""
    rows: dict[str, list[str]] = {}
    section = _section("Conditions and reasons")
    table = section[section.index("| reason | where |") :]
    for line in table.split("\n\n")[0].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        for reason in re.findall(r"`([A-Za-z]+)`", cells[0]):
            assert reason not in rows, f"{reason} has two rows"
            rows[reason] = cells[1:]
    return rows


def test_every_reason_is_documented_with_what_to_do() -> None:
    """Every reason of a condition or an Event has its row in "Conditions and reasons":
    where it appears, and what it means and what to do. No exemptions."""
    rows = _reason_rows()
    every = {r.value for r in Reason} | {r.value for r in EventReason}
    assert sorted(every - set(rows)) == [], "reasons the README does not document"
    assert sorted(set(rows) - every) == [], "documented reasons the operator does not have"
    for reason, (where, what) in rows.items():
        assert where, f"{reason}: where does it appear?"
        assert len(what.split()) >= 4, f"{reason}: what it means and what to do"


def test_the_condition_table_names_only_real_reasons() -> None:
    table = _section("Conditions and reasons").split("\n\n")[1]
    named = set(re.findall(r"`([A-Z][A-Za-z]+)`", table))
    conditions = {c.value for c in ConditionType}
    every = {r.value for r in Reason} | {r.value for r in EventReason}
    assert sorted(named - conditions - every) == []


def test_the_coder_gateway_chart_values_name_the_secret_the_operator_writes() -> None:
    """#19: the Secret plugs into Coder's AI Gateway chart (``aigateway.keySecret``) as is."""
    from aigateway_operator.api.gatewaykey import SECRET_DATA_KEY, GatewayKeySpec

    block = README.split("values for Coder's AI Gateway chart", 1)[1].split("```", 1)[0]
    values = yaml.safe_load("# " + block)
    key_secret = values["aigateway"]["keySecret"]
    assert key_secret["key"] == SECRET_DATA_KEY
    # The README's example object is `gateway-eu` without spec.secretName.
    assert key_secret["name"] == GatewayKeySpec().effective_secret_name("gateway-eu")
