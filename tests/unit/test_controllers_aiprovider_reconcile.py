"""The AIProvider pass against an in-memory store, Secret API and STS verifier (fakes, pinned
clock): what it writes, what it reports, what it refuses, and when it runs again.

The real store is tested on Postgres (tests/integration/test_store_*), the real verifier
against moto (tests/integration/test_sts_verify.py), the whole operator end to end in
tests/e2e; here every branch of the pass is reached cheaply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from aigateway_operator.api.common import Reason
from aigateway_operator.api.identity import AIPROVIDER
from aigateway_operator.config import Settings
from aigateway_operator.controllers.aiprovider.finalize import finalize
from aigateway_operator.controllers.aiprovider.reconcile import reconcile
from aigateway_operator.controllers.shared import ObjectIdentity, PassOutcome
from aigateway_operator.controllers.wiring import Wiring
from aigateway_operator.credentials import Resolved, SecretRef, resolve
from aigateway_operator.store import (
    InsufficientPrivileges,
    InvalidProvider,
    NotSupportedByCoder,
    StoreError,
)
from aigateway_operator.store.dbcrypt import plaintext_refused
from aigateway_operator.validation.identity import StaticCredentials, Verdict
from tests.support.fakes import Clock, FakeProviderStore, FakeSecrets

pytestmark = pytest.mark.unit

UID = "6f1c1c1e-3d3a-4c59-9d0a-1f2e3d4c5b6a"
KEY_A = "sk-test-AAAAAAAAAAAAAAAAAAAA-0001"
KEY_B = "sk-test-BBBBBBBBBBBBBBBBBBBB-0002"
KEY_C = "sk-test-CCCCCCCCCCCCCCCCCCCC-0003"
ROLE = "arn:aws:iam::123456789012:role/Bedrock"
ACCESS_KEY_ID = "AKIAABCDEFGHIJKLMNOP"
SECRET_ACCESS_KEY = "abcdEFGHijklMNOPqrstUVWXyz0123456789+/AB"


@dataclass
class FakeVerifier:
    verdicts: list[Verdict] = field(default_factory=list)
    calls: list[tuple[str | None, str | None, str | None, StaticCredentials | None]] = field(
        default_factory=list
    )

    def __call__(
        self,
        region: str | None,
        role_arn: str | None,
        external_id: str | None,
        static: StaticCredentials | None,
    ) -> Verdict:
        self.calls.append((region, role_arn, external_id, static))
        if self.verdicts:
            return self.verdicts.pop(0)
        return Verdict(True, Reason.VERIFIED, "verified", caller_arn="arn:aws:iam::1:user/op")


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """Apply a JSON merge patch (RFC 7386) as the API server does: objects merge deeply."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge_patch(target[key], value)
        else:
            target[key] = value


@dataclass
class World:
    clock: Clock
    store: FakeProviderStore
    kube: FakeSecrets
    verifier: FakeVerifier
    wiring: Wiring
    spec: dict[str, Any] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)
    generation: int = 1
    name: str = "openai"
    uid: str = UID

    def ident(self) -> ObjectIdentity:
        return ObjectIdentity(AIPROVIDER, "ns", self.name, self.uid, self.generation, created="t1")

    def _apply(self, outcome: PassOutcome) -> PassOutcome:
        merge_patch(self.status, outcome.status_patch)
        return outcome

    async def reconcile(self) -> PassOutcome:
        # The API server's view of the object (what a revive checks), unless a test set one.
        self.kube.objects.setdefault(
            (AIPROVIDER.plural, "ns", self.name), {"metadata": {"uid": self.uid}}
        )
        return self._apply(await reconcile(self.wiring, self.ident(), self.spec, self.status))

    async def finalize(self) -> PassOutcome:
        return await finalize(self.wiring, self.ident(), self.spec, self.status)

    def condition(self, type_: str) -> dict[str, Any]:
        (found,) = [c for c in self.status["conditions"] if c["type"] == type_]
        return dict(found)


@pytest.fixture
def world() -> World:
    clock = Clock()
    store = FakeProviderStore(clock)
    kube = FakeSecrets()
    verifier = FakeVerifier()
    settings = Settings(database_url="postgresql://u:p@localhost/coder")  # type: ignore[call-arg]
    wiring = Wiring(
        settings=settings,
        store=store,  # type: ignore[arg-type]
        kube=kube,  # type: ignore[arg-type]
        events=None,
        fingerprint_key=b"fingerprint-key",
        verifier=verifier,
        clock=clock,
    )
    kube.put("ns", "llm", {"a": KEY_A, "b": KEY_B})
    w = World(clock, store, kube, verifier, wiring)
    w.spec = {
        "type": "openai",
        "apiKeys": [
            {"secretKeyRef": {"name": "llm", "key": "a"}},
            {"secretKeyRef": {"name": "llm", "key": "b"}},
        ],
    }
    return w


def reasons(outcome: PassOutcome) -> list[str]:
    return [e.reason for e in outcome.events]


def no_plaintext(*texts: str) -> None:
    for value in (KEY_A, KEY_B, KEY_C, SECRET_ACCESS_KEY):
        for text in texts:
            assert value not in text


async def test_a_new_provider_is_written_once_and_reported_masked(world: World) -> None:
    out = await world.reconcile()
    row = world.store.by_name("openai")
    assert [v for _, v in row.keys] == [KEY_A, KEY_B]
    assert out.db_action == "created"
    assert out.notified
    assert reasons(out) == ["Created"]
    assert world.condition("Ready")["status"] == "True"
    assert world.status["providerID"] == str(row.id)
    assert world.status["keyCount"] == 2
    keys = world.status["apiKeys"]
    assert [k["masked"] for k in keys] == ["sk-t...0001", "sk-t...0002"]
    assert keys[0]["fingerprint"].startswith("hmac-sha256:")
    assert keys[0]["fingerprint"] != keys[1]["fingerprint"]
    assert out.row_id == str(row.id)
    assert out.row_version == row.version()
    no_plaintext(json.dumps(world.status), *(e.message for e in out.events))


async def test_a_second_pass_in_sync_writes_nothing(world: World) -> None:
    await world.reconcile()
    writes = world.store.writes
    out = await world.reconcile()
    assert out.status_patch == {}
    assert out.events == []
    assert world.store.writes == writes
    assert out.db_action == "unchanged"


@pytest.mark.parametrize(
    ("secret", "key", "reason", "field"),
    [
        ("missing", "a", "SecretNotFound", "spec.apiKeys[0].secretKeyRef"),
        ("llm", "nope", "SecretKeyMissing", "spec.apiKeys[0].secretKeyRef"),
    ],
)
async def test_an_unresolved_reference_touches_nothing(
    world: World, secret: str, key: str, reason: str, field: str
) -> None:
    world.spec["apiKeys"][0] = {"secretKeyRef": {"name": secret, "key": key}}
    out = await world.reconcile()
    assert world.store.rows == {}
    c = world.condition("SecretsResolved")
    assert (c["status"], c["reason"]) == ("False", reason)
    assert field in c["message"]
    assert world.condition("Ready")["reason"] == reason
    assert out.db_action is None
    assert out.retry_after is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (KEY_A + "\n", "InvalidSecretValue"),
        ("", "InvalidSecretValue"),
        (KEY_B, "DuplicateAPIKey"),
    ],
)
async def test_a_bad_value_touches_nothing_and_names_the_field(
    world: World, value: str, reason: str
) -> None:
    world.spec["apiKeys"][0]["secretKeyRef"]["key"] = "b"
    world.spec["apiKeys"][1]["secretKeyRef"]["key"] = "a"
    world.kube.put("ns", "llm", {"a": value, "b": KEY_B})
    out = await world.reconcile()
    assert world.store.rows == {}
    c = world.condition("SecretsResolved")
    assert c["reason"] == reason
    assert "spec.apiKeys[1].secretKeyRef" in c["message"]
    no_plaintext(c["message"], *(e.message for e in out.events))


async def test_a_spec_the_models_reject_is_invalid_spec(world: World) -> None:
    world.spec = {"type": "bedrock", "apiKeys": world.spec["apiKeys"]}
    out = await world.reconcile()
    c = world.condition("Synced")
    assert (c["status"], c["reason"]) == ("False", "InvalidSpec")
    assert "spec.bedrock is required when spec.type is bedrock" in c["message"]
    assert world.store.rows == {}
    assert reasons(out) == ["InvalidSpec"]  # a validation failure is a Warning Event too


async def test_an_invalid_metadata_name_without_provider_name_is_invalid_spec(
    world: World,
) -> None:
    """An object stored before the CRD's rule (or applied without it): the same InvalidSpec
    as any spec error, not an exception (which the runner retries with backoff)."""
    world.name = "team.openai"  # a valid object name, but no Coder provider name
    out = await world.reconcile()
    c = world.condition("Synced")
    assert (c["status"], c["reason"]) == ("False", "InvalidSpec")
    assert c["message"].startswith("metadata.name must be a valid Coder provider name")
    assert "spec.providerName" in c["message"]
    assert world.condition("Ready")["reason"] == "InvalidSpec"
    assert world.store.rows == {}
    assert reasons(out) == ["InvalidSpec"]
    assert out.retry_after is None  # nothing to retry until the object changes
    again = await world.reconcile()  # the periodic resync: the same answer, nothing to patch
    assert (again.status_patch, again.retry_after) == ({}, None)


async def test_a_spec_the_store_rejects_names_the_spec_field(world: World) -> None:
    async def reject(*_: object, **__: object) -> None:
        raise InvalidProvider("baseURL is required: type azure has no default", field="baseURL")

    world.store.upsert_provider = reject  # type: ignore[method-assign]
    out = await world.reconcile()
    c = world.condition("Synced")
    assert (c["status"], c["reason"]) == ("False", "InvalidSpec")
    assert c["message"].startswith("spec.baseURL: baseURL is required")
    assert reasons(out) == ["InvalidSpec"]


async def test_the_current_owner_keeps_the_name(world: World) -> None:
    """Another object of this install holds the name: named, nothing written; it is ours
    once that owner is gone."""
    from aigateway_operator.store import OwnerRef

    other = OwnerRef(kind="AIProvider", namespace="team-a", name="first", instance="default")
    from aigateway_operator.store import DesiredProvider, ProviderType

    await world.store.upsert_provider(
        DesiredProvider("openai", ProviderType.OPENAI, api_keys=(KEY_C,)), other
    )
    writes = world.store.writes
    out = await world.reconcile()
    c = world.condition("Synced")
    assert c["reason"] == "NameConflict"
    assert "held by AIProvider team-a/first" in c["message"]
    assert "once that owner is gone" in c["message"]
    assert world.store.writes == writes
    assert reasons(out) == ["NameConflict"]
    await world.store.delete_provider(other)
    await world.reconcile()
    assert world.condition("Ready")["status"] == "True"


async def test_a_row_made_in_coder_is_adopted_only_where_the_platform_allows(
    world: World,
) -> None:
    from aigateway_operator.store import DesiredProvider, ProviderType

    foreign = world.store.add_foreign(
        DesiredProvider("openai", ProviderType.OPENAI, api_keys=(KEY_C,))
    )
    await world.reconcile()
    c = world.condition("Synced")
    assert c["reason"] == "NameConflict"
    assert "adoptExisting" not in c["message"]  # not allowed here: not offered either
    world.spec["adoptExisting"] = True
    world.generation = 2
    await world.reconcile()
    c = world.condition("Synced")
    assert c["reason"] == "NameConflict"
    assert "AIGW_ADOPTION_NAMESPACES" in c["message"]
    assert [v for _, v in foreign.keys] == [KEY_C]
    # The platform allows this namespace: the object takes the row over.
    world.wiring.settings = world.wiring.settings.model_copy(update={"adoption_namespaces": "ns"})
    world.generation = 3
    out = await world.reconcile()
    assert reasons(out)[0] == "Adopted"
    assert [v for _, v in foreign.keys] == [KEY_A, KEY_B]
    assert world.status["providerID"] == str(foreign.id)


async def test_adoption_never_changes_the_type(world: World) -> None:
    from aigateway_operator.store import DesiredProvider, ProviderType

    world.wiring.settings = world.wiring.settings.model_copy(update={"adoption_namespaces": "*"})
    foreign = world.store.add_foreign(
        DesiredProvider("openai", ProviderType.OPENROUTER, api_keys=(KEY_C,))
    )
    world.spec["adoptExisting"] = True
    out = await world.reconcile()
    c = world.condition("Synced")
    assert (c["reason"], reasons(out)) == ("TypeMismatch", ["TypeMismatch"])
    assert "spec.type" in c["message"]
    assert foreign.owner is None
    assert foreign.desired.type is ProviderType.OPENROUTER


async def test_a_rotated_secret_value_replaces_the_key_row(world: World) -> None:
    await world.reconcile()
    before = world.status["apiKeys"][1]["fingerprint"]
    world.kube.put("ns", "llm", {"a": KEY_A, "b": KEY_C})
    out = await world.reconcile()
    assert "KeysRotated" in reasons(out)
    assert [v for _, v in world.store.by_name("openai").keys] == [KEY_A, KEY_C]
    assert world.status["apiKeys"][1]["fingerprint"] != before
    assert world.status["apiKeys"][1]["masked"] == "sk-t...0003"


async def test_an_outside_edit_is_reverted_and_reported(world: World) -> None:
    await world.reconcile()
    row = world.store.by_name("openai")
    from dataclasses import replace

    row.desired = replace(row.desired, base_url="https://evil.example.com/v1")
    out = await world.reconcile()
    assert "DriftReverted" in reasons(out)
    assert out.drift_reverted
    assert row.desired.base_url is None


async def test_report_mode_only_reports_drift(world: World) -> None:
    world.spec["driftPolicy"] = "Report"
    await world.reconcile()
    row = world.store.by_name("openai")
    from dataclasses import replace

    row.desired = replace(row.desired, enabled=False)
    writes = world.store.writes
    out = await world.reconcile()
    c = world.condition("Synced")
    assert (c["status"], c["reason"]) == ("False", "Drifted")
    assert "enabled" in c["message"]
    assert world.store.writes == writes
    assert row.desired.enabled is False
    assert reasons(out) == ["Drifted"]
    again = await world.reconcile()
    assert again.events == []  # the Warning is posted once per change


def forge(status: dict[str, Any], generation: int, secrets_revision: str | None = None) -> None:
    """A status writer's forgery: the conditions (and revision) claim what they like."""
    status["observedGeneration"] = generation
    for c in status.get("conditions", []):
        c["observedGeneration"] = generation
    if secrets_revision is not None:
        status["observedSecretsRevision"] = secrets_revision


@pytest.mark.parametrize("drift_policy", ["Revert", "Report"])
async def test_a_forged_status_does_not_stop_or_disguise_a_spec_change(
    world: World, drift_policy: str
) -> None:
    """#23: the operator's record, not the status, says what was applied. Under Report the
    spec change is written (not reported as Drifted); under Revert it is an Update, not a
    DriftReverted."""
    world.spec["driftPolicy"] = drift_policy
    await world.reconcile()
    forge(world.status, 2)
    world.spec["displayName"] = "Changed in the spec"
    world.generation = 2
    out = await world.reconcile()
    assert world.store.by_name("openai").desired.display_name == "Changed in the spec"
    assert reasons(out) == ["Updated"]
    assert not out.drift_reverted
    assert world.condition("Synced")["reason"] == "Synced"


async def test_a_forged_secrets_revision_does_not_hide_a_rotation(world: World) -> None:
    world.spec["driftPolicy"] = "Report"
    await world.reconcile()
    world.kube.put("ns", "llm", {"a": KEY_A, "b": KEY_C})
    # The new Secret versions' revision (from metadata anybody who lists Secrets can see).
    refs = [SecretRef("a", "llm", "a"), SecretRef("b", "llm", "b")]
    resolved = await resolve(world.kube, "ns", refs, consumer="openai")
    assert isinstance(resolved, Resolved)
    forge(world.status, 1, secrets_revision=resolved.revision)
    out = await world.reconcile()
    assert [v for _, v in world.store.by_name("openai").keys] == [KEY_A, KEY_C]
    assert "KeysRotated" in reasons(out)


async def test_a_recreated_object_is_not_taken_for_the_applied_one(world: World) -> None:
    """Same name, new uid, generation 1 again: its spec is applied (an Update), not drift."""
    world.spec["driftPolicy"] = "Report"
    await world.reconcile()
    world.uid = "0d7e4f7a-2a7e-4b4e-9a35-6a1b2c3d4e5f"
    world.kube.objects.clear()
    world.spec["displayName"] = "Second life"
    out = await world.reconcile()
    assert world.store.by_name("openai").desired.display_name == "Second life"
    assert reasons(out) == ["Updated"]


async def test_a_database_outage_is_retried_and_touches_nothing(world: World) -> None:
    world.store.down = True
    out = await world.reconcile()
    c = world.condition("Synced")
    assert c["reason"] == "DatabaseUnavailable"
    assert out.retry_after == 10.0
    assert out.database_error == "unavailable"
    assert world.condition("SecretsResolved")["status"] == "True"


#: Store refusals a person must act on, each as the real store words it: the reason on the
#: object, what its message names, whether a Warning Event says it too, the retry delay, and
#: the database error kind.
REFUSALS = [
    pytest.param(
        plaintext_refused(("abc1234",), "refusing to write the API keys of AI provider 'openai'"),
        "PlaintextRefused",
        "coderd encrypts with active dbcrypt key(s) abc1234",
        True,
        60.0,
        "encryption",
        id="PlaintextRefused",
    ),
    pytest.param(
        InsufficientPrivileges(["INSERT on table public.ai_provider_keys"]),
        "InsufficientPrivileges",
        "INSERT on table public.ai_provider_keys",
        True,
        300.0,
        "privileges",
        id="InsufficientPrivileges",
    ),
    pytest.param(
        NotSupportedByCoder("AI providers need Coder v2.34 or later; this database is v2.33"),
        "NotSupportedByCoder",
        "need Coder v2.34 or later",
        False,  # the same for every object: the condition says it, no Event per object
        300.0,
        "schema",
        id="NotSupportedByCoder",
    ),
]


@pytest.mark.parametrize(("error", "reason", "says", "warns", "retry", "kind"), REFUSALS)
async def test_a_store_refusal_is_on_the_object_stalled_and_writes_nothing(
    world: World,
    error: StoreError,
    reason: str,
    says: str,
    warns: bool,
    retry: float,
    kind: str,
) -> None:
    """No plaintext by accident (issue 14): coderd encrypts and the operator has no key, so
    the store refuses. The object says why (Synced and Ready False with the reason, a
    Warning Event with the same reason), kstatus calls it Stalled (a person must act),
    nothing is written, and no message carries a key."""
    world.store.fail_with = error
    out = await world.reconcile()
    assert world.store.rows == {}
    assert world.store.writes == 0
    for type_ in ("Synced", "Ready"):
        c = world.condition(type_)
        assert (c["status"], c["reason"]) == ("False", reason), type_
    message = world.condition("Synced")["message"]
    assert says in message
    stalled = world.condition("Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", reason)
    assert world.condition("Reconciling")["status"] == "False"
    events = [(e.type, e.reason, e.message) for e in out.events]
    assert events == ([("Warning", reason, message)] if warns else [])
    assert out.retry_after == retry
    assert out.database_error == kind
    assert out.db_action is None
    no_plaintext(json.dumps(world.status), out.retry_message, *(e.message for e in out.events))
    # Once the refusal is lifted (keys given, the grant made, Coder upgraded) it syncs.
    world.store.fail_with = None
    await world.reconcile()
    assert [v for _, v in world.store.by_name("openai").keys] == [KEY_A, KEY_B]
    assert world.condition("Stalled")["status"] == "False"


def bedrock(world: World, **extra: Any) -> None:
    world.spec = {"type": "bedrock", "bedrock": {"region": "us-east-1", "roleARN": ROLE, **extra}}


async def test_bedrock_is_verified_and_due_again_after_the_interval(world: World) -> None:
    bedrock(world)
    out = await world.reconcile()
    assert len(world.verifier.calls) == 1
    region, role, _external_id, static = world.verifier.calls[0]
    assert (region, role, static) == ("us-east-1", ROLE, None)
    c = world.condition("CredentialsValid")
    assert (c["status"], c["reason"]) == ("True", "Verified")
    assert world.status["bedrock"]["callerARN"] == "arn:aws:iam::1:user/op"
    interval = timedelta(seconds=world.wiring.settings.verify_interval_s)
    assert out.next_due == world.clock.now + interval
    # A fresh verdict is reused; a due one is refreshed.
    await world.reconcile()
    assert len(world.verifier.calls) == 1
    world.clock.advance(seconds=world.wiring.settings.verify_interval_s)
    await world.reconcile()
    assert len(world.verifier.calls) == 2


async def test_denied_credentials_still_write_the_row(world: World) -> None:
    bedrock(world)
    world.verifier.verdicts.append(Verdict(False, Reason.ACCESS_DENIED, "AssumeRole denied"))
    out = await world.reconcile()
    assert world.condition("Synced")["status"] == "True"
    c = world.condition("CredentialsValid")
    assert (c["status"], c["reason"]) == ("False", "AccessDenied")
    assert world.condition("Ready")["reason"] == "AccessDenied"
    assert "AccessDenied" in reasons(out)
    assert not out.sts_ok
    assert out.sts_reason == "AccessDenied"


async def test_sts_down_keeps_the_last_verdict_and_retries(world: World) -> None:
    bedrock(world)
    await world.reconcile()
    world.clock.advance(seconds=world.wiring.settings.verify_interval_s)
    world.verifier.verdicts.append(Verdict(False, Reason.STS_UNAVAILABLE, "STS unreachable"))
    out = await world.reconcile()
    assert out.retry_after == 30.0
    assert world.condition("CredentialsValid")["reason"] == "Verified"


async def test_a_forged_verdict_in_status_is_not_carried_forward(world: World) -> None:
    """#23: a status writer turns an AccessDenied into Verified, with the current generation
    and a fresh lastVerifiedAt: the operator's record does not know that verdict, so STS is
    asked again and the real one is written over it."""
    bedrock(world)
    world.verifier.verdicts.append(Verdict(False, Reason.ACCESS_DENIED, "AssumeRole denied"))
    await world.reconcile()
    assert world.condition("CredentialsValid")["reason"] == "AccessDenied"
    for c in world.status["conditions"]:
        if c["type"] in ("CredentialsValid", "Ready"):
            reason = "Ready" if c["type"] == "Ready" else "Verified"
            c.update(status="True", reason=reason, message="forged")
    world.status["bedrock"]["lastVerifiedAt"] = world.clock.now.isoformat()
    world.verifier.verdicts.append(Verdict(False, Reason.ACCESS_DENIED, "AssumeRole denied"))
    await world.reconcile()
    assert len(world.verifier.calls) == 2
    c = world.condition("CredentialsValid")
    assert (c["status"], c["reason"], c["message"]) == (
        "False",
        "AccessDenied",
        "AssumeRole denied",
    )
    assert world.condition("Ready")["reason"] == "AccessDenied"
    # The operator's own verdict, unchanged, is re-used while fresh.
    await world.reconcile()
    assert len(world.verifier.calls) == 2


async def test_static_aws_keys_are_checked_and_passed_to_sts(world: World) -> None:
    world.kube.put("ns", "aws", {"id": ACCESS_KEY_ID, "secret": SECRET_ACCESS_KEY})
    ref = {"name": "aws", "accessKeyIDKey": "id", "secretAccessKeyKey": "secret"}
    world.spec = {
        "type": "bedrock",
        "bedrock": {"region": "us-east-1", "credentialsSecretRef": ref},
    }
    await world.reconcile()
    static = world.verifier.calls[0][3]
    assert static == StaticCredentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY)
    stored = world.store.by_name("openai").desired.bedrock
    assert stored is not None
    assert stored.access_key == ACCESS_KEY_ID
    world.kube.put("ns", "aws", {"id": "ASIA" + ACCESS_KEY_ID[4:], "secret": SECRET_ACCESS_KEY})
    world.generation = 2
    await world.reconcile()
    c = world.condition("SecretsResolved")
    assert c["reason"] == "InvalidSecretValue"
    assert "spec.bedrock.credentialsSecretRef.accessKeyIDKey" in c["message"]
    no_plaintext(c["message"])


async def test_deletion_soft_deletes_the_row_and_its_keys(world: World) -> None:
    await world.reconcile()
    row = world.store.by_name("openai")
    out = await world.finalize()
    assert out.done
    assert reasons(out) == ["Deleted"]
    assert row.deleted
    assert row.keys == []


async def test_orphan_leaves_the_row_live_and_recorded(world: World) -> None:
    world.spec["deletionPolicy"] = "Orphan"
    await world.reconcile()
    row = world.store.by_name("openai")
    out = await world.finalize()
    assert out.done
    assert reasons(out) == ["Orphaned"]
    assert not row.deleted
    assert [v for _, v in row.keys] == [KEY_A, KEY_B]
    assert row.owner == world.ident().owner("default").key  # the same object takes it back


async def test_deletion_waits_for_the_database(world: World) -> None:
    await world.reconcile()
    world.store.down = True
    out = await world.finalize()
    assert not out.done
    assert out.retry_after == 10.0
    ready = [c for c in out.status_patch["conditions"] if c["type"] == "Ready"]
    assert [c["reason"] for c in ready] == ["Deleting"]
    assert not world.store.by_name("openai").deleted


@pytest.mark.parametrize("drift_policy", ["Revert", "Report"])
async def test_a_shared_hostname_is_a_warning_not_a_block(world: World, drift_policy: str) -> None:
    """coderd's duplicate-hostname warning: written anyway, said once, gone when resolved."""
    from aigateway_operator.store import DesiredProvider, ProviderType

    world.spec["driftPolicy"] = drift_policy
    world.store.add_foreign(
        DesiredProvider(
            name="azure-eu", type=ProviderType.OPENAI, base_url="https://API.openai.com:443/x",
            api_keys=(KEY_C,),
        )
    )  # fmt: skip
    out = await world.reconcile()
    assert out.db_action == "created", "the warning never blocks the write"
    synced = world.condition("Synced")
    assert (synced["status"], synced["reason"]) == ("True", "Synced")
    assert "'api.openai.com' is shared with other enabled providers" in synced["message"]
    # The condition names no peer: a list would change with every provider added on the host.
    assert "azure-eu" not in synced["message"]
    assert world.condition("Ready")["status"] == "True"
    assert reasons(out) == ["Created", "DuplicateHostname"]
    (warning,) = [e for e in out.events if e.reason == "DuplicateHostname"]
    assert warning.type == "Warning"
    assert "spec.baseURL" in warning.message
    assert "shared with enabled provider 'azure-eu';" in warning.message
    assert "proxy serves 'azure-eu'" in warning.message
    no_plaintext(json.dumps(world.status), warning.message)

    again = await world.reconcile()
    assert again.events == [], "said once, not every pass"
    assert again.status_patch == {}

    world.store.by_name("azure-eu").desired = replace_enabled(world.store.by_name("azure-eu"))
    cleared = await world.reconcile()
    assert "warning" not in world.condition("Synced")["message"]
    assert "DuplicateHostname" not in reasons(cleared)


def replace_enabled(row: Any) -> Any:
    from dataclasses import replace

    return replace(row.desired, enabled=False)


async def test_a_disabled_provider_gets_no_hostname_warning(world: World) -> None:
    from aigateway_operator.store import DesiredProvider, ProviderType

    world.spec["enabled"] = False
    world.store.add_foreign(
        DesiredProvider(name="other", type=ProviderType.OPENAI, api_keys=(KEY_C,))
    )
    out = await world.reconcile()
    assert "DuplicateHostname" not in reasons(out)
    assert "warning" not in world.condition("Synced")["message"]


# -- spec.coderOwnedFields ---------------------------------------------------------------------


def coder_edit(world: World, **columns: Any) -> None:
    """An edit made in Coder's UI (or SQL) on the object's row."""
    from dataclasses import replace

    row = world.store.by_name("openai")
    row.desired = replace(row.desired, **columns)
    row.updated_at = world.clock.now


async def test_a_coder_owned_enabled_false_survives_revert_and_is_shown(world: World) -> None:
    world.spec["coderOwnedFields"] = ["enabled"]
    world.spec["displayName"] = "OpenAI"
    out = await world.reconcile()
    assert reasons(out) == ["Created"]
    assert world.status["coderOwned"] == {"fields": ["enabled"], "enabled": True}

    coder_edit(world, enabled=False)  # an admin switches it off during an incident
    writes = world.store.writes
    out = await world.reconcile()
    assert world.store.writes == writes, "not reverted"
    assert world.store.by_name("openai").desired.enabled is False
    assert reasons(out) == []
    assert not out.drift_reverted
    assert world.condition("Synced")["reason"] == "Synced"
    assert world.condition("Ready")["status"] == "True"
    assert out.status_patch == {"coderOwned": {"enabled": False}}
    assert world.status["coderOwned"] == {"fields": ["enabled"], "enabled": False}

    again = await world.reconcile()  # in sync: no flapping, nothing written
    assert again.status_patch == {}
    assert again.events == []
    assert world.store.writes == writes

    # Other fields are still the spec's: a base URL (and display name) edit is reverted.
    coder_edit(world, base_url="https://evil.example.com/v1", display_name="Evil")
    out = await world.reconcile()
    assert reasons(out) == ["DriftReverted"]
    (event,) = out.events
    assert "base_url" in event.message
    assert "display_name" in event.message
    assert "enabled" not in event.message
    assert out.drift_reverted
    row = world.store.by_name("openai")
    assert (row.desired.base_url, row.desired.display_name) == (None, "OpenAI")
    assert row.desired.enabled is False, "the Coder-owned field is still Coder's"
    assert world.status["coderOwned"] == {"fields": ["enabled"], "enabled": False}


async def test_report_mode_does_not_report_a_coder_owned_field(world: World) -> None:
    world.spec["driftPolicy"] = "Report"
    world.spec["coderOwnedFields"] = ["icon", "displayName"]
    world.spec["displayName"] = "OpenAI"
    await world.reconcile()
    assert world.status["coderOwned"] == {
        "fields": ["displayName", "icon"],  # a fixed order, not the spec's
        "displayName": "OpenAI",
        "icon": "",
    }
    coder_edit(world, display_name=None, icon="/coder.svg")
    writes = world.store.writes
    out = await world.reconcile()
    assert world.store.writes == writes
    c = world.condition("Synced")
    assert (c["status"], c["reason"]) == ("True", "Synced")
    assert reasons(out) == []
    assert world.status["coderOwned"] == {
        "fields": ["displayName", "icon"],
        "displayName": "",  # NULL in Coder: Coder shows the provider name
        "icon": "/coder.svg",
    }
    assert (await world.reconcile()).status_patch == {}
    # Any other field is still reported.
    coder_edit(world, base_url="https://evil.example.com/v1")
    await world.reconcile()
    c = world.condition("Synced")
    assert (c["status"], c["reason"]) == ("False", "Drifted")
    assert "base_url" in c["message"]
    assert "display_name" not in c["message"]


async def test_a_revived_row_gets_the_spec_values_and_an_adopted_one_keeps_its_own(
    world: World,
) -> None:
    from aigateway_operator.store import DesiredProvider, ProviderType

    world.wiring.settings = world.wiring.settings.model_copy(update={"adoption_namespaces": "*"})
    world.spec["adoptExisting"] = True
    world.spec["coderOwnedFields"] = ["enabled", "displayName"]
    world.spec["displayName"] = "From the spec"
    foreign = world.store.add_foreign(
        DesiredProvider(
            "openai", ProviderType.OPENAI, display_name="Made in Coder", enabled=False,
            api_keys=(KEY_C,),
        )
    )  # fmt: skip
    out = await world.reconcile()
    assert reasons(out)[0] == "Adopted"
    assert (foreign.desired.display_name, foreign.desired.enabled) == ("Made in Coder", False)
    assert [v for _, v in foreign.keys] == [KEY_A, KEY_B], "keys are never Coder-owned"
    assert world.status["coderOwned"] == {
        "fields": ["enabled", "displayName"],
        "enabled": False,
        "displayName": "Made in Coder",
    }
    # Soft-deleted in Coder: reviving it is a creation, with the spec's values.
    foreign.deleted = True
    out = await world.reconcile()
    assert "DriftReverted" in reasons(out)
    assert (foreign.desired.display_name, foreign.desired.enabled) == ("From the spec", True)
    assert world.status["coderOwned"]["enabled"] is True


@pytest.mark.parametrize("drift_policy", ["Revert", "Report"])
async def test_the_hostname_warning_follows_the_rows_own_enabled_when_coder_owns_it(
    world: World, drift_policy: str
) -> None:
    from aigateway_operator.store import DesiredProvider, ProviderType

    world.spec["driftPolicy"] = drift_policy
    world.spec["enabled"] = False
    world.spec["coderOwnedFields"] = ["enabled"]
    world.store.add_foreign(
        DesiredProvider(name="other", type=ProviderType.OPENAI, api_keys=(KEY_C,))
    )
    out = await world.reconcile()
    assert "DuplicateHostname" not in reasons(out), "created disabled, as the spec says"
    coder_edit(world, enabled=True)  # switched on in Coder: now it shares the host
    out = await world.reconcile()
    assert reasons(out) == ["DuplicateHostname"]
    assert "is shared with other enabled providers" in world.condition("Synced")["message"]
    assert world.status["coderOwned"]["enabled"] is True


def test_coder_owned_status_is_capped_and_empty_without_the_field() -> None:
    """Coder does not limit display_name or icon; the status schema does, so a long value
    set in Coder is cut rather than making the whole status patch invalid."""
    from aigateway_operator.api.aiprovider import AIProviderSpec
    from aigateway_operator.controllers.aiprovider.status import coder_owned_status

    spec = AIProviderSpec.from_body({"type": "openai", "coderOwnedFields": ["displayName", "icon"]})
    got = coder_owned_status(spec, {"display_name": "x" * 300, "icon": "data:" + "y" * 5000})
    assert got is not None
    assert (len(got.display_name or ""), len(got.icon or "")) == (256, 2048)
    # A Coder without the icon column: the field is owned, there is no value to show.
    got = coder_owned_status(spec, {"display_name": None})
    assert got is not None
    assert got.to_body() == {"fields": ["displayName", "icon"], "displayName": ""}
    assert coder_owned_status(AIProviderSpec.from_body({"type": "openai"}), {}) is None


@pytest.mark.parametrize(
    "now", [None, {"metadata": {"uid": "another-uid"}},
            {"metadata": {"uid": UID, "deletionTimestamp": "2026-11-30T00:00:00Z"}}],
    ids=["gone", "re-created", "being-deleted"],
)  # fmt: skip
async def test_a_pass_on_a_stale_view_never_revives_a_deleted_row(
    world: World, now: dict[str, Any] | None
) -> None:
    """The row was soft-deleted for a deleted object; a pass that still sees the object (a
    stale watch, a second active replica) must not bring it back."""
    await world.reconcile()
    row = world.store.by_name("openai")
    row.deleted = True
    writes = world.store.writes
    key = (AIPROVIDER.plural, "ns", world.name)
    world.kube.objects[key] = now if now is not None else {}  # {}: 404
    out = await world.reconcile()
    assert row.deleted
    assert world.store.writes == writes
    assert out.db_action is None
    assert out.events == []
    # The same object, live (a re-apply of the same identity): its row comes back.
    world.kube.objects[key] = {"metadata": {"uid": UID}}
    again = await world.reconcile()
    assert again.db_action == "revived"
    assert not row.deleted
