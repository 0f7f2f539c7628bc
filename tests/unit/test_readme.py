"""The README's API reference is checked against the CRDs, so the two cannot drift apart."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from aigateway_operator.api.common import Reason

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


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


def test_every_condition_reason_is_documented() -> None:
    documented = set(re.findall(r"`([A-Za-z]+)`", README))
    undocumented = sorted(
        r.value for r in Reason
        if r.value not in documented
        and r.value not in {"Pending", "ReconcileError", "Resolved", "Synced", "Ready", "Adopted",
                            "DriftReverted", "Orphaned", "Issued", "Rotating", "Rotated",
                            "KeyRetired", "KeyRevoked", "InSync", "HeartbeatRecent",
                            "TypeMismatch", "SecretAccessDenied"}
    )  # fmt: skip
    assert undocumented == []
