"""The table of calls (kube/calls.py) is what the client really sends: every method of
:class:`Kube` is run against a recording stand-in for the request, and each request must name
a declared call whose verb is its method and whose resource is its path's. The chart's RBAC
is checked against the same table on the real API server (test_chart_rbac.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aigateway_operator.kube import client as client_mod
from aigateway_operator.kube.calls import CALLS, ApiCall
from aigateway_operator.kube.client import Kube, Requester, Workload

pytestmark = pytest.mark.unit

OWNER = {"apiVersion": "v1", "kind": "X", "name": "o", "uid": "u1"}


class Recording(Kube):
    def __init__(self) -> None:
        super().__init__(api=None)  # type: ignore[arg-type]
        self.sent: list[tuple[ApiCall, str, str]] = []

    def _call(
        self,
        what: str,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        *,
        missing_ok: bool = True,
        accept: str = "application/json",
    ) -> dict[str, Any] | None:
        return {"metadata": {"name": "n", "resourceVersion": "1"}, "items": []}

    async def _async(  # type: ignore[override]
        self, call: ApiCall, what: str, method: str, path: str, *a: Any, **k: Any
    ) -> dict[str, Any] | None:
        self.sent.append((call, method, path))
        return await super()._async(call, what, method, path, *a, **k)


async def _every_method(kube: Recording) -> None:
    await kube.read_secret("ns", "s")
    await kube.write_owned_secret("ns", "s", {"k": b"v"}, OWNER, {}, None)
    await kube.write_owned_secret("ns", "s", {"k": b"v"}, OWNER, {}, "7")
    await kube.delete_secret("ns", "s", "uid")
    await kube.disown_secret("ns", "s", "uid")
    for plural in ("aiproviders", "aigatewaycoderdkeys"):
        await kube.get_object(plural, "ns", "o")
        await kube.list_objects(plural, "ns")
        await kube.list_objects(plural, None)
        await kube.patch_status(plural, "ns", "o", {"a": 1})
    await kube.create_event("ns", {})
    await kube.patch_event("ns", "e", {"count": 2})
    await kube.may_get_secret(Requester("alice", ("team",)), "ns", "s")
    await kube.list_workloads("ns")
    for kind in ("Deployment", "StatefulSet"):
        await kube.read_workload(kind, "ns", "w")
        await kube.stamp_pod_template(Workload(kind, "ns", "w", "uid", {}), {"a": "b"})


def test_every_request_names_a_declared_call_that_matches_it() -> None:
    kube = Recording()
    asyncio.run(_every_method(kube))
    methods = {"get": "GET", "list": "GET", "create": "POST", "update": "PUT"}
    for call, method, path in kube.sent:
        assert call in CALLS, call
        assert methods.get(call.verb, call.verb.upper()) == method, (call, method)
        resource = f"/{call.resource}" + (f"/o/{call.subresource}" if call.subresource else "")
        assert resource in path, (call, path)
        if call.verb == "list":
            assert path.endswith(call.resource), path
    # Every call the client declares is sent by one of its methods (no stale entries).
    declared = {v for v in vars(client_mod).values() if isinstance(v, ApiCall)}
    declared |= set(client_mod._OBJECT_CALLS.values())
    declared |= set(client_mod._WORKLOAD_CALLS.values())
    assert declared == {call for call, _, _ in kube.sent}


def test_a_request_whose_method_is_not_its_calls_verb_is_refused() -> None:
    kube = Recording()
    call = client_mod.READ_SECRET
    with pytest.raises(AssertionError, match="is not the declared"):
        asyncio.run(Kube._async(kube, call, "x", "PATCH", "/api/v1/namespaces/ns/secrets/s"))
