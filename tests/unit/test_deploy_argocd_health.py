"""The Argo CD health check (deploy/argocd/health.lua) run in a real Lua interpreter (lupa),
as Argo CD runs it: Lua 5.1 (gopher-lua's), the object as the global ``obj``, a table with
status and message back.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51

from aigateway_operator.api.common import STALLED_REASONS
from tests.support.argocd import LUA_VERSION, argocd_health, lua_runtime

pytestmark = pytest.mark.unit


ARGOCD = Path(__file__).resolve().parents[2] / "deploy" / "argocd"
SCRIPT = (ARGOCD / "health.lua").read_text()
KINDS = ("AIProvider", "AIGatewayCoderdKey")
#: The operator's own list (it sets Stalled=True for these): the script must agree.
TERMINAL = tuple(sorted(STALLED_REASONS))


def health(obj: dict[str, Any]) -> tuple[str, str]:
    return argocd_health(obj, SCRIPT)


def cond(
    type_: str, status: str, reason: str, generation: int = 2, message: str = ""
) -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2026-11-30T10:00:00Z",
        "observedGeneration": generation,
    }


def obj(
    kind: str, *conditions: dict[str, Any], generation: int = 2, **status: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "aigateway.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "ai", "generation": generation},
        "spec": {},
    }
    if conditions or status:
        body["status"] = {
            "observedGeneration": generation,
            "conditions": list(conditions),
            **status,
        }
    return body


@pytest.mark.parametrize("kind", KINDS)
def test_ready_at_the_current_generation_is_healthy(kind: str) -> None:
    status, message = health(
        obj(kind, cond("Synced", "True", "Synced"), cond("Ready", "True", "Ready"))
    )
    assert status == "Healthy"
    assert message == "Ready=True (Ready)"


@pytest.mark.parametrize("kind", KINDS)
def test_no_status_yet_is_progressing(kind: str) -> None:
    assert health(obj(kind))[0] == "Progressing"
    assert health(obj(kind, generation=1) | {"status": {}})[0] == "Progressing"


@pytest.mark.parametrize("kind", KINDS)
def test_ready_from_an_older_generation_is_progressing(kind: str) -> None:
    stale = obj(kind, cond("Ready", "True", "Ready", generation=1), generation=2)
    stale["status"]["observedGeneration"] = 1
    status, message = health(stale)
    assert status == "Progressing"
    assert "generation 2" in message
    # An old Stalled does not condemn a spec the operator has not looked at yet.
    old_stall = obj(
        kind,
        cond("Stalled", "True", "InvalidSpec", generation=1),
        cond("Ready", "False", "InvalidSpec", generation=1),
        generation=2,
    )
    old_stall["status"]["observedGeneration"] = 1
    assert health(old_stall)[0] == "Progressing"


@pytest.mark.parametrize("kind", KINDS)
def test_reconciling_is_progressing(kind: str) -> None:
    status, message = health(
        obj(kind, cond("Reconciling", "True", "Pending"), cond("Ready", "True", "Ready"))
    )
    assert status == "Progressing"
    assert message.startswith("Reconciling=True")


@pytest.mark.parametrize("kind", KINDS)
def test_stalled_is_degraded_with_its_message(kind: str) -> None:
    status, message = health(
        obj(
            kind,
            cond("Stalled", "True", "NameConflict", message="provider openai is owned by ai/other"),
            cond("Ready", "False", "NameConflict"),
        )
    )
    assert status == "Degraded"
    assert message == "Stalled=True (NameConflict): provider openai is owned by ai/other"


@pytest.mark.parametrize("reason", TERMINAL)
def test_ready_false_for_a_reason_that_needs_a_person_is_degraded(reason: str) -> None:
    # Even without a Stalled condition (an operator that does not set it yet).
    assert health(obj("AIProvider", cond("Ready", "False", reason)))[0] == "Degraded"


@pytest.mark.parametrize(
    "reason", ["SecretNotFound", "DatabaseUnavailable", "STSUnavailable", "HeartbeatStale"]
)
def test_ready_false_for_a_reason_that_can_fix_itself_is_progressing(reason: str) -> None:
    status, message = health(obj("AIProvider", cond("Ready", "False", reason, message="m")))
    assert status == "Progressing"
    assert message == f"Ready=False ({reason}): m"


def test_ready_unknown_and_stalled_false_are_progressing() -> None:
    body = obj(
        "AIProvider", cond("Stalled", "False", "NotStalled"), cond("Ready", "Unknown", "Pending")
    )
    assert health(body)[0] == "Progressing"


def test_deleting_is_progressing() -> None:
    body = obj("AIGatewayCoderdKey", cond("Ready", "False", "DeletionBlocked", message="in use"))
    body["metadata"]["deletionTimestamp"] = "2026-11-30T10:00:00Z"
    assert health(body) == ("Progressing", "Ready=False (DeletionBlocked): in use")


def test_status_observed_generation_is_used_when_conditions_lack_one() -> None:
    ready = cond("Ready", "True", "Ready")
    del ready["observedGeneration"]
    assert health(obj("AIProvider", ready, generation=3))[0] == "Healthy"
    behind = obj("AIProvider", ready, generation=3)
    behind["status"]["observedGeneration"] = 2
    assert health(behind)[0] == "Progressing"


def test_the_script_runs_under_lua_5_1_as_in_argo_cd() -> None:
    """gopher-lua is Lua 5.1: the runner is too, so a newer Lua's syntax fails here as it
    would in Argo CD (integer division ``//`` is Lua 5.3)."""
    assert lua_runtime().eval("_VERSION") == LUA_VERSION == "Lua 5.1"
    newer = 'return {status = tostring(7 // 2), message = ""}'
    with pytest.raises(lua51.LuaSyntaxError):
        argocd_health(obj("AIProvider"), newer)


def test_the_scripts_terminal_reasons_are_the_operators_stalled_reasons() -> None:
    block = re.search(r"local terminal = \{(.*?)\}", SCRIPT, re.S)
    assert block is not None
    assert set(re.findall(r"(\w+) = true", block.group(1))) == set(STALLED_REASONS)


def test_argocd_cm_snippet_carries_the_same_script_for_both_kinds() -> None:
    cm = yaml.safe_load((ARGOCD / "argocd-cm.yaml").read_text())
    assert cm["kind"] == "ConfigMap"
    assert cm["metadata"]["name"] == "argocd-cm"
    keys = {f"resource.customizations.health.aigateway.dev_{kind}" for kind in KINDS}
    assert set(cm["data"]) == keys
    for key in keys:
        assert cm["data"][key] == SCRIPT, f"{key} differs from health.lua"
