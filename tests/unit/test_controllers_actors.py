"""The Kubernetes actor of Coder's audit rows, against fakes: what the webhook records (and
when it records nothing), and which actor each write of both kinds' passes carries.

The real table and audit rows: tests/integration/test_store_actors.py; the whole path on the
real API server: tests/e2e/test_admission.py.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import kopf
import pytest

from aigateway_operator.api.identity import AIGATEWAYCODERDKEY, AIPROVIDER
from aigateway_operator.config import Settings
from aigateway_operator.controllers import actors
from aigateway_operator.controllers.admission import Review, Verdict
from aigateway_operator.controllers.aiprovider.finalize import finalize as finalize_provider
from aigateway_operator.controllers.aiprovider.reconcile import reconcile as reconcile_provider
from aigateway_operator.controllers.gatewaykey.finalize import finalize as finalize_key
from aigateway_operator.controllers.gatewaykey.reconcile import reconcile as reconcile_key
from aigateway_operator.controllers.shared import ObjectIdentity, PassOutcome
from aigateway_operator.controllers.wiring import Wiring
from aigateway_operator.operator import admission as operator_admission
from aigateway_operator.operator.app import OperatorApp
from aigateway_operator.store import Actor, OwnerRef, StoreUnavailable
from aigateway_operator.store.audit import USER_AGENT, user_agent
from tests.support.fakes import Clock, FakeGatewayKeyStore, FakeProviderStore, FakeSecrets

pytestmark = pytest.mark.unit

UID = "6f1c1c1e-3d3a-4c59-9d0a-1f2e3d4c5b6a"
KEY_A = "sk-test-AAAAAAAAAAAAAAAAAAAA-0001"
KEY_B = "sk-test-BBBBBBBBBBBBBBBBBBBB-0002"
ALICE = "system:serviceaccount:team-a:deployer"
GROUPS = ("system:serviceaccounts", "system:serviceaccounts:team-a", "system:authenticated")


def settings(**kw: Any) -> Settings:
    return Settings(database_url="postgresql://u:p@localhost/coder", **kw)  # type: ignore[call-arg]


def wiring(store: Any, kube: FakeSecrets, clock: Clock, **kw: Any) -> Wiring:
    return Wiring(
        settings=settings(**{"admission": True, **kw}),
        store=store,
        kube=kube,  # type: ignore[arg-type]
        events=None,
        fingerprint_key=b"k",
        clock=clock,
    )


def merge(status: dict[str, Any], outcome: PassOutcome) -> None:
    for key, value in outcome.status_patch.items():
        if value is None:
            status.pop(key, None)
        elif isinstance(value, dict) and isinstance(status.get(key), dict):
            merged = {**status[key], **value}
            status[key] = {k: v for k, v in merged.items() if v is not None}
        else:
            status[key] = value


# --- the actor's shape ------------------------------------------------------------------------


def test_actor_fields_and_user_agent() -> None:
    owner = OwnerRef(kind="AIProvider", namespace="ns", name="n", uid="u", generation=2)
    admitted = replace(owner, actor=Actor.admitted(ALICE, GROUPS)).audit_fields()
    assert admitted == {
        "instance": "default",
        "kind": "AIProvider",
        "namespace": "ns",
        "name": "n",
        "uid": "u",
        "generation": 2,
        "actor": ALICE,
        "actor_source": "admission",
        "actor_groups": list(GROUPS),
    }
    assert user_agent(ALICE) == f"{USER_AGENT} (kubernetes: {ALICE})"
    assert USER_AGENT.startswith("aigateway-operator/")
    unknown = replace(owner, actor=Actor.unknown("why")).audit_fields()
    assert (unknown["actor"], unknown["actor_source"], unknown["actor_reason"]) == (
        "unknown",
        "unknown",
        "why",
    )
    assert actors.DRIFT_REVERT.name == "aigateway-operator (drift revert)"
    assert actors.GARBAGE_COLLECTION.name == "aigateway-operator (garbage collection)"


def test_user_agent_fits_the_column_and_long_names_are_cut() -> None:
    long = "oidc:" + "x" * 600
    assert len(user_agent(long)) == 256
    assert user_agent(long).endswith("...)")
    actor = Actor.admitted(long, tuple(f"g{i}" for i in range(50)))
    assert len(actor.name) == 256
    assert len(actor.groups) == 20


def test_spec_digest_ignores_key_order_and_sees_every_change() -> None:
    a = {"type": "openai", "apiKeys": [{"secretKeyRef": {"name": "s", "key": "a"}}]}
    b = {"apiKeys": [{"secretKeyRef": {"key": "a", "name": "s"}}], "type": "openai"}
    assert actors.spec_digest(a) == actors.spec_digest(b)
    assert actors.spec_digest(a) != actors.spec_digest({**a, "displayName": "x"})
    assert actors.spec_digest(None) == actors.spec_digest("not a mapping")


# --- the webhook records the requester ---------------------------------------------------------


def test_review_takes_the_username_groups_and_new_generation_only() -> None:
    body = {"metadata": {"name": "p", "namespace": "ns", "uid": UID, "generation": 3}}
    userinfo = {
        "username": ALICE,
        "uid": "x",
        "groups": list(GROUPS),
        "extra": {"authentication.kubernetes.io/credential-id": ["JTI=secret-ish"]},
    }
    review = Review.of("UPDATE", body, {"spec": {}}, dry_run=False, userinfo=userinfo)
    assert (review.uid, review.generation, review.username, review.groups) == (
        UID,
        3,
        ALICE,
        GROUPS,
    )
    assert "JTI" not in repr(review)


def _app(store: Any, **kw: Any) -> OperatorApp:
    app = OperatorApp.__new__(OperatorApp)
    app.settings = settings(admission=True, **kw)
    app._wiring = wiring(store, FakeSecrets(), Clock(), **kw)
    app.started = True
    return app


def _review(*, dry_run: bool = False, operation: str = "CREATE", **kw: Any) -> Review:
    return Review(
        operation=operation,
        namespace="ns",
        name="openai",
        uid=UID,
        spec={"type": "openai"},
        dry_run=dry_run,
        generation=1,
        username=ALICE,
        groups=GROUPS,
        **kw,
    )


async def _answer(app: OperatorApp, review: Review, verdict: Verdict) -> list[str]:
    warnings: list[str] = []

    async def check() -> Verdict:
        return verdict

    await operator_admission._answer(app, AIPROVIDER, review, check, warnings)
    return warnings


async def test_an_allowed_real_request_records_its_requester() -> None:
    store = FakeProviderStore(Clock())
    await _answer(_app(store), _review(), Verdict())
    digest = actors.spec_digest({"type": "openai"})
    assert store.admitted == {(UID, 1, digest): Actor.admitted(ALICE, GROUPS)}


async def test_dry_runs_denials_and_unchecked_updates_record_nothing() -> None:
    store = FakeProviderStore(Clock())
    app = _app(store)
    await _answer(app, _review(dry_run=True), Verdict())
    with pytest.raises(kopf.AdmissionError):
        await _answer(app, _review(), Verdict().deny("no"))
    # A metadata-only update (kopf's finalizer): the spec did not change.
    unchanged = _review(operation="UPDATE", old_spec={"type": "openai"})
    await _answer(app, unchanged, Verdict())
    # Another install's namespace: not ours to judge, nor to record.
    await _answer(_app(store, namespaces="elsewhere"), _review(), Verdict())
    assert store.admitted == {}


async def test_a_failed_recording_admits_with_a_warning() -> None:
    store = FakeProviderStore(Clock(), down=True)
    warnings = await _answer(_app(store), _review(), Verdict())
    assert warnings == [
        "the operator could not record who made this change; Coder's audit log will name "
        "the actor 'unknown'"
    ]


# --- the AIProvider pass -----------------------------------------------------------------------


class ProviderWorld:
    def __init__(self, **kw: Any) -> None:
        self.clock = Clock()
        self.store = FakeProviderStore(self.clock)
        self.kube = FakeSecrets()
        self.kube.put("ns", "llm", {"a": KEY_A, "b": KEY_B})
        self.wiring = wiring(self.store, self.kube, self.clock, **kw)
        self.spec: dict[str, Any] = {
            "type": "openai",
            "apiKeys": [{"secretKeyRef": {"name": "llm", "key": "a"}}],
        }
        self.status: dict[str, Any] = {}
        self.generation = 1

    def ident(self) -> ObjectIdentity:
        return ObjectIdentity(AIPROVIDER, "ns", "openai", UID, self.generation)

    def admit(self, username: str, spec: dict[str, Any] | None = None) -> None:
        digest = actors.spec_digest(self.spec if spec is None else spec)
        self.store.admitted[(UID, self.generation, digest)] = Actor.admitted(username)

    async def reconcile(self) -> PassOutcome:
        self.kube.objects.setdefault(
            (AIPROVIDER.plural, "ns", "openai"), {"metadata": {"uid": UID}}
        )
        out = await reconcile_provider(self.wiring, self.ident(), self.spec, self.status)
        merge(self.status, out)
        return out


async def test_provider_writes_carry_the_requester_of_their_generation() -> None:
    w = ProviderWorld()
    w.admit(ALICE)
    await w.reconcile()
    assert w.store.audited == [("created", Actor.admitted(ALICE))]
    # A spec update by someone else: generation 2, their name.
    w.spec["displayName"] = "OpenAI"
    w.generation = 2
    w.admit("bob@example.com")
    await w.reconcile()
    assert w.store.actors() == [ALICE, "bob@example.com"]


async def test_without_a_record_the_actor_is_unknown_and_says_why() -> None:
    w = ProviderWorld()
    await w.reconcile()
    (_, actor), *_ = w.store.audited
    assert actor == Actor.unknown("no admission record for generation 1")
    # A record of another spec for this generation (admitted, never stored): not trusted.
    w.spec["displayName"] = "OpenAI"
    w.generation = 2
    w.admit("mallory", spec={**w.spec, "displayName": "something else"})
    await w.reconcile()
    actor = w.store.audited[-1][1]
    assert actor is not None
    assert actor.name == "unknown"
    assert "of another spec" in actor.reason


async def test_with_admission_off_nothing_is_looked_up() -> None:
    w = ProviderWorld(admission=False)
    await w.reconcile()
    assert w.store.audited == [("created", actors.ADMISSION_OFF)]
    assert w.store.lookups == 0


async def test_drift_revert_and_secret_changes_are_not_the_requesters() -> None:
    w = ProviderWorld()
    w.admit(ALICE)
    await w.reconcile()
    lookups = w.store.lookups
    # An edit in Coder, reverted: the operator's doing, at the same generation.
    row = w.store.by_name("openai")
    row.desired = replace(row.desired, base_url="https://elsewhere.example.com/v1")
    await w.reconcile()
    assert w.store.audited[-1] == ("updated", actors.DRIFT_REVERT)
    # The referenced Secret changed: nobody the webhook saw.
    w.kube.put("ns", "llm", {"a": KEY_B})
    await w.reconcile()
    assert w.store.audited[-1] == ("updated", actors.SECRET_CHANGED)
    # Passes over an applied generation never read the admission records.
    assert w.store.lookups == lookups
    # In sync: nothing written, nothing audited.
    count = len(w.store.audited)
    await w.reconcile()
    assert len(w.store.audited) == count


def forge_applied(status: dict[str, Any], generation: int) -> None:
    """What a status writer does: every condition claims ``generation`` was observed."""
    status["observedGeneration"] = generation
    for c in status.get("conditions", []):
        c["observedGeneration"] = generation


async def test_a_forged_status_never_makes_a_spec_change_the_operators() -> None:
    """#23: observedGeneration set ahead by a status writer, then a spec change: the write is
    the requester's (from the admission record), never ``drift revert``."""
    w = ProviderWorld()
    w.admit(ALICE)
    await w.reconcile()
    forge_applied(w.status, 2)
    w.spec["baseURL"] = "https://llm.example.com/v1"
    w.generation = 2
    w.admit("bob@example.com")
    out = await w.reconcile()
    assert w.store.audited[-1] == ("updated", Actor.admitted("bob@example.com"))
    assert "DriftReverted" not in [e.reason for e in out.events]
    assert not out.drift_reverted
    # Without an admission record for it: unknown, with the reason, still not the operator.
    forge_applied(w.status, 3)
    w.spec["displayName"] = "Forged"
    w.generation = 3
    await w.reconcile()
    assert w.store.audited[-1] == (
        "updated",
        Actor.unknown("no admission record for generation 3"),
    )


async def test_a_failed_pass_is_retried_as_the_requesters() -> None:
    w = ProviderWorld()
    w.admit(ALICE)
    w.store.down = True
    await w.reconcile()
    w.store.down = False
    await w.reconcile()
    assert w.store.audited == [("created", Actor.admitted(ALICE))]


async def test_provider_deletion_is_unknown() -> None:
    w = ProviderWorld()
    await w.reconcile()
    await finalize_provider(w.wiring, w.ident(), w.spec, w.status)
    assert w.store.audited[-1] == ("deleted", actors.DELETED)


# --- the AIGatewayCoderdKey pass ---------------------------------------------------------------


class KeyWorld:
    def __init__(self) -> None:
        self.clock = Clock()
        self.store = FakeGatewayKeyStore(self.clock)
        self.kube = FakeSecrets()
        self.wiring = wiring(self.store, self.kube, self.clock)
        self.spec: dict[str, Any] = {}
        self.status: dict[str, Any] = {}
        self.generation = 1

    def ident(self) -> ObjectIdentity:
        return ObjectIdentity(AIGATEWAYCODERDKEY, "ns", "gw", UID, self.generation)

    def admit(self, username: str) -> None:
        digest = actors.spec_digest(self.spec)
        self.store.admitted[(UID, self.generation, digest)] = Actor.admitted(username)

    async def reconcile(self) -> PassOutcome:
        out, _ = await reconcile_key(self.wiring, self.kube, self.ident(), self.spec, self.status)
        merge(self.status, out)
        return out

    def heartbeat(self) -> None:
        digest = hashlib.sha256(self.kube.value().encode()).digest()
        for row in self.store.rows.values():
            if row.hashed == digest:
                row.heartbeat = self.clock.now


async def test_gateway_key_writes_name_the_requester_or_the_operator() -> None:
    w = KeyWorld()
    w.admit(ALICE)
    await w.reconcile()
    assert w.store.audited == [("key created", Actor.admitted(ALICE))]
    # A rotation by spec.rotation.generation: whoever bumped it.
    w.spec = {"rotation": {"generation": 1}}
    w.generation = 2
    w.admit("bob")
    await w.reconcile()
    assert w.store.audited[-1] == ("key created", Actor.admitted("bob"))
    # The previous key retired after the grace period, a gateway using the new one: the
    # operator.
    w.clock.advance(hours=1)
    w.heartbeat()
    await w.reconcile()
    assert w.store.audited[-1] == ("key retired", Actor.operator("previous key retired"))
    # The Secret deleted: the operator issues a fresh key.
    w.kube.secrets.pop(("ns", "gw-key"))
    await w.reconcile()
    assert w.store.audited[-1] == ("key created", Actor.operator("key reissued: SecretLost"))
    # Deleting the object: nobody the webhook saw.
    await finalize_key(w.wiring, w.kube, w.ident(), w.spec, w.status)
    assert w.store.audited[-1] == ("keys deleted", actors.DELETED)


async def test_scheduled_rotation_is_the_operators() -> None:
    w = KeyWorld()
    w.spec = {"rotation": {"every": "720h"}}
    await w.reconcile()
    w.clock.advance(hours=721)
    await w.reconcile()
    assert w.store.audited[-1] == ("key created", Actor.operator("scheduled rotation"))


async def test_the_requester_is_read_once_per_pass_and_never_when_the_store_is_down() -> None:
    w = KeyWorld()
    w.admit(ALICE)
    await w.reconcile()
    assert w.store.lookups == 1
    w.store.fail_with = StoreUnavailable("connection refused")
    actor = await actors.spec_actor(w.wiring, w.ident(), actors.spec_digest(w.spec))
    assert actor == Actor.unknown("the admission record could not be read")
