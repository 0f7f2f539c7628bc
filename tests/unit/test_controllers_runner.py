"""An object's life between kopf's daemon and its kind's pass, with a fake API (kopf and the
real API server are exercised by tests/integration/test_operator_inprocess.py and the e2e
tier): which events cost a pass, what is written, when it runs again, and deletion."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from aigateway_operator.api.common import Condition, ConditionStatus, ConditionType, Reason
from aigateway_operator.api.identity import AIPROVIDER, FINALIZER
from aigateway_operator.config import LogFormat, Settings
from aigateway_operator.controllers.record import ObjectRecord
from aigateway_operator.controllers.runner import Body, Runner
from aigateway_operator.controllers.shared import Event, ObjectIdentity, PassOutcome
from aigateway_operator.controllers.wiring import Wiring
from aigateway_operator.kube import ObjectRef
from aigateway_operator.operator import setup_logging
from tests.support.logs import kept_logging
from tests.support.wait import async_wait_for

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class FakeKube:
    """Holds the object; every write bumps its resourceVersion, as the API server does."""

    def __init__(self, body: Body) -> None:
        self.body = body
        self.patches: list[dict[str, Any]] = []

    async def patch_status(self, plural: str, ns: str, name: str, status: dict[str, Any]) -> Body:
        self.patches.append(status)
        self.body.setdefault("status", {}).update(status)
        meta = self.body["metadata"]
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
        return copy.deepcopy(self.body)


class FakeEvents:
    def __init__(self) -> None:
        self.posted: list[tuple[str, str]] = []

    def post(self, about: ObjectRef, type_: str, reason: str, message: str) -> None:
        self.posted.append((about.name, reason))


@dataclass
class FakeKind:
    """A kind whose pass writes ``ready: true`` once, then finds nothing to do."""

    kind = AIPROVIDER
    passes: list[str] = field(default_factory=list)
    running: int = 0
    most_at_once: int = 0
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    script: list[PassOutcome | Exception] = field(default_factory=list)
    finalized: list[str] = field(default_factory=list)
    finalize_outcome: PassOutcome = field(default_factory=lambda: PassOutcome({}, done=True))
    forgotten: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.gate.set()

    def new_part(self) -> None:
        return None

    async def reconcile(
        self, body: Body, ident: ObjectIdentity, record: ObjectRecord[None]
    ) -> PassOutcome:
        assert ident.name == body["metadata"]["name"] == record.name
        self.passes.append(ident.name)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await self.gate.wait()
        finally:
            self.running -= 1
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, Exception):
                raise step
            return step
        if (body.get("status") or {}).get("ready"):
            return PassOutcome({})
        return PassOutcome({"ready": True}, [Event.normal("Created", "made")])

    async def finalize(
        self, body: Body, ident: ObjectIdentity, record: ObjectRecord[None]
    ) -> PassOutcome:
        assert ident.name == body["metadata"]["name"] == record.name
        self.finalized.append(ident.name)
        return self.finalize_outcome

    def observed(self, event_type: str | None, body: Any) -> None:
        return None

    def forget(self, ident: ObjectIdentity, record: ObjectRecord[None] | None) -> None:
        self.forgotten.append(ident.name)


def obj(name: str = "p", uid: str = "u1", **meta: Any) -> Body:
    return {
        "apiVersion": "aigateway.dev/v1alpha1",
        "kind": "AIProvider",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": uid,
            "resourceVersion": "10",
            "generation": 1,
            "finalizers": [FINALIZER],
            **meta,
        },
        "spec": {"type": "openai"},
    }


@dataclass
class Rig:
    kind: FakeKind
    kube: FakeKube
    events: FakeEvents
    runner: Runner[None]
    stop: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def serve(self, body: Body | None = None) -> Body:
        live = body if body is not None else self.kube.body
        self.tasks.append(asyncio.create_task(self.runner.serve(live, lambda: self.stop)))
        return live

    async def until(self, check: Any, what: str) -> None:
        async def probe() -> bool:
            return bool(check())

        await async_wait_for(probe, 5, what, interval=0.01)

    async def settled(self, *uids: str) -> None:
        """Every named daemon has started and the passes it began have finished: a daemon
        makes its record and starts its first pass in one step, so once it is known, draining
        what is in flight leaves nothing that could still run (a wait on a condition, not a
        sleep)."""
        await self.until(lambda: set(uids) <= self.runner.serving(), "the daemons to start")
        await self.runner.drain(5)

    def woken(self, uid: str) -> bool:
        """Whether something has woken the daemon of ``uid`` for another pass."""
        return self.runner.records[uid].woken

    async def close(self) -> None:
        self.stop = True
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def make_rig(
    body: Body | None = None,
    workers: int = 4,
    resync_s: float = 600,
    on_stop: Callable[[ObjectRecord[None]], None] | None = None,
) -> Rig:
    kind = FakeKind()
    kube = FakeKube(body if body is not None else obj())
    events = FakeEvents()
    settings = Settings(database_url="postgresql://u:p@localhost/coder")  # type: ignore[call-arg]
    wiring = Wiring(
        settings=settings,
        store=None,  # type: ignore[arg-type]
        kube=kube,  # type: ignore[arg-type]
        events=events,  # type: ignore[arg-type]
        fingerprint_key=b"k",
        clock=lambda: T0,
    )
    runner: Runner[None] = Runner(
        kind, wiring, asyncio.Semaphore(workers), resync_s=resync_s, on_stop=on_stop
    )
    return Rig(kind, kube, events, runner)


@pytest.fixture
async def rig() -> Any:
    r = make_rig()
    yield r
    await r.close()


async def test_first_pass_writes_status_and_events_once(rig: Rig) -> None:
    live = rig.serve()
    await rig.until(lambda: rig.kube.patches == [{"ready": True}], "the first status patch")
    assert rig.events.posted == [("p", "Created")]
    # The echo of our own status write moves nothing a pass depends on.
    rig.runner.observe("MODIFIED", copy.deepcopy(rig.kube.body))
    live.update(copy.deepcopy(rig.kube.body))
    assert not rig.woken("u1"), "the echo of our own write woke the object"
    await rig.settled("u1")
    assert rig.kind.passes == ["p"]


async def test_the_record_drops_our_patched_status_once_kopf_has_its_echo(rig: Rig) -> None:
    """Until the watch echoes our status patch, the record keeps what the patch returned (the
    next pass must start from it); once kopf's view has it, the record holds no second copy."""
    rig.serve()
    await rig.until(lambda: rig.kube.patches == [{"ready": True}], "the first status patch")
    await rig.settled("u1")
    record = rig.runner.records["u1"]
    assert record.written_status == {"ready": True}
    older = copy.deepcopy(rig.kube.body)
    older["metadata"]["resourceVersion"] = "10"  # a stale event, from before our patch
    rig.runner.observe("MODIFIED", older)
    assert record.written_status == {"ready": True}
    rig.runner.observe("MODIFIED", copy.deepcopy(rig.kube.body))  # the echo
    assert (record.written_rv, record.written_status) == (0, None)


async def test_spec_edits_annotations_and_pokes_wake_the_object(rig: Rig) -> None:
    live = rig.serve()
    await rig.until(lambda: len(rig.kind.passes) == 1, "the first pass")
    edited = copy.deepcopy(rig.kube.body)
    edited["metadata"]["generation"] = 2
    live.update(edited)
    rig.runner.observe("MODIFIED", edited)
    await rig.until(lambda: len(rig.kind.passes) == 2, "a pass for the spec edit")
    annotated = copy.deepcopy(edited)
    annotated["metadata"]["annotations"] = {"aigateway.dev/reconcile": "1"}
    live.update(annotated)
    rig.runner.observe("MODIFIED", annotated)
    await rig.until(lambda: len(rig.kind.passes) == 3, "a pass for our annotation")
    foreign = copy.deepcopy(annotated)
    foreign["metadata"]["annotations"]["example.com/note"] = "x"
    rig.runner.observe("MODIFIED", foreign)
    assert rig.runner.poke(["u1", "unknown"]) == 1
    await rig.until(lambda: len(rig.kind.passes) == 4, "a pass for the poke")
    assert rig.kind.passes == ["p"] * 4


async def test_no_pass_writes_before_our_finalizer_is_on_the_object() -> None:
    rig = make_rig(obj(finalizers=[]))
    try:
        live = rig.serve()
        await rig.settled("u1")  # its first pass has run (and must have written nothing)
        assert rig.kind.passes == []
        with_finalizer = copy.deepcopy(live)
        with_finalizer["metadata"]["finalizers"] = [FINALIZER]
        live.update(with_finalizer)
        rig.runner.observe("MODIFIED", with_finalizer)
        await rig.until(lambda: rig.kind.passes == ["p"], "the pass once the finalizer is on")
    finally:
        await rig.close()


async def test_transient_failures_back_off_exponentially_then_reset(rig: Rig) -> None:
    retry = PassOutcome({}, retry_after=1.0, retry_message="database down")
    delays = []
    record = rig.runner._record("u1", rig.kube.body["metadata"])
    record.live = rig.kube.body
    for _ in range(4):
        rig.kind.script.append(retry)
        delays.append(await rig.runner._pass(record))
    assert delays == [1.0, 2.0, 4.0, 8.0]
    rig.kind.script.append(RuntimeError("bug"))
    assert await rig.runner._pass(record) == 32.0  # unexpected errors back off from 2 s
    ok = await rig.runner._pass(record)
    assert 540 <= ok <= 660  # success: the jittered resync, and the backoff starts over
    rig.kind.script.append(retry)
    assert await rig.runner._pass(record) == 1.0


def refused() -> PassOutcome:
    """A pass the store refused: Ready=False with the reason, retried later."""
    message = "refusing to write in plaintext: coderd encrypts with active key(s) abc1234"
    conditions = tuple(
        Condition(
            type=type_,
            status=ConditionStatus.FALSE,
            reason=Reason.PLAINTEXT_REFUSED,
            message=message,
            last_transition_time=T0,
        )
        for type_ in (ConditionType.SYNCED, ConditionType.READY)
    )
    return PassOutcome(
        {"conditions": [c.model_dump(mode="json") for c in conditions]},
        retry_after=60.0,
        retry_message=message,
        conditions=conditions,
    )


async def test_a_json_pass_line_carries_the_object_and_the_reason_as_fields(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """``AIGW_LOG_FORMAT=json``: the pass line, formatted by the formatter the operator's
    logging setup installs (kopf's JSON formatter), has the object and the pass's outcome
    (Ready's status and reason) as fields, not only inside the message text."""
    settings = Settings(
        database_url="postgresql://u:p@localhost/coder",  # type: ignore[call-arg]
        log_format=LogFormat.JSON,
    )
    with kept_logging():
        before = set(logging.getLogger().handlers)
        setup_logging(settings, verbose=False)
        (handler,) = set(logging.getLogger().handlers) - before
    assert handler.formatter is not None
    formatter = handler.formatter
    record = rig.runner._record("u1", rig.kube.body["metadata"])
    record.live = rig.kube.body
    rig.kind.script.append(refused())
    with caplog.at_level(logging.INFO, logger="aigateway_operator"):
        await rig.runner._pass(record)
    (record,) = [r for r in caplog.records if "pass done" in r.getMessage()]
    line = json.loads(formatter.format(record))
    assert line["reason"] == "PlaintextRefused"
    assert line["ready"] == "False"
    assert line["object"] == {
        "apiVersion": "aigateway.dev/v1alpha1",
        "kind": "AIProvider",
        "namespace": "ns",
        "name": "p",
        "uid": "u1",
    }
    assert "Ready=False (PlaintextRefused)" in line["message"]  # the text format says it too
    assert line["severity"] == "info"


async def test_next_due_shortens_the_wait(rig: Rig) -> None:
    record = rig.runner._record("u1", rig.kube.body["metadata"])
    record.live = rig.kube.body
    rig.kind.script.append(PassOutcome({}, next_due=T0 + timedelta(seconds=42)))
    assert await rig.runner._pass(record) == 42.0


async def test_passes_of_a_kind_are_bounded() -> None:
    rig = make_rig(workers=2)
    try:
        rig.kind.gate.clear()
        for i in range(5):
            rig.serve(obj(name=f"p{i}", uid=f"u{i}"))
        # Two passes hold the bound; the other three daemons' passes wait for it (the count
        # the runner keeps for its pending-work gauge): each of them has had its chance to run.
        await rig.until(
            lambda: rig.kind.running == 2 and rig.runner._waiting == 3,
            "two passes running and three waiting for a worker",
        )
        assert rig.kind.most_at_once == 2
        assert len(rig.kind.passes) == 2, "a pass ran beyond the bound"
        rig.kind.gate.set()
        await rig.until(lambda: len(rig.kind.passes) == 5, "every object's first pass")
        assert rig.kind.most_at_once == 2
    finally:
        await rig.close()


async def test_a_daemon_kopf_stops_is_no_longer_serving_and_its_kind_is_told() -> None:
    """Peering pauses the replica: kopf stops every daemon; what the kind keeps for running
    daemons only (the drift watch's rows) goes with them."""
    stopped: list[str] = []
    rig = make_rig(on_stop=lambda record: stopped.append(record.uid))
    try:
        rig.serve()
        await rig.settled("u1")
        assert rig.runner.serving() == {"u1"}
        assert stopped == []
        rig.stop = True  # kopf's stop flag (DaemonStoppingReason.OPERATOR_PAUSING)
        rig.runner.poke(["u1"])
        await rig.until(lambda: stopped == ["u1"], "the daemon to end")
        assert rig.runner.serving() == frozenset()
    finally:
        await rig.close()


async def test_release_waits_for_a_running_pass_and_a_cancelled_daemon_finishes_it(
    rig: Rig,
) -> None:
    rig.kind.gate.clear()
    rig.serve()
    await rig.until(lambda: rig.kind.running == 1, "a pass in flight")
    # kopf stops the daemon for the deletion (by cancelling it) and calls on.delete.
    await rig.close()
    deleting = obj(deletionTimestamp="2026-01-01T00:00:00Z")
    record = rig.runner.records["u1"]
    assert not record.ending
    release = asyncio.create_task(rig.runner.release(deleting))
    # release() marks the record ending, then takes the object's lock with no await between:
    # once the mark shows, it has run up to the lock, which the running pass holds.
    await rig.until(lambda: record.ending, "release to reach the object's lock")
    assert record.lock.locked()
    assert not release.done(), "release must wait for the running pass"
    assert rig.kind.finalized == []
    rig.kind.gate.set()
    outcome = await asyncio.wait_for(release, 5)
    assert outcome.done
    assert rig.kind.finalized == ["p"]
    assert rig.kube.patches == [{"ready": True}], "the shielded pass finished its write"


async def test_a_release_that_must_wait_patches_status_and_is_not_done(rig: Rig) -> None:
    rig.kind.finalize_outcome = PassOutcome(
        {"conditions": []}, [Event.warning("DeletionBlocked", "in use")], retry_after=10, done=False
    )
    outcome = await rig.runner.release(obj(deletionTimestamp="2026-01-01T00:00:00Z"))
    assert not outcome.done
    assert rig.kube.patches == [{"conditions": []}]
    assert rig.events.posted == [("p", "DeletionBlocked")]


async def test_a_deleting_object_gets_no_pass_and_deleted_objects_are_forgotten() -> None:
    rig = make_rig(obj(deletionTimestamp="2026-01-01T00:00:00Z"))
    try:
        rig.serve()
        await rig.settled("u1")
        assert rig.kind.passes == []
        rig.runner.observe("DELETED", rig.kube.body)
        assert rig.kind.forgotten == ["p"]
        assert "u1" not in rig.runner.records
    finally:
        await rig.close()


async def test_no_pass_after_deletion_even_from_a_stale_body(rig: Rig) -> None:
    """kopf's view of an object can still show it alive (finalizer on, no deletion mark)
    after the watch said DELETED or the release ran: no pass may write for it again (the
    create/delete race once re-created rows this way, after they were collected)."""
    live = rig.serve()
    await rig.until(lambda: rig.kind.passes == ["p"], "the first pass")
    stale = copy.deepcopy(live)
    rig.runner.observe("DELETED", stale)
    live["metadata"]["generation"] = 2  # a stale body still "changing"
    rig.runner.poke(["u1"])
    await rig.until(lambda: all(t.done() for t in rig.tasks), "the daemon to end")
    assert rig.kind.passes == ["p"]

    other = make_rig(obj(uid="u2"))
    try:
        body = other.serve()
        await other.until(lambda: other.kind.passes == ["p"], "the first pass")
        await other.runner.release(copy.deepcopy(body))  # kopf's on.delete, done
        other.runner.observe(
            "MODIFIED", {**body, "metadata": {**body["metadata"], "generation": 3}}
        )
        await other.until(lambda: all(t.done() for t in other.tasks), "the daemon to end")
        assert other.kind.passes == ["p"]
        assert other.kind.finalized == ["p"]
    finally:
        await other.close()
