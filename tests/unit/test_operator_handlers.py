"""One ``register(kind)`` for both kinds: the same three handlers on each kind, with the ids
kopf persists (a retried delete's progress is kept under ``kopf.aigateway.dev/<id>``, so a
renamed id would orphan it on objects being deleted during an upgrade)."""

from __future__ import annotations

import pytest

from aigateway_operator.api.identity import AIGATEWAYCODERDKEY, AIPROVIDER, KOPF_STORAGE_PREFIX
from aigateway_operator.config import Settings
from aigateway_operator.operator import build_registry, handlers

pytestmark = pytest.mark.unit


def test_each_kind_gets_observe_run_and_release_under_stable_ids() -> None:
    registry = build_registry(Settings(database_url="postgresql://u:p@localhost/coder"))  # type: ignore[call-arg]
    found = {
        (kind, h.id, h.selector.any_name if h.selector else None)
        for kind, reg in (
            ("event", registry._watching),
            ("daemon", registry._spawning),
            ("delete", registry._changing),
        )
        for h in reg.get_all_handlers()
    }
    assert found == {
        (kind, id_, k.plural)
        for k in (AIPROVIDER, AIGATEWAYCODERDKEY)
        for kind, id_ in (("event", "observe"), ("daemon", "run"), ("delete", "release"))
    }
    for h in registry._spawning.get_all_handlers():
        assert h.cancellation_timeout == handlers.CANCELLATION_TIMEOUT_S
    assert KOPF_STORAGE_PREFIX == "kopf.aigateway.dev"  # where those ids' progress is kept
