"""The gateway-key pipeline against an in-memory store and Secret API (fakes, pinned clock).

The fakes keep the store's contract (ownership records per identity, the journal, complete
only with the journaled secret, names refused naming their holder) so crash points can be
constructed exactly: a key journaled and no Secret, a Secret written and no row, a row and
no status, a rotation interrupted between its steps. And the tenant's moves of issue #13:
ids of other objects' keys in the Secret's annotations or the status, a value of the
tenant's choosing in the Secret.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import pytest

from aigateway_operator.api.identity import (
    AIGATEWAYCODERDKEY,
    FORCE_DELETE_ANNOTATION,
    FORCE_RETIRE_ANNOTATION,
    GATEWAY_KEY_ID_ANNOTATION,
    GATEWAY_KEY_OWNER_LABEL,
    GATEWAY_KEY_PREVIOUS_ID_ANNOTATION,
)
from aigateway_operator.config import Settings
from aigateway_operator.controllers.gatewaykey.finalize import finalize
from aigateway_operator.controllers.gatewaykey.reconcile import reconcile
from aigateway_operator.controllers.gatewaykey.restart import Restarts
from aigateway_operator.controllers.gatewaykey.secret import owner_label_value
from aigateway_operator.controllers.shared import ObjectIdentity, PassOutcome
from aigateway_operator.controllers.wiring import Wiring
from aigateway_operator.kube import SecretData
from aigateway_operator.store import (
    InsufficientPrivileges,
    NotSupportedByCoder,
    OwnerRef,
    StoreError,
    generate_gateway_secret,
)
from aigateway_operator.store.dbcrypt import plaintext_refused
from tests.support.fakes import Clock, FakeGatewayKeyStore, FakeSecrets, FakeWorkloads, Row

pytestmark = pytest.mark.unit

UID = "0b6a4a55-7d0e-4d3a-9d86-0d2c5f3b5e11"
#: This object's identity in the ownership records (the fixture's instance id: "default").
OWNER = OwnerRef(kind="AIGatewayCoderdKey", namespace="ns", name="gw", instance="default")
#: An object of another namespace, the tenant's target.
VICTIM = OwnerRef(kind="AIGatewayCoderdKey", namespace="other", name="victim", instance="default")


@dataclass
class World:
    """One object, its status as the API server would keep it, and the fakes."""

    clock: Clock
    store: FakeGatewayKeyStore
    kube: FakeSecrets
    rt: Wiring
    workloads: FakeWorkloads = field(default_factory=FakeWorkloads)
    restarts: Restarts | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)
    generation: int = 1
    annotations: dict[str, str] = field(default_factory=dict)

    written: list[tuple[str, str, str]] = field(default_factory=list)

    def obj(self) -> ObjectIdentity:
        return ObjectIdentity(
            AIGATEWAYCODERDKEY, "ns", "gw", UID, self.generation, annotations=self.annotations
        )

    def _apply(self, outcome: PassOutcome) -> PassOutcome:
        for key, value in outcome.status_patch.items():
            if value is None:
                self.status.pop(key, None)
            elif isinstance(value, dict) and isinstance(self.status.get(key), dict):
                merged = {**self.status[key], **value}
                self.status[key] = {k: v for k, v in merged.items() if v is not None}
            else:
                self.status[key] = value
        return outcome

    async def reconcile(self) -> PassOutcome:
        outcome, self.written = await reconcile(
            self.rt, self.kube, self.obj(), self.spec, self.status, self.restarts
        )
        return self._apply(outcome)

    async def finalize(self) -> PassOutcome:
        return self._apply(await finalize(self.rt, self.kube, self.obj(), self.spec, self.status))

    def condition(self, type_: str) -> dict[str, Any]:
        (found,) = [c for c in self.status["conditions"] if c["type"] == type_]
        return dict(found)

    def heartbeat(self, secret: str) -> None:
        digest = hashlib.sha256(secret.encode()).digest()
        for row in self.store.rows.values():
            if row.hashed == digest:
                row.heartbeat = self.clock.now


@pytest.fixture
def world() -> World:
    clock = Clock()
    store = FakeGatewayKeyStore(clock)
    kube = FakeSecrets()
    settings = Settings(database_url="postgresql://u:p@localhost/coder")  # type: ignore[call-arg]
    rt = Wiring(
        settings=settings, store=store, kube=kube, events=None, fingerprint_key=b"k", clock=clock
    )  # type: ignore[arg-type]
    workloads = FakeWorkloads()
    return World(clock, store, kube, rt, workloads, Restarts(workloads, timedelta(minutes=10)))


def reasons(outcome: PassOutcome) -> list[str]:
    return [e.reason for e in outcome.events]


def assert_consistent(w: World, name: str = "gw") -> Row:
    """The Secret's value hashes to the row under the plain name, the row is recorded as
    this object's current key, and status says so."""
    secret = w.kube.value()
    row = w.store.by_name(name)
    assert row.hashed == hashlib.sha256(secret.encode()).digest()
    assert w.store.roles(OWNER).get("current") == row.id
    assert "pending" not in w.store.roles(OWNER)
    assert w.status["keyID"] == str(row.id)
    assert w.status["keyPrefix"] == secret[:11] == row.prefix
    return row


def sha(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def tenant_writes_secret(
    w: World, value: str | None = None, annotations: dict[str, str] | None = None
) -> None:
    """What a namespace editor can do to the key's Secret: any value, any annotations."""
    sec = w.kube.secrets[("ns", "gw-key")]
    w.kube.version += 1
    w.kube.secrets[("ns", "gw-key")] = replace(
        sec,
        data={"key": value.encode()} if value is not None else sec.data,
        annotations={**sec.annotations, **(annotations or {})},
        resource_version=str(w.kube.version),
    )


def victim_row(w: World) -> Row:
    """Another namespace's key, recorded as its current key."""
    return w.store.add_foreign("victim", owner=VICTIM)


async def test_issue_writes_secret_then_row_and_reports(world: World) -> None:
    out = await world.reconcile()
    assert reasons(out) == ["Issued"]
    row = assert_consistent(world)
    secret = world.kube.value()
    assert secret.startswith("cgw_")
    assert len(secret) == 43
    sec = world.kube.secrets[("ns", "gw-key")]
    assert sec.owner_uids == (UID,)
    assert sec.labels[GATEWAY_KEY_OWNER_LABEL] == "gw"
    assert sec.annotations[GATEWAY_KEY_ID_ANNOTATION] == str(row.id)
    assert world.condition("Ready")["status"] == "True"
    assert world.condition("InUse")["reason"] == "NeverConnected"
    assert world.status["rotation"] == {"generation": 0}
    assert world.written == [("ns", "gw-key", sec.resource_version)]
    # A second pass changes nothing: no write, no event, no status patch.
    again = await world.reconcile()
    assert (again.status_patch, again.events, world.kube.writes) == ({}, [], 1)


async def test_secret_never_in_status_events_or_messages(world: World) -> None:
    out = await world.reconcile()
    secret = world.kube.value()
    blob = repr(world.status) + repr(out.events) + repr(out)
    assert secret not in blob
    assert secret[11:] not in blob


async def test_crash_after_secret_write_is_completed_by_replay(world: World) -> None:
    """Journaled, Secret written, no row: the next pass inserts exactly that key."""
    secret = generate_gateway_secret()
    key_id = uuid.uuid4()
    await world.store.begin_gateway_key(OWNER, key_id, "gw", secret, rotating=False)
    await world.kube.write_owned_secret(
        "ns", "gw-key", {"key": secret.encode()}, {"uid": UID}, {}, None,
        {GATEWAY_KEY_ID_ANNOTATION: str(key_id)},
    )  # fmt: skip
    assert world.store.rows == {}
    out = await world.reconcile()
    row = assert_consistent(world)
    assert row.id == key_id
    assert world.kube.value() == secret  # completed, not churned
    assert world.kube.writes == 1
    assert reasons(out) == ["Issued"]
    assert "interrupted" in out.events[0].message


async def test_crash_before_secret_write_discards_the_journal(world: World) -> None:
    """Journaled, never delivered: nobody has that plaintext, so it never becomes a row."""
    lost = generate_gateway_secret()
    await world.store.begin_gateway_key(OWNER, uuid.uuid4(), "gw", lost, rotating=False)
    out = await world.reconcile()
    assert reasons(out) == ["Issued"]
    assert_consistent(world)
    assert all(r.hashed != sha(lost) for r in world.store.rows.values())
    assert len(world.store.records) == 1


async def test_crash_before_secret_write_of_a_rotation_keeps_the_key_then_rotates(
    world: World,
) -> None:
    await world.reconcile()
    first = assert_consistent(world)
    await world.store.begin_gateway_key(
        OWNER, uuid.uuid4(), "gw", generate_gateway_secret(), rotating=True
    )
    world.spec = {"rotation": {"generation": 1}}
    out = await world.reconcile()
    assert reasons(out) == ["Rotated"]
    second = assert_consistent(world)
    assert world.store.roles(OWNER) == {"current": second.id, "previous": first.id}


async def test_crash_after_row_before_status_is_adopted(world: World) -> None:
    await world.reconcile()
    row = assert_consistent(world)
    world.status = {}  # the status patch was lost
    out = await world.reconcile()
    assert assert_consistent(world).id == row.id
    assert world.kube.writes == 1
    assert reasons(out) == []


async def test_secret_deleted_reissues_and_removes_old_row(world: World) -> None:
    await world.reconcile()
    old = assert_consistent(world)
    del world.kube.secrets[("ns", "gw-key")]
    out = await world.reconcile()
    assert reasons(out) == ["SecretLost"]
    assert out.events[0].type == "Warning"
    new = assert_consistent(world)
    assert new.id != old.id
    assert old.id not in world.store.rows
    assert old.prefix in out.events[0].message


async def test_tampered_value_reissues(world: World) -> None:
    await world.reconcile()
    old = assert_consistent(world)
    # Same prefix, different suffix: only the hash tells.
    world.kube.tamper(world.kube.value()[:11] + "A" * 32)
    out = await world.reconcile()
    assert reasons(out) == ["SecretTampered"]
    assert assert_consistent(world).id != old.id
    assert len(world.store.rows) == 1


async def test_garbage_in_secret_reissues(world: World) -> None:
    await world.reconcile()
    world.kube.tamper("not a key")
    out = await world.reconcile()
    assert reasons(out) == ["SecretTampered"]
    assert_consistent(world)


async def test_row_deleted_in_coder_reissues(world: World) -> None:
    await world.reconcile()
    world.store.rows.clear()
    out = await world.reconcile()
    assert reasons(out) == ["KeyRevoked"]
    assert_consistent(world)
    assert len(world.store.records) == 1  # the record of the deleted row went with it


async def test_foreign_secret_is_not_touched(world: World) -> None:
    world.kube.secrets[("ns", "gw-key")] = SecretData(
        "ns", "gw-key", "u1", "7", {"key": b"theirs"}, owner_uids=()
    )
    out = await world.reconcile()
    assert world.condition("SecretInSync")["reason"] == "SecretNotOwned"
    assert world.condition("Ready")["status"] == "False"
    assert world.kube.value() == "theirs"
    assert world.store.rows == {}
    assert reasons(out) == ["SecretNotOwned"]
    assert reasons(await world.reconcile()) == []  # said once


async def test_name_conflict_writes_nothing(world: World) -> None:
    foreign = world.store.add_foreign("gw")
    out = await world.reconcile()
    issued = world.condition("Issued")
    assert issued["reason"] == "NameConflict"
    assert "spec.keyName" in issued["message"]
    assert "made in Coder" in issued["message"]
    assert world.kube.secrets == {}
    assert list(world.store.rows) == [foreign.id]
    assert world.store.records == {}
    assert reasons(out) == ["NameConflict"]


async def test_name_conflict_names_the_holding_object(world: World) -> None:
    world.store.add_foreign("gw", owner=VICTIM)
    await world.reconcile()
    assert "AIGatewayCoderdKey other/victim" in world.condition("Issued")["message"]


async def test_rotation_keeps_the_old_key_while_it_is_used_past_the_grace_period(
    world: World,
) -> None:
    """Issue #22 item 6: a gateway nobody restarted keeps beating with the old key; the
    grace period is the earliest retirement, never the latest while the old key is used."""
    await world.reconcile()
    old_secret = world.kube.value()
    old = assert_consistent(world)
    world.spec = {"rotation": {"generation": 1}}
    world.generation = 2
    out = await world.reconcile()
    assert reasons(out) == ["Rotated"]
    new = assert_consistent(world)
    assert world.store.rows[old.id].name == "gw-retiring-1"
    rotation = world.status["rotation"]
    assert rotation["generation"] == 1
    assert rotation["previousKeyID"] == str(old.id)
    assert rotation["previousKeyPrefix"] == old_secret[:11]
    assert rotation["retireAfter"] == "2026-03-01T13:00:00Z"
    assert world.condition("Issued")["reason"] == "Rotating"
    assert out.next_due == world.clock.now + timedelta(seconds=60)  # the heartbeat mirror
    # Within the grace period nothing goes, whoever uses which key.
    world.clock.advance(seconds=30)
    world.heartbeat(old_secret)
    world.heartbeat(world.kube.value())
    assert reasons(await world.reconcile()) == []
    assert old.id in world.store.rows
    # Past it (an hour), the old key still beats every minute: it stays, and says why.
    for _ in range(70):
        world.clock.advance(seconds=60)
        world.heartbeat(old_secret)
        out = await world.reconcile()
        assert old.id in world.store.rows
    issued = world.condition("Issued")
    assert (issued["status"], issued["reason"]) == ("True", "RotationWaiting")
    assert "previous key last used 0s ago; the new key is in use" in issued["message"]
    assert f"aigateway.dev/force-retire={old_secret[:11]}" in issued["message"]
    assert world.condition("Ready")["status"] == "True"
    # The Warning was posted once, when the wait began.
    assert reasons(out) == []
    # The gateway is restarted: the old key falls silent, the new one beats.
    world.clock.advance(seconds=60)
    world.heartbeat(world.kube.value())
    out = await world.reconcile()
    assert old.id in world.store.rows  # 60 s without a beat: maybe only a late one
    assert out.next_due == world.clock.now + timedelta(seconds=31)  # when 90 s have passed
    world.clock.advance(seconds=31)
    out = await world.reconcile()
    assert reasons(out) == ["KeyRetired"]
    assert "a gateway uses the new key" in out.events[0].message
    assert list(world.store.rows) == [new.id]
    assert "previousKeyID" not in world.status["rotation"]
    assert world.condition("Issued")["reason"] == "Issued"
    assert world.condition("InUse")["status"] == "True"


async def test_rotation_waiting_is_announced_once_with_what_it_waits_for(world: World) -> None:
    world.spec = {"rotation": {"gracePeriod": "60s"}}
    await world.reconcile()
    old_secret = world.kube.value()
    world.heartbeat(old_secret)
    world.spec = {"rotation": {"gracePeriod": "60s", "generation": 1}}
    await world.reconcile()
    world.clock.advance(seconds=40)
    world.heartbeat(old_secret)
    world.clock.advance(seconds=20)
    out = await world.reconcile()
    (event,) = out.events
    assert (event.type, event.reason) == ("Warning", "RotationWaiting")
    assert "previous key last used 20s ago; waiting for the new key to be used" in event.message
    assert event.message == world.condition("Issued")["message"]
    assert old_secret[11:] not in event.message
    world.clock.advance(seconds=5)
    assert (await world.reconcile()).events == []


async def test_force_retire_needs_the_previous_keys_prefix(world: World) -> None:
    await world.reconcile()
    old_secret = world.kube.value()
    old = assert_consistent(world)
    world.spec = {"rotation": {"generation": 1}}
    await world.reconcile()
    world.heartbeat(old_secret)
    # A value that is not the previous key's prefix (a stale annotation, "true") does nothing.
    for value in ("true", "cgw_0000000", world.kube.value()[:11]):
        world.annotations = {FORCE_RETIRE_ANNOTATION: value}
        assert reasons(await world.reconcile()) == []
        assert old.id in world.store.rows
    world.annotations = {FORCE_RETIRE_ANNOTATION: old_secret[:11]}
    out = await world.reconcile()
    assert reasons(out) == ["KeyRetired"]
    assert "forced by the annotation aigateway.dev/force-retire" in out.events[0].message
    assert old.id not in world.store.rows
    assert_consistent(world)


async def test_opted_in_workloads_are_restarted_onto_each_new_key(world: World) -> None:
    w = world.workloads
    w.add("Deployment", "ns", "gateway", opt_in="gw")
    w.add("StatefulSet", "ns", "gateway-sts", opt_in="gw")
    w.add("Deployment", "ns", "bystander", opt_in=None)
    w.add("Deployment", "ns", "other-key", opt_in="another-key")
    w.add("Deployment", "other", "elsewhere", opt_in="gw")
    out = await world.reconcile()
    first = assert_consistent(world)
    assert reasons(out) == ["Issued", "WorkloadRestarted", "WorkloadRestarted"]
    assert w.stamp("Deployment", "ns", "gateway") == str(first.id)
    assert w.stamp("StatefulSet", "ns", "gateway-sts") == str(first.id)
    for key in (("Deployment", "ns", "bystander"), ("Deployment", "ns", "other-key"),
                ("Deployment", "other", "elsewhere")):  # fmt: skip
        assert w.stamp(*key) is None
        assert w.rollouts[key] == 0
    # Stamped once: later passes leave the template alone.
    world.clock.advance(seconds=60)
    assert reasons(await world.reconcile()) == []
    assert w.rollouts[("Deployment", "ns", "gateway")] == 1
    # A rotation restarts them onto the new key, in the pass that wrote the Secret.
    world.spec = {"rotation": {"generation": 1}}
    out = await world.reconcile()
    second = assert_consistent(world)
    assert reasons(out) == ["Rotated", "WorkloadRestarted", "WorkloadRestarted"]
    assert w.stamp("Deployment", "ns", "gateway") == str(second.id)
    assert w.rollouts[("Deployment", "ns", "gateway")] == 2
    assert world.kube.value()[11:] not in repr(out.events)


async def test_workloads_are_scanned_when_the_key_changes_and_at_the_resync_interval(
    world: World,
) -> None:
    """Not on every heartbeat-mirror pass: a namespace listing per object per minute adds
    up. A workload that opts in later is found at the next rescan."""
    w = world.workloads
    w.add("Deployment", "ns", "gateway", opt_in="gw")
    await world.reconcile()
    assert w.lists == 1
    for _ in range(9):
        world.clock.advance(minutes=1)
        await world.reconcile()
    assert w.lists == 1
    w.add("Deployment", "ns", "late", opt_in="gw")
    world.clock.advance(minutes=1)  # ten minutes since the scan
    out = await world.reconcile()
    assert w.lists == 2
    assert reasons(out) == ["WorkloadRestarted"]
    assert w.stamp("Deployment", "ns", "late") == world.status["keyID"]
    # A new key is scanned for at once.
    world.spec = {"rotation": {"generation": 1}}
    await world.reconcile()
    assert w.lists == 3
    assert w.stamp("Deployment", "ns", "gateway") == world.status["keyID"]


async def test_a_refused_restart_is_a_warning_and_the_key_is_still_delivered(
    world: World,
) -> None:
    world.workloads.add("Deployment", "ns", "gateway", opt_in="gw")
    world.workloads.denied = True
    out = await world.reconcile()
    assert_consistent(world)
    assert reasons(out) == ["Issued", "WorkloadRestartFailed"]
    assert "get, list and patch on deployments and statefulsets" in out.events[1].message
    assert world.condition("Ready")["status"] == "True"
    world.workloads.denied = False
    assert reasons(await world.reconcile()) == ["WorkloadRestarted"]


async def test_rotation_retires_after_grace_period(world: World) -> None:
    world.spec = {"rotation": {"gracePeriod": "90s"}}
    await world.reconcile()
    world.spec = {"rotation": {"gracePeriod": "90s", "generation": 5}}
    await world.reconcile()
    assert len(world.store.rows) == 2
    world.clock.advance(seconds=89)
    await world.reconcile()
    assert len(world.store.rows) == 2
    world.clock.advance(seconds=1)
    out = await world.reconcile()
    assert "gracePeriod" in out.events[0].message
    assert_consistent(world)
    assert len(world.store.rows) == 1


async def test_scheduled_rotation(world: World) -> None:
    world.spec = {"rotation": {"every": "720h", "gracePeriod": "1h"}}
    await world.reconcile()
    first = assert_consistent(world)
    world.clock.advance(hours=719)
    await world.reconcile()
    assert assert_consistent(world).id == first.id
    world.clock.advance(hours=1)
    out = await world.reconcile()
    assert "spec.rotation.every elapsed" in out.events[0].message
    assert assert_consistent(world).id != first.id
    assert world.status["rotation"]["generation"] == 0


async def test_rotation_interrupted_after_secret_write_finishes(world: World) -> None:
    """The crash point between 'Secret updated' and 'old row renamed / new row inserted'."""
    await world.reconcile()
    old = assert_consistent(world)
    sec = world.kube.secrets[("ns", "gw-key")]
    new_secret = generate_gateway_secret()
    new_id = uuid.uuid4()
    await world.store.begin_gateway_key(OWNER, new_id, "gw", new_secret, rotating=True)
    await world.kube.write_owned_secret(
        "ns", "gw-key", {"key": new_secret.encode()}, {"uid": UID}, {}, sec.resource_version,
        {GATEWAY_KEY_ID_ANNOTATION: str(new_id), "aigateway.dev/rotation-generation": "1"},
    )  # fmt: skip
    world.spec = {"rotation": {"generation": 1}}
    out = await world.reconcile()
    assert reasons(out) == ["Rotated"]  # completed once, not rotated again
    row = assert_consistent(world)
    assert row.id == new_id
    assert world.store.rows[old.id].name == "gw-retiring-1"
    assert world.status["rotation"]["previousKeyID"] == str(old.id)
    assert world.status["rotation"]["generation"] == 1
    assert len(world.store.rows) == 2


async def test_crash_after_rotation_before_status_does_not_rotate_again(world: World) -> None:
    await world.reconcile()
    world.spec = {"rotation": {"generation": 1}}
    await world.reconcile()
    second = assert_consistent(world)
    world.status["rotation"] = {"generation": 0}  # the status patch was lost
    out = await world.reconcile()
    assert reasons(out) == []
    assert assert_consistent(world).id == second.id
    assert world.status["rotation"]["generation"] == 1


@pytest.mark.parametrize("where", ["status", "secret"])
async def test_a_forged_rotation_generation_does_not_cancel_a_rotation(
    world: World, where: str
) -> None:
    """#23: a status writer (or whoever may edit the Secret's annotations) claims the bumped
    generation was already issued; the operator's record says otherwise, and the rotation
    someone asked for happens."""
    await world.reconcile()
    first = assert_consistent(world)
    sec = world.kube.secrets[("ns", "gw-key")]
    hints = dict(sec.annotations)
    if where == "status":
        world.status["rotation"] = {"generation": 1}
        hints.pop("aigateway.dev/rotation-generation")  # no hint on the Secret to outweigh it
    else:
        hints["aigateway.dev/rotation-generation"] = "1"
    world.kube.secrets[("ns", "gw-key")] = replace(sec, annotations=hints)
    world.spec = {"rotation": {"generation": 1}}
    world.generation = 2
    out = await world.reconcile()
    assert reasons(out) == ["Rotated"]
    assert assert_consistent(world).id != first.id
    # And a forged generation never starts one nobody asked for.
    second = assert_consistent(world)
    world.status["rotation"] = {"generation": 7}
    assert reasons(await world.reconcile()) == []
    assert assert_consistent(world).id == second.id


async def test_the_key_name_is_the_records_not_the_status(world: World) -> None:
    """#23: a forged status.keyName neither stalls the pass nor lets a renamed spec pass."""
    await world.reconcile()
    first = assert_consistent(world)
    world.status["keyName"] = "forged"
    out = await world.reconcile()
    assert world.condition("Issued")["reason"] == "Issued"
    assert reasons(out) == []
    assert assert_consistent(world).id == first.id
    # A spec renaming the key (stored before the CRD's rule): refused, naming the row's name.
    world.status["keyName"] = "renamed"
    world.spec = {"keyName": "renamed"}
    world.generation = 2
    await world.reconcile()
    issued = world.condition("Issued")
    assert (issued["reason"], issued["status"]) == ("InvalidSpec", "False")
    assert "named 'gw' in Coder" in issued["message"]


async def test_second_rotation_during_grace_drops_key_before_last(world: World) -> None:
    await world.reconcile()
    first = assert_consistent(world)
    world.spec = {"rotation": {"generation": 1}}
    await world.reconcile()
    second = assert_consistent(world)
    world.spec = {"rotation": {"generation": 2}}
    out = await world.reconcile()
    assert reasons(out) == ["KeyRetired", "Rotated"]
    third = assert_consistent(world)
    assert set(world.store.rows) == {second.id, third.id}
    assert first.id not in world.store.rows
    assert world.store.rows[second.id].name == "gw-retiring-1"


async def test_heartbeat_window_drives_in_use(world: World) -> None:
    await world.reconcile()
    world.heartbeat(world.kube.value())
    await world.reconcile()
    assert world.condition("InUse")["reason"] == "HeartbeatRecent"
    assert world.status["lastHeartbeatAt"] == "2026-03-01T12:00:00Z"
    world.clock.advance(minutes=3)
    assert (await world.reconcile()).status_patch == {}  # still within 3 minutes
    world.clock.advance(seconds=1)
    out = await world.reconcile()
    assert world.condition("InUse")["reason"] == "HeartbeatStale"
    assert world.condition("Ready")["status"] == "True"  # unused keys are still ready
    assert set(out.status_patch) == {"conditions"}


async def test_database_outage_is_retried_and_converges(world: World) -> None:
    world.store.down = True
    out = await world.reconcile()
    assert out.retry_after == 10.0
    assert world.condition("Issued")["reason"] == "DatabaseUnavailable"
    world.store.down = False
    await world.reconcile()
    assert_consistent(world)


#: Store refusals a person must act on, each as the real store words it: the reason on the
#: object, what its message names, whether a Warning Event says it too, the retry delay.
#: PlaintextRefused: the gateway-key calls write hashes only, so the real store does not
#: refuse them today; the pass must still say it like the AIProvider pass (one shared rule).
REFUSALS = [
    pytest.param(
        plaintext_refused(("abc1234",), "refusing to write"),
        "PlaintextRefused",
        "coderd encrypts with active dbcrypt key(s) abc1234",
        True,
        60.0,
        id="PlaintextRefused",
    ),
    pytest.param(
        InsufficientPrivileges(["INSERT on table public.ai_gateway_keys"]),
        "InsufficientPrivileges",
        "INSERT on table public.ai_gateway_keys",
        True,
        300.0,
        id="InsufficientPrivileges",
    ),
    pytest.param(
        NotSupportedByCoder("AI Gateway keys need Coder v2.35 or later; this database is v2.34"),
        "NotSupportedByCoder",
        "AI Gateway keys need Coder v2.35 or later",
        False,  # the same for every object: the condition says it, no Event per object
        300.0,
        id="NotSupportedByCoder",
    ),
]


@pytest.mark.parametrize("issued_before", [False, True], ids=["new", "issued"])
@pytest.mark.parametrize(("error", "reason", "says", "warns", "retry"), REFUSALS)
async def test_a_store_refusal_is_on_the_object_stalled_and_writes_nothing(
    world: World,
    error: StoreError,
    reason: str,
    says: str,
    warns: bool,
    retry: float,
    issued_before: bool,
) -> None:
    """The object says why (Issued and Ready False with the reason, a Warning Event with
    the same reason), kstatus calls it Stalled, nothing is written in Coder or the Secret,
    and no message carries the key."""
    secret = ""
    if issued_before:
        await world.reconcile()
        secret = world.kube.value()
    rows, records = dict(world.store.rows), dict(world.store.records)
    secrets, writes = dict(world.kube.secrets), world.kube.writes
    world.store.fail_with = error
    world.spec = {"rotation": {"generation": 1}}  # a rotation is due: still nothing moves
    world.generation += 1
    out = await world.reconcile()
    assert (world.store.rows, world.store.records) == (rows, records)
    assert (world.kube.secrets, world.kube.writes) == (secrets, writes)
    for type_ in ("Issued", "Ready"):
        c = world.condition(type_)
        assert (c["status"], c["reason"]) == ("False", reason), type_
    message = world.condition("Issued")["message"]
    assert says in message
    stalled = world.condition("Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", reason)
    assert world.condition("Reconciling")["status"] == "False"
    events = [(e.type, e.reason, e.message) for e in out.events]
    assert events == ([("Warning", reason, message)] if warns else [])
    assert out.retry_after == retry
    if secret:
        blob = repr(world.status) + out.retry_message + repr(out.events)
        assert secret not in blob
        assert secret[11:] not in blob
    world.store.fail_with = None
    await world.reconcile()
    assert_consistent(world)
    assert world.condition("Stalled")["status"] == "False"


async def test_secret_write_failure_is_reported(world: World) -> None:
    world.kube.fail_writes = True
    out = await world.reconcile()
    assert out.retry_after is not None
    assert world.condition("SecretInSync")["reason"] == "SecretWriteFailed"
    assert world.store.rows == {}  # no row before its Secret


async def test_secret_name_change_moves_the_key(world: World) -> None:
    await world.reconcile()
    old = assert_consistent(world)
    world.spec = {"secretName": "elsewhere"}
    out = await world.reconcile()
    assert ("ns", "gw-key") not in world.kube.secrets
    assert "SecretMoved" in reasons(out)
    new = world.store.by_name("gw")
    assert new.id != old.id
    assert new.hashed == hashlib.sha256(world.kube.value("elsewhere").encode()).digest()


async def test_invalid_spec_is_a_condition(world: World) -> None:
    world.spec = {"rotation": {"every": "soon"}}
    await world.reconcile()
    issued = world.condition("Issued")
    assert issued["reason"] == "InvalidSpec"
    assert "spec.rotation.every" in issued["message"]
    assert world.store.rows == {}


async def test_deletion_blocked_while_in_use_then_forced(world: World) -> None:
    await world.reconcile()
    world.heartbeat(world.kube.value())
    out = await world.finalize()
    assert not out.done
    assert out.retry_after == 10.0
    assert world.condition("Ready")["reason"] == "DeletionBlocked"
    assert reasons(out) == ["DeletionBlocked"]
    assert len(world.store.rows) == 1
    world.annotations = {FORCE_DELETE_ANNOTATION: "true"}
    out = await world.finalize()
    assert out.done
    assert world.store.rows == {}
    assert "forced" in out.events[0].message


async def test_deletion_of_idle_key_and_of_rotating_keys(world: World) -> None:
    await world.reconcile()
    world.spec = {"rotation": {"generation": 1}}
    await world.reconcile()
    assert len(world.store.rows) == 2
    world.clock.advance(minutes=4)
    out = await world.finalize()
    assert out.done
    assert world.store.rows == {}


async def test_orphan_keeps_row_and_secret(world: World) -> None:
    world.spec = {"deletionPolicy": "Orphan"}
    await world.reconcile()
    out = await world.finalize()
    assert out.done
    assert len(world.store.rows) == 1
    assert world.store.records == {}  # forgotten: the row is nobody's now
    assert world.kube.secrets[("ns", "gw-key")].owner_uids == ()
    assert reasons(out) == ["Orphaned"]


async def test_deletion_policy_is_recorded_with_the_rows(world: World) -> None:
    world.spec = {"deletionPolicy": "Orphan"}
    await world.reconcile()
    assert {r.policy for r in world.store.records.values()} == {"Orphan"}
    world.spec = {}
    await world.reconcile()
    assert {r.policy for r in world.store.records.values()} == {"Delete"}


def test_owner_label_value_fits_a_label() -> None:
    assert owner_label_value("gw") == "gw"
    long = owner_label_value("a" * 200)
    assert len(long) <= 63
    assert long != owner_label_value("a" * 199)


# --- issue #13: what a namespace editor can write is never authority ---------------------------


async def test_other_objects_key_id_in_annotations_or_status_changes_nothing(
    world: World,
) -> None:
    """Finding 1: the victim's id in our Secret's annotations and in our status."""
    victim = victim_row(world)
    before = (victim.name, victim.hashed)
    await world.reconcile()
    ours = assert_consistent(world)
    forged = {
        GATEWAY_KEY_ID_ANNOTATION: str(victim.id),
        GATEWAY_KEY_PREVIOUS_ID_ANNOTATION: str(victim.id),
    }
    tenant_writes_secret(world, annotations=forged)
    world.status["keyID"] = str(victim.id)
    world.status["rotation"] = {"generation": 0, "previousKeyID": str(victim.id)}
    await world.reconcile()
    assert assert_consistent(world).id == ours.id
    # ... with a tampered value too (a re-issue), a rotation, and the object's deletion.
    tenant_writes_secret(world, value="x", annotations=forged)
    await world.reconcile()
    world.spec = {"rotation": {"generation": 1}}
    await world.reconcile()
    tenant_writes_secret(world, annotations=forged)
    world.status["rotation"]["previousKeyID"] = str(victim.id)
    world.annotations = {FORCE_DELETE_ANNOTATION: "true"}
    assert (await world.finalize()).done
    assert list(world.store.rows) == [victim.id]
    assert (victim.name, victim.hashed) == before
    assert world.store.roles(VICTIM) == {"current": victim.id}


async def test_tenant_chosen_value_and_key_id_never_become_a_row(world: World) -> None:
    """Finding 2: a `cgw_` value and a fresh key id of the tenant's choosing."""
    await world.reconcile()
    chosen, chosen_id = "cgw_" + "T" * 39, uuid.uuid4()
    tenant_writes_secret(world, chosen, {GATEWAY_KEY_ID_ANNOTATION: str(chosen_id)})
    out = await world.reconcile()
    assert reasons(out) == ["SecretTampered"]
    assert_consistent(world)
    assert world.kube.value() != chosen
    assert all(r.hashed != sha(chosen) for r in world.store.rows.values())
    assert chosen_id not in world.store.rows
    assert chosen_id not in world.store.records


async def test_tenant_secret_before_the_first_issue_is_replaced(world: World) -> None:
    chosen, chosen_id = "cgw_" + "T" * 39, uuid.uuid4()
    await world.kube.write_owned_secret(
        "ns", "gw-key", {"key": chosen.encode()}, {"uid": UID}, {}, None,
        {GATEWAY_KEY_ID_ANNOTATION: str(chosen_id)},
    )  # fmt: skip
    out = await world.reconcile()
    assert reasons(out) == ["SecretTampered"]
    assert_consistent(world)
    assert all(r.hashed != sha(chosen) for r in world.store.rows.values())
    assert chosen_id not in world.store.rows


async def test_precreated_secret_cannot_take_a_victims_name(world: World) -> None:
    """Finding 1: a Secret owned by (an ownerReference to) a conflicting object, naming the
    victim's key as the key it replaces."""
    victim = victim_row(world)
    world.spec = {"keyName": "victim"}
    chosen = "cgw_" + "T" * 39
    await world.kube.write_owned_secret(
        "ns", "gw-key", {"key": chosen.encode()}, {"uid": UID}, {}, None,
        {GATEWAY_KEY_ID_ANNOTATION: str(uuid.uuid4()),
         GATEWAY_KEY_PREVIOUS_ID_ANNOTATION: str(victim.id)},
    )  # fmt: skip
    out = await world.reconcile()
    assert world.condition("Issued")["reason"] == "NameConflict"
    assert "AIGatewayCoderdKey other/victim" in world.condition("Issued")["message"]
    assert reasons(out) == ["NameConflict"]
    assert list(world.store.rows) == [victim.id]
    assert victim.name == "victim"
    assert world.store.roles(OWNER) == {}
    assert world.kube.value() == chosen  # nothing was delivered either
