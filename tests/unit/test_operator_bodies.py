"""The body kopf keeps of each object (its daemons' live view, replaced by every watch event's
object) is held without ``metadata.managedFields``: the raw event's object, which is the dict
kopf keeps, loses the field in the operator's ``on.event`` handler; nothing else changes."""

from __future__ import annotations

import copy
from typing import Any

import kopf
import pytest

from aigateway_operator.operator.bodies import drop_managed_fields

pytestmark = pytest.mark.unit


def event(type_: str | None = "MODIFIED") -> dict[str, Any]:
    return {
        "type": type_,
        "object": {
            "apiVersion": "aigateway.dev/v1alpha1",
            "kind": "AIProvider",
            "metadata": {
                "name": "p",
                "namespace": "ns",
                "uid": "u-1",
                "generation": 2,
                "resourceVersion": "7",
                "finalizers": ["aigateway.dev/finalizer"],
                "annotations": {"aigateway.dev/resync": "1"},
                "managedFields": [
                    {"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:spec": {}}},
                    {"manager": "aigateway-operator", "subresource": "status"},
                ],
            },
            "spec": {"type": "openai"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        },
    }


def test_the_body_kopf_keeps_has_no_managed_fields_and_nothing_else_changes() -> None:
    raw = event()
    before = copy.deepcopy(raw["object"])
    # kopf's live body of a daemon is a view of the raw event's object dict.
    live = kopf.Body(raw["object"])
    drop_managed_fields(raw)
    assert "managedFields" not in live["metadata"]
    assert "managedFields" not in raw["object"]["metadata"]
    del before["metadata"]["managedFields"]
    assert raw["object"] == before


@pytest.mark.parametrize(
    "raw",
    [{"type": None, "object": {}}, {"type": "ERROR", "object": {"metadata": None}}, {}],
)
def test_events_without_metadata_are_left_alone(raw: dict[str, Any]) -> None:
    before = copy.deepcopy(raw)
    drop_managed_fields(raw)
    assert raw == before


class _Runner:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def observe(self, event_type: str | None, body: dict[str, Any]) -> None:
        self.seen.append(body)


class _Controller:
    def __init__(self, kind: Any) -> None:
        self.kind = kind
        self.runner = _Runner()


class _App:
    def __init__(self, kind: Any) -> None:
        self.providers = _Controller(kind)
        self.gateway_keys = _Controller(None)

    def set_active(self, active: bool) -> None:
        pass


async def test_the_on_event_handler_drops_it_before_the_runner_sees_the_body(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aigateway_operator.api.identity import AIPROVIDER
    from aigateway_operator.operator import handlers

    app = _App(AIPROVIDER)
    monkeypatch.setattr(handlers, "app_of", lambda memo: app)
    registry = kopf.OperatorRegistry()
    handlers.register(registry, AIPROVIDER, lambda a: a.providers)  # type: ignore[arg-type,attr-defined]
    (observe,) = [h for h in registry._watching.get_all_handlers() if h.id == "observe"]
    raw = event()
    await observe.fn(event=raw, memo=None)
    assert app.providers.runner.seen == [raw["object"]]
    assert "managedFields" not in raw["object"]["metadata"]
