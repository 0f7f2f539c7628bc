"""One record per object, one forget path: after an object's ``DELETED`` event nothing in the
operator's memory names it any more, and the other objects keep everything.

Both kinds' real controllers and runners, with their passes replaced by canned outcomes that
leave what a real pass leaves (a row id and version, a hostname check, conditions, a sync
time, an Event, a written Secret); the Event recorder is the real one, posting to a fake API.
Every in-memory place of ours is counted for the object: the records, the provider index, the
Event aggregation keys, the metric series (prometheus_client's registry), the collectors'
missing-since clocks.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from aigateway_operator import metrics
from aigateway_operator.api.common import Condition, ConditionStatus, ConditionType, Reason
from aigateway_operator.api.identity import AIGATEWAYCODERDKEY, AIPROVIDER, FINALIZER, Kind
from aigateway_operator.config import Settings
from aigateway_operator.controllers.aiprovider import AIProviderController
from aigateway_operator.controllers.aiprovider import controller as provider_module
from aigateway_operator.controllers.aiprovider.index import members
from aigateway_operator.controllers.gatewaykey import GatewayKeyController
from aigateway_operator.controllers.gatewaykey import controller as key_module
from aigateway_operator.controllers.shared import Event, PassOutcome
from aigateway_operator.controllers.wiring import Wiring
from aigateway_operator.kube import EventRecorder
from aigateway_operator.store import HostnamePeers, RowVersion
from tests.support.wait import async_wait_for

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NS = "record-test"
OBJECTS = 3


class FakeKube:
    """Status patches and Events, as the API server answers them."""

    def __init__(self) -> None:
        self.rv = 100
        self.events = 0

    async def patch_status(self, plural: str, ns: str, name: str, status: Any) -> Any:
        self.rv += 1
        return {"metadata": {"resourceVersion": str(self.rv)}, "status": status}

    async def create_event(self, namespace: str, body: Any) -> Any:
        self.events += 1
        return {"metadata": {"name": f"ev-{self.events}"}}

    async def patch_event(self, namespace: str, name: str, patch: Any) -> Any:
        return {"metadata": {"name": name}}


class FakeStore:
    """The collectors' one call: nothing left to collect (our finalizer released it)."""

    capabilities = SimpleNamespace(has_gateway_keys=True)

    async def collect_provider(self, owner: Any) -> Any:
        return SimpleNamespace(action="absent")

    async def collect_gateway_keys(self, owner: Any) -> Any:
        return SimpleNamespace(records=[])


def conditions() -> tuple[Condition, ...]:
    return tuple(
        Condition(
            type=t,
            status=ConditionStatus.TRUE,
            reason=Reason.SYNCED,
            message="ok",
            last_transition_time=T0,
        )
        for t in (ConditionType.SYNCED, ConditionType.READY)
    )


def outcome(name: str) -> PassOutcome:
    return PassOutcome(
        {"ready": True},
        [Event.normal("Synced", f"{name} written")],
        conditions=conditions(),
        synced_at=T0,
        db_action="created",
    )


async def provider_pass(wiring: Any, ident: Any, spec: Any, status: Any) -> PassOutcome:
    out = outcome(ident.name)
    out.row_id = str(uuid.uuid4())
    out.row_version = RowVersion(T0, False, f"v-{ident.uid}")
    out.hostname_checked = True
    peers = () if ident.name.endswith("0") else ("p0",)  # p0 alone; p1, p2 share with p0
    out.hostname_peers = HostnamePeers("api.openai.com", peers, len(peers))
    return out


async def key_pass(
    wiring: Any, kube: Any, ident: Any, spec: Any, status: Any, restarts: Any = None
) -> tuple[PassOutcome, list[tuple[str, str, str]]]:
    if restarts is not None:
        restarts.done("key-1", T0)
    return outcome(ident.name), [(ident.namespace, f"{ident.name}-key", "7")]


def body(kind: Kind, name: str) -> dict[str, Any]:
    return {
        "apiVersion": kind.api_version,
        "kind": kind.kind,
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"{kind.plural}-{name}",
            "resourceVersion": "10",
            "generation": 1,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "finalizers": [FINALIZER],
        },
        "spec": {
            "type": "openai",
            "apiKeys": [{"secretKeyRef": {"name": f"{name}-secret", "key": "a"}}],
        },
    }


class World:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(provider_module.reconciling, "reconcile", provider_pass)
        monkeypatch.setattr(key_module.reconciling, "reconcile", key_pass)
        self.kube = FakeKube()
        self.events = EventRecorder(self.kube)  # type: ignore[arg-type]
        settings = Settings(database_url="postgresql://u:p@localhost/coder")  # type: ignore[call-arg]
        self.wiring = Wiring(
            settings=settings,
            store=FakeStore(),  # type: ignore[arg-type]
            kube=self.kube,  # type: ignore[arg-type]
            events=self.events,
            fingerprint_key=b"k",
            clock=lambda: T0,
        )
        self.providers = AIProviderController(self.wiring, asyncio.Semaphore(4))
        self.keys = GatewayKeyController(self.wiring, asyncio.Semaphore(4))
        self.bodies = {
            (kind, f"p{i}"): body(kind, f"p{i}")
            for kind in (AIPROVIDER, AIGATEWAYCODERDKEY)
            for i in range(OBJECTS)
        }

    def controller(self, kind: Kind) -> AIProviderController | GatewayKeyController:
        return self.providers if kind == AIPROVIDER else self.keys

    async def run_every_pass(self) -> None:
        """Every object seen by the watch, then one pass each (as its daemon would run it)."""
        for (kind, _), b in self.bodies.items():
            self.controller(kind).runner.observe("ADDED", b)
        for (kind, _), b in self.bodies.items():
            runner = self.controller(kind).runner
            record = runner.records[b["metadata"]["uid"]]
            record.live = b
            await runner._pass(record)  # type: ignore[arg-type]
        await async_wait_for(self._events_posted, 5, "every pass's Event posted", interval=0.01)

    async def _events_posted(self) -> bool:
        return self.events.pending() == 0 and len(self.events._posted) >= len(self.bodies)

    def traces(self, kind: Kind, name: str) -> dict[str, int]:
        """Entries naming the object ``kind``/``name``, in every in-memory place of ours."""
        uid = f"{kind.plural}-{name}"
        index = self.providers.index
        series = 0
        for family in metrics.OBJECT_SERIES.collect():
            if True:
                series += sum(
                    1
                    for s in family.samples
                    if s.labels.get("kind") == kind.kind
                    and s.labels.get("namespace") == NS
                    and s.labels.get("name") == name
                )
        return {
            "records": sum(uid in c.runner.records for c in (self.providers, self.keys)),
            "index": (uid in index._by_uid)
            + sum(uid in members(uids) for uids in index._by_secret.values())
            + sum(uid in members(uids) for uids in index._by_name.values()),
            "events": sum(1 for key in self.events._posted if key[0] == uid),
            "series": series,
            "collector": sum(
                1
                for c in (self.providers.collector, self.keys.collector)
                for key in c._missing_since
                if name in key
            ),
        }


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    w = World(monkeypatch)
    yield w
    for controller in (w.providers, w.keys):  # the metrics registry is the process's
        for r in controller.runner.records.values():
            metrics.forget_object(controller.kind.kind, r.namespace, r.name)


@pytest.mark.parametrize("kind", [AIPROVIDER, AIGATEWAYCODERDKEY], ids=lambda k: k.kind)
async def test_forgetting_an_object_leaves_nothing_of_it_in_memory(
    world: World, kind: Kind
) -> None:
    world.events.start()
    try:
        await world.run_every_pass()
        before = world.traces(kind, "p1")
        # What a pass leaves is really there, in each place that holds it for this kind.
        assert before["records"] == 1
        assert before["events"] == 1
        assert before["series"] == 3  # Synced, Ready and the last sync time
        if kind == AIPROVIDER:
            assert before["index"] == 3  # the object, its Secret, its provider name
            part = world.providers.runner.records[f"{kind.plural}-p1"].part
            assert part.row_id is not None
            assert part.version is not None
            assert part.sole_peer == "p0"
        else:
            part_k = world.keys.runner.records[f"{kind.plural}-p1"].part
            assert part_k.secret == ("p1-key", "7")
            assert part_k.scanned is not None
        others = {
            (k, n): world.traces(k, n)
            for k in (AIPROVIDER, AIGATEWAYCODERDKEY)
            for n in ("p0", "p1", "p2")
            if (k, n) != (kind, "p1")
        }

        world.controller(kind).runner.observe("DELETED", world.bodies[(kind, "p1")])
        await world.controller(kind).collector.stop()  # its delete-time collection, done

        assert world.traces(kind, "p1") == dict.fromkeys(before, 0)
        for (k, n), seen in others.items():
            assert world.traces(k, n) == seen, f"{k.kind} {n} lost state it still needs"
    finally:
        await world.events.stop()


async def test_a_forgotten_provider_wakes_its_sole_hostname_peer(world: World) -> None:
    """The record's part says who shared the hostname: dropping it wakes that one (p0 was
    alone before p1 arrived; p1 leaving may leave it alone again)."""
    world.events.start()
    try:
        await world.run_every_pass()
        p0 = world.providers.runner.records[f"{AIPROVIDER.plural}-p0"]
        p0.woken = False
        world.providers.runner.observe("DELETED", world.bodies[(AIPROVIDER, "p1")])
        assert p0.woken
    finally:
        await world.providers.collector.stop()
        await world.events.stop()


async def test_a_record_is_slots_only_and_holds_no_copy_of_the_body(world: World) -> None:
    """Small by construction: no ``__dict__`` on the record or its part, and after a pass it
    holds kopf's live body (not a copy) and the status our patch returned, nothing more."""
    world.events.start()
    try:
        await world.run_every_pass()
        for controller in (world.providers, world.keys):
            for record in controller.runner.records.values():
                assert not hasattr(record, "__dict__")
                assert not hasattr(record.part, "__dict__")
                assert record.live is world.bodies[(controller.kind, record.name)]
                assert record.written_status == {"ready": True}
    finally:
        for controller in (world.providers, world.keys):
            await controller.collector.stop()
        await world.events.stop()
