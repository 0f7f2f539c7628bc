"""The admission checks of both kinds against fakes: what is denied (and how the message
names the field and the holder), what is only a warning, and the plan (masked values only).

On the real API server: tests/e2e/test_admission.py.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from aigateway_operator.api.identity import AIGATEWAYCODERDKEY, AIPROVIDER
from aigateway_operator.config import Settings
from aigateway_operator.controllers.admission import Review, Verdict
from aigateway_operator.controllers.aiprovider.admission import describe_plan, review_provider
from aigateway_operator.controllers.aiprovider.index import ProviderIndex
from aigateway_operator.controllers.gatewaykey.admission import review_gateway_key
from aigateway_operator.controllers.shared import ObjectIdentity
from aigateway_operator.controllers.wiring import Wiring
from aigateway_operator.kube import SecretData
from aigateway_operator.store import DesiredProvider, OwnerRef, ProviderPreview, ProviderType
from tests.support.fakes import (
    Clock,
    FakeGatewayKeyStore,
    FakeProviderStore,
    FakeSecrets,
    provider_reading,
)

pytestmark = pytest.mark.unit

UID = "6f1c1c1e-3d3a-4c59-9d0a-1f2e3d4c5b6a"
KEY_A = "sk-test-AAAAAAAAAAAAAAAAAAAA-0001"
KEY_B = "sk-test-BBBBBBBBBBBBBBBBBBBB-0002"
KEY_C = "sk-test-CCCCCCCCCCCCCCCCCCCC-0003"


@dataclass
class World:
    providers: FakeProviderStore
    keys: FakeGatewayKeyStore
    kube: FakeSecrets
    index: ProviderIndex
    settings: Settings

    def wiring(self, store: Any) -> Wiring:
        return Wiring(
            settings=self.settings,
            store=store,
            kube=self.kube,  # type: ignore[arg-type]
            events=None,
            fingerprint_key=b"k",
        )

    async def provider(
        self, spec: dict[str, Any], *, old: dict[str, Any] | None = None, **kw: Any
    ) -> Verdict:
        review = Review(
            operation="UPDATE" if old is not None else "CREATE",
            namespace="ns",
            name=kw.pop("name", "openai"),
            uid=UID,
            spec=spec,
            old_spec=old,
            **kw,
        )
        return await review_provider(self.wiring(self.providers), self.index, review)

    async def gateway_key(
        self, spec: dict[str, Any], *, old: dict[str, Any] | None = None, **kw: Any
    ) -> Verdict:
        review = Review(
            operation="UPDATE" if old is not None else "CREATE",
            namespace="ns",
            name=kw.pop("name", "gw"),
            uid=UID,
            spec=spec,
            old_spec=old,
            **kw,
        )
        return await review_gateway_key(self.wiring(self.keys), review)

    def owner(self, kind: Any = AIPROVIDER, name: str = "openai") -> OwnerRef:
        return ObjectIdentity(kind, "ns", name, UID, 1).owner(self.settings.instance_id)


def settings(**kw: Any) -> Settings:
    return Settings(database_url="postgresql://u:p@localhost/coder", **kw)  # type: ignore[call-arg]


@pytest.fixture
def world() -> World:
    clock = Clock()
    kube = FakeSecrets()
    kube.put("ns", "llm", {"a": KEY_A, "b": KEY_B, "c": KEY_C})
    return World(
        FakeProviderStore(clock), FakeGatewayKeyStore(clock), kube, ProviderIndex(), settings()
    )


def spec(*keys: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "openai",
        "apiKeys": [{"secretKeyRef": {"name": "llm", "key": k}} for k in keys],
        **extra,
    }


def desired(name: str = "openai", *keys: str, **kw: Any) -> DesiredProvider:
    return DesiredProvider(name=name, type=ProviderType.OPENAI, api_keys=keys, **kw)


def no_plaintext(verdict: Verdict) -> None:
    text = "\n".join(verdict.warnings) + (verdict.denied or "")
    for value in (KEY_A, KEY_B, KEY_C):
        assert value not in text


# --- AIProvider: deny ---------------------------------------------------------------------


async def test_name_held_by_a_provider_made_in_coder_is_denied(world: World) -> None:
    world.providers.add_foreign(desired("openai"))
    verdict = await world.provider(spec("a"))
    assert verdict.denied is not None
    assert verdict.denied.startswith("spec.providerName 'openai': ")
    assert "made in Coder, not by this operator" in verdict.denied
    assert verdict.denied.endswith("Choose another spec.providerName")


async def test_adoption_not_allowed_in_the_namespace_is_denied_with_why(world: World) -> None:
    world.providers.add_foreign(desired("openai"))
    verdict = await world.provider(spec("a", adoptExisting=True))
    assert verdict.denied is not None
    assert "adoption is not allowed in namespace 'ns'" in verdict.denied
    assert "AIGW_ADOPTION_NAMESPACES" in verdict.denied


async def test_adoption_allowed_plans_an_adopt(world: World) -> None:
    world.settings = settings(adoption_namespaces="ns")
    world.providers.add_foreign(desired("openai", KEY_A))
    verdict = await world.provider(spec("a", "b", adoptExisting=True, displayName="X"))
    assert verdict.denied is None
    assert verdict.warnings == [
        "plan: adopt provider 'openai': display_name; keys: +1 (sk-t...0002)"
    ]


async def test_adopting_a_provider_of_another_type_is_denied(world: World) -> None:
    world.settings = settings(adoption_namespaces="*")
    world.providers.add_foreign(DesiredProvider(name="openai", type=ProviderType.ANTHROPIC))
    verdict = await world.provider(spec("a", adoptExisting=True))
    assert verdict.denied is not None
    assert verdict.denied.startswith("spec.type 'openai': ")


async def test_name_held_by_another_object_is_denied_naming_it(world: World) -> None:
    other = ObjectIdentity(AIPROVIDER, "team-b", "openai", "u2", 1).owner("default")
    await world.providers.upsert_provider(desired("openai"), other)
    verdict = await world.provider(spec("a"))
    assert verdict.denied is not None
    assert "AIProvider team-b/openai" in verdict.denied


async def test_name_held_by_another_operator_instance_is_denied_naming_it(world: World) -> None:
    other = OwnerRef(instance="staging", kind="AIProvider", namespace="ns", name="openai")
    await world.providers.upsert_provider(desired("openai"), other)
    verdict = await world.provider(spec("a"))
    assert verdict.denied is not None
    assert "operator instance 'staging'" in verdict.denied


CLAIMS_OPENAI = {"type": "openai", "providerName": "openai"}


async def test_name_claimed_in_the_index_by_another_object_is_denied(world: World) -> None:
    world.index.update(provider_reading("u9", "team-c", "early", CLAIMS_OPENAI))
    verdict = await world.provider(spec("a"))
    assert verdict.denied == (
        "spec.providerName 'openai' is claimed by AIProvider team-c/early; choose another "
        "spec.providerName"
    )


async def test_a_claim_being_deleted_and_our_own_claim_do_not_deny(world: World) -> None:
    world.index.update(provider_reading("u9", "team-c", "early", CLAIMS_OPENAI), deleting=True)
    world.index.update(provider_reading(UID, "ns", "openai", {"type": "openai"}))
    verdict = await world.provider(spec("a"))
    assert verdict.denied is None


async def test_the_index_does_not_deny_the_object_that_holds_the_row(world: World) -> None:
    await world.providers.upsert_provider(desired("openai", KEY_A), world.owner())
    world.index.update(provider_reading("u9", "team-c", "late", CLAIMS_OPENAI))
    verdict = await world.provider(spec("a", displayName="New"), old=spec("a"))
    assert verdict.denied is None
    assert verdict.warnings == ["plan: update provider 'openai': display_name"]


# --- AIProvider: only someone who may read a Secret points it somewhere (#23) -------------


MALLORY = "system:serviceaccount:ns:author"


@pytest.mark.parametrize(
    ("old", "new", "reviewed"),
    [
        # a create: every referenced Secret
        (None, spec("a"), ["llm"]),
        # re-pointing baseURL: the Secrets now sent elsewhere
        (spec("a"), spec("a", baseURL="https://attacker.example/v1"), ["llm"]),
        # another key of a Secret already used, same destination: nothing new
        (spec("a"), spec("a", "b"), []),
        # a Secret not used before
        (spec("a"), {**spec("a"), "apiKeys": [{"secretKeyRef": {"name": "new", "key": "k"}}]},
         ["new"]),
        # a display name: nothing
        (spec("a"), spec("a", displayName="x"), []),
    ],
)  # fmt: skip
async def test_which_secrets_a_change_asks_about(
    world: World, old: dict[str, Any] | None, new: dict[str, Any], reviewed: list[str]
) -> None:
    world.kube.readers = {}
    verdict = await world.provider(new, old=old, username=MALLORY)
    assert [name for _, _, name in world.kube.reviews] == reviewed
    assert (verdict.denied is not None) == bool(reviewed)


async def test_a_requester_who_may_not_read_the_secret_is_denied(world: World) -> None:
    world.kube.readers = {"alice": {"ns/llm"}}
    extra = {"authentication.kubernetes.io/credential-id": ("JTI=abc",)}
    denied = await world.provider(
        spec("a", baseURL="https://attacker.example/v1"),
        old=spec("a"),
        username=MALLORY,
        groups=("system:serviceaccounts",),
        user_uid="u-1",
        extra=extra,
    )
    assert denied.denied is not None
    assert denied.denied.startswith("spec.apiKeys[0].secretKeyRef: " + MALLORY)
    assert "may not get Secret 'llm'" in denied.denied
    requester, namespace, name = world.kube.reviews[0]
    assert (requester.username, requester.groups, requester.uid, dict(requester.extra)) == (
        MALLORY, ("system:serviceaccounts",), "u-1", extra,
    )  # fmt: skip
    assert (namespace, name) == ("ns", "llm")
    # The same answer for a Secret that does not exist: nothing about it is revealed.
    missing = await world.provider(
        {**spec(), "apiKeys": [{"secretKeyRef": {"name": "nope", "key": "a"}}]},
        username=MALLORY,
    )
    assert missing.denied == denied.denied.replace("'llm'", "'nope'")
    # Someone who may read it is not.
    allowed = await world.provider(
        spec("a", baseURL="https://attacker.example/v1"), old=spec("a"), username="alice"
    )
    assert allowed.denied is None


# --- AIProvider: warn ---------------------------------------------------------------------


async def test_missing_secret_and_key_are_warnings_with_a_plan(world: World) -> None:
    s = spec("a")
    s["apiKeys"].append({"secretKeyRef": {"name": "later", "key": "x"}})
    s["apiKeys"].append({"secretKeyRef": {"name": "llm", "key": "nope"}})
    verdict = await world.provider(s)
    assert verdict.denied is None
    assert verdict.warnings[0].startswith(
        "spec.apiKeys[1].secretKeyRef: Secret 'later' was not found in namespace 'ns'"
    )
    assert verdict.warnings[1] == "spec.apiKeys[2].secretKeyRef: Secret 'llm' has no key 'nope'"
    assert verdict.warnings[2] == (
        "plan: create provider 'openai' (type openai, keys unknown until the Secrets resolve)"
    )


async def test_a_secret_not_opted_in_reads_as_missing(world: World) -> None:
    world.kube.put("ns", "private", {"a": KEY_A}, allowed=None)
    s = {"type": "openai", "apiKeys": [{"secretKeyRef": {"name": "private", "key": "a"}}]}
    verdict = await world.provider(s)
    assert verdict.denied is None
    assert "Secret 'private' was not found" in verdict.warnings[0]
    assert "has no key" not in "".join(verdict.warnings)


async def test_failed_sts_check_in_status_is_a_warning(world: World) -> None:
    bedrock = {
        "type": "bedrock",
        "bedrock": {"region": "us-east-1", "roleARN": "arn:aws:iam::123456789012:role/B"},
    }
    status = {
        "conditions": [
            {
                "type": "CredentialsValid",
                "status": "False",
                "reason": "AccessDenied",
                "message": "AssumeRole was denied",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ]
    }
    changed = {**bedrock, "displayName": "B"}
    verdict = await world.provider(changed, old=bedrock, status=status)
    assert verdict.denied is None
    assert (
        "spec.bedrock: the last STS check failed (AccessDenied: AssumeRole was denied); it is "
        "checked again after this change"
    ) in verdict.warnings


async def test_database_down_is_a_warning_never_a_denial(world: World) -> None:
    world.providers.down = True
    verdict = await world.provider(spec("a"))
    assert verdict.denied is None
    assert verdict.warnings[0].startswith("Coder's database could not be read (")


# --- AIProvider: plan ---------------------------------------------------------------------


async def test_plan_of_a_create_names_type_and_masked_keys(world: World) -> None:
    verdict = await world.provider(spec("a", "b"))
    assert verdict.warnings == [
        "plan: create provider 'openai' (type openai, 2 keys: sk-t...0001, sk-t...0002)"
    ]
    no_plaintext(verdict)


async def test_plan_of_an_update_names_columns_and_keys_added_and_removed(world: World) -> None:
    await world.providers.upsert_provider(desired("openai", KEY_A, KEY_B), world.owner())
    new = spec("a", "c", displayName="OpenAI (EU)", baseURL="https://eu.example.com/v1/")
    verdict = await world.provider(new, old=spec("a", "b"))
    assert verdict.warnings == [
        "plan: update provider 'openai': display_name, base_url; keys: +1 (sk-t...0003), "
        "-1 (sk-t...0002)"
    ]
    no_plaintext(verdict)


async def test_plan_of_a_spec_change_that_changes_nothing_in_coder(world: World) -> None:
    await world.providers.upsert_provider(desired("openai", KEY_A), world.owner())
    verdict = await world.provider(spec("a", deletionPolicy="Orphan"), old=spec("a"))
    assert verdict.warnings == ["plan: no change to provider 'openai'"]


async def test_metadata_only_updates_and_deletions_are_not_checked(world: World) -> None:
    world.providers.add_foreign(desired("openai"))  # would be denied if checked
    assert await world.provider(spec("a"), old=spec("a")) == Verdict()
    assert await world.provider(spec("a"), deleting=True) == Verdict()


def test_describe_plan_variants() -> None:
    p = ProviderPreview("revive", "x", "openai", columns=("deleted",))
    assert describe_plan(p) == "restore provider 'x': deleted"
    p = ProviderPreview("update", "x", "openai", keys_reordered=True)
    assert describe_plan(p) == "update provider 'x': keys: reordered"
    p = ProviderPreview("update", "x", "openai", keys_removed=("",))
    assert describe_plan(p) == "update provider 'x': keys: -1 (<undecryptable>)"
    p = ProviderPreview("adopt", "x", "openai")
    assert describe_plan(p) == "adopt provider 'x' (no other change)"
    p = ProviderPreview("create", "x", "copilot")
    assert describe_plan(p) == "create provider 'x' (type copilot, 0 keys)"
    p = ProviderPreview("update", "x", "bedrock", columns=("settings",))
    assert describe_plan(p, keys_known=False) == (
        "update provider 'x': keys: unknown until the Secrets resolve"
    )


# --- AIGatewayCoderdKey -------------------------------------------------------------------


async def test_gateway_key_plan_of_a_create(world: World) -> None:
    verdict = await world.gateway_key({})
    assert verdict.denied is None
    assert verdict.warnings == ["plan: issue key 'gw' into Secret 'gw-key'"]


async def test_gateway_key_name_held_by_a_key_made_in_coder_is_denied(world: World) -> None:
    world.keys.add_foreign("gw")
    verdict = await world.gateway_key({})
    assert verdict.denied == (
        "spec.keyName 'gw': the AI Gateway key name is held by a key made in Coder, not by "
        "this operator; choose another spec.keyName"
    )


async def test_gateway_key_name_held_by_another_object_is_denied(world: World) -> None:
    other = ObjectIdentity(AIGATEWAYCODERDKEY, "team-b", "gw", "u2", 1).owner("default")
    world.keys.add_foreign("gw", owner=other)
    verdict = await world.gateway_key({})
    assert verdict.denied is not None
    assert "AIGatewayCoderdKey team-b/gw" in verdict.denied


async def test_gateway_key_foreign_secret_is_denied_and_own_secret_is_not(world: World) -> None:
    world.kube.put("ns", "app-secret", {"key": "x"}, allowed=None)
    verdict = await world.gateway_key({"secretName": "app-secret"})
    assert verdict.denied is not None
    assert verdict.denied.startswith("spec.secretName 'app-secret': Secret 'app-secret' exists")
    assert "not owned by this AIGatewayCoderdKey" in verdict.denied

    ours = SecretData("ns", "gw-key", str(uuid.uuid4()), "1", {"key": b"v"}, owner_uids=(UID,))
    world.kube.secrets[("ns", "gw-key")] = ours
    assert (await world.gateway_key({})).denied is None


async def test_gateway_key_rotation_plan(world: World) -> None:
    owner = world.owner(AIGATEWAYCODERDKEY, "gw")
    world.keys.add_foreign("gw", owner=owner)  # our current key
    status = {"secretName": "gw-key", "rotation": {"generation": 1}}
    old = {"rotation": {"generation": 1}}
    verdict = await world.gateway_key({"rotation": {"generation": 2}}, old=old, status=status)
    assert verdict.denied is None
    assert verdict.warnings == [
        "plan: rotate key 'gw' (generation 1 -> 2) into Secret 'gw-key'; the old key keeps "
        "working for 1h"
    ]
    verdict = await world.gateway_key(
        {"rotation": {"generation": 1, "gracePeriod": "2h"}}, old=old, status=status
    )
    assert verdict.warnings == ["plan: no change to key 'gw'"]


async def test_gateway_key_database_down_is_a_warning(world: World) -> None:
    world.keys.down = True
    verdict = await world.gateway_key({})
    assert verdict.denied is None
    assert verdict.warnings[0].startswith("Coder's database could not be read (")
