"""AIGatewayCoderdKey end to end: the operator process, the real API server (with its garbage
collector) and Postgres. Gateways are simulated the way coderd records them: an UPDATE of
``last_heartbeat_at`` on the row whose hash matches the secret the gateway holds."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from aigateway_operator.config import Settings
from aigateway_operator.store import OwnerRef, Store, generate_gateway_secret
from tests.support.gatewaykeys import (
    PLURAL,
    apply_key,
    patch_key,
    rows,
    secret_value,
    wait_secret_changes,
)
from tests.support.operator import (
    GROUP,
    VERSION,
    OperatorProcess,
    condition,
    custom,
    get_obj,
    make_secret,
    wait_condition,
)
from tests.support.wait import wait_for

pytestmark = pytest.mark.e2e

FAST = {"AIGW_HEARTBEAT_INTERVAL_S": "5"}


def heartbeat(op: OperatorProcess, secret: str) -> int:
    """What coderd does when a gateway holding ``secret`` connects or beats."""
    with psycopg.connect(op.database_url, autocommit=True) as conn:
        cur = conn.execute(
            "UPDATE ai_gateway_keys SET last_heartbeat_at = now() WHERE hashed_secret = %s",
            (hashlib.sha256(secret.encode()).digest(),),
        )
        return cur.rowcount


def assert_row_matches(op: OperatorProcess, secret: str, name: str) -> tuple[Any, ...]:
    digest = hashlib.sha256(secret.encode()).digest()
    (row,) = [r for r in rows(op) if r[1] == name]
    assert row[3] == digest, "row hash is not sha256 of the Secret's key"
    assert row[2] == secret[:11]
    return row


def audit_times(op: OperatorProcess, key_id: uuid.UUID, action: str) -> list[datetime]:
    """When Coder's audit log says the key row ``key_id`` was created or deleted."""
    with psycopg.connect(op.database_url) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT \"time\" FROM audit_logs WHERE resource_type = 'ai_gateway_key' "
                "AND resource_id = %s AND action = %s ORDER BY 1",
                (key_id, action),
            ).fetchall()
        ]


def events(api: client.ApiClient, namespace: str, reason: str) -> list[client.CoreV1Event]:
    return [
        e
        for e in client.CoreV1Api(api).list_namespaced_event(namespace).items
        if e.reason == reason
    ]


def assert_never_leaked(
    op: OperatorProcess, api: client.ApiClient, namespace: str, secrets: list[str]
) -> None:
    """Canary check: no plaintext (nor its private suffix) in the log, Events or status."""
    everything = op.log()
    everything += " ".join(
        e.message or "" for e in client.CoreV1Api(api).list_namespaced_event(namespace).items
    )
    everything += json.dumps(
        custom(api).list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    )
    for secret in secrets:
        assert secret not in everything
        assert secret[11:30] not in everything


def test_issue_deliver_heartbeat_and_secret_lost_or_tampered(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    op = operator_factory(extra_env=FAST)
    apply_key(k8s_api, namespace, "gw-main")
    obj = wait_condition(k8s_api, namespace, PLURAL, "gw-main", "Ready")
    first = secret_value(k8s_api, namespace, "gw-main-key")
    assert first is not None
    assert len(first) == 43
    assert first.startswith("cgw_")
    row = assert_row_matches(op, first, "gw-main")
    status = obj["status"]
    assert status["keyID"] == str(row[0])
    assert status["keyPrefix"] == first[:11]
    assert status["keyName"] == "gw-main"
    assert status["secretName"] == "gw-main-key"
    assert status["createdAt"]
    assert condition(obj, "InUse")["reason"] == "NeverConnected"  # type: ignore[index]
    sec = client.CoreV1Api(k8s_api).read_namespaced_secret("gw-main-key", namespace)
    (ref,) = sec.metadata.owner_references
    assert (ref.kind, ref.name, ref.uid) == (
        "AIGatewayCoderdKey",
        "gw-main",
        obj["metadata"]["uid"],
    )
    assert sec.metadata.labels["aigateway.dev/gateway-key"] == "gw-main"
    assert sec.metadata.annotations["aigateway.dev/key-id"] == str(row[0])

    # Heartbeat mirrored into status, InUse=True.
    assert heartbeat(op, first) == 1
    obj = wait_condition(k8s_api, namespace, PLURAL, "gw-main", "InUse", timeout=20)
    assert obj["status"]["lastHeartbeatAt"]

    # Secret deleted: a new key within seconds, a Warning, the old row gone.
    client.CoreV1Api(k8s_api).delete_namespaced_secret("gw-main-key", namespace)
    second = wait_secret_changes(k8s_api, namespace, "gw-main-key", first, timeout=15)
    wait_for(lambda: len(rows(op)) == 1 and rows(op)[0][2] == second[:11], 15, "row replaced")
    assert_row_matches(op, second, "gw-main")
    wait_for(lambda: events(k8s_api, namespace, "SecretLost"), 15, "SecretLost event")
    assert events(k8s_api, namespace, "SecretLost")[0].type == "Warning"

    # Tampered value: same story.
    client.CoreV1Api(k8s_api).patch_namespaced_secret(
        "gw-main-key", namespace, {"stringData": {"key": "cgw_" + "x" * 39}}
    )
    third = wait_secret_changes(k8s_api, namespace, "gw-main-key", "cgw_" + "x" * 39)
    assert third != second
    wait_for(lambda: len(rows(op)) == 1 and rows(op)[0][2] == third[:11], 15, "row replaced")
    assert_row_matches(op, third, "gw-main")
    wait_for(lambda: events(k8s_api, namespace, "SecretTampered"), 15, "SecretTampered event")
    obj = wait_condition(k8s_api, namespace, PLURAL, "gw-main", "Ready")
    assert obj["status"]["keyPrefix"] == third[:11]

    assert_never_leaked(op, k8s_api, namespace, [first, second, third])


def test_rotation_keeps_the_old_key_for_the_grace_period_then_until_it_is_unused(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    # coderd's heartbeat period as 2 s: the old key counts as unused 3 s after its last beat.
    op = operator_factory(extra_env={**FAST, "AIGW_GATEWAY_HEARTBEAT_PERIOD_S": "2"})
    apply_key(k8s_api, namespace, "rot", {"keyName": "gw-rot", "secretName": "gw-rot-secret"})
    wait_condition(k8s_api, namespace, PLURAL, "rot", "Ready")
    old = secret_value(k8s_api, namespace, "gw-rot-secret")
    assert old is not None
    old_row = assert_row_matches(op, old, "gw-rot")

    patch_key(k8s_api, namespace, "rot", {"spec": {"rotation": {"generation": 1}}})
    new = wait_secret_changes(k8s_api, namespace, "gw-rot-secret", old)
    obj = wait_condition(k8s_api, namespace, PLURAL, "rot", "Issued", reason="Rotating")
    new_row = assert_row_matches(op, new, "gw-rot")
    by_id = {r[0]: r for r in rows(op)}
    assert by_id[old_row[0]][1] == "gw-rot-retiring-1"  # renamed, still authenticates by hash
    assert heartbeat(op, old) == 1
    rotation = obj["status"]["rotation"]
    assert rotation["generation"] == 1
    assert rotation["previousKeyID"] == str(old_row[0])
    assert rotation["previousKeyPrefix"] == old[:11]
    assert rotation["retireAfter"]
    assert obj["status"]["keyID"] == str(new_row[0])

    # The default grace period is an hour, the earliest retirement: a gateway using the new
    # key does not cut it short (another replica may still hold the old key).
    assert heartbeat(op, new) == 1
    wait_for(
        lambda: get_obj(k8s_api, namespace, PLURAL, "rot")["status"].get("lastHeartbeatAt"),
        20,
        "a pass that saw the new key's heartbeat",
    )
    assert {r[0] for r in rows(op)} == {old_row[0], new_row[0]}
    # With a short grace period, the old key (silent for 3 s) goes: the new one is in use.
    short = {"spec": {"rotation": {"generation": 1, "gracePeriod": "1s"}}}
    patch_key(k8s_api, namespace, "rot", short)
    wait_for(lambda: [r[0] for r in rows(op)] == [new_row[0]], 30, "old row deleted")
    obj = wait_condition(k8s_api, namespace, PLURAL, "rot", "Issued", reason="Issued")
    assert "previousKeyID" not in obj["status"]["rotation"]
    retired = wait_for(lambda: events(k8s_api, namespace, "KeyRetired"), 10, "KeyRetired event")
    assert "a gateway uses the new key" in (retired[0].message or "")
    assert_never_leaked(op, k8s_api, namespace, [old, new])


def test_rotation_retires_old_key_after_grace_period(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    op = operator_factory(extra_env=FAST)
    apply_key(k8s_api, namespace, "grace", {"rotation": {"gracePeriod": "5s"}})
    wait_condition(k8s_api, namespace, PLURAL, "grace", "Ready")
    old = secret_value(k8s_api, namespace, "grace-key")
    assert old is not None
    old_id = assert_row_matches(op, old, "grace")[0]
    patch_key(k8s_api, namespace, "grace", {"spec": {"rotation": {"generation": 3}}})
    new = wait_secret_changes(k8s_api, namespace, "grace-key", old)
    # Nobody uses the new key: the old one goes once the 5 s grace period has passed. (One
    # row alone is no proof: the Secret holds the new key a moment before its row exists.)
    digest = hashlib.sha256(new.encode()).digest()
    wait_for(lambda: [r[3] for r in rows(op)] == [digest], 60, "only the new key's row left")
    new_id, _, _, _, _ = assert_row_matches(op, new, "grace")
    # Both rows authenticated for the whole grace period: the database's own record of when
    # the new key was written and the old one deleted (never a sample racing the 5 s).
    (issued,) = audit_times(op, new_id, "create")
    (retired,) = audit_times(op, old_id, "delete")
    assert retired - issued >= timedelta(seconds=5), (issued, retired)
    obj = wait_condition(k8s_api, namespace, PLURAL, "grace", "Issued", reason="Issued")
    assert obj["status"]["rotation"]["generation"] == 3
    retired = events(k8s_api, namespace, "KeyRetired")
    assert any("gracePeriod" in (e.message or "") for e in retired)


def wait_gc_watches_keys(api: client.ApiClient, namespace: str) -> None:
    """Wait until kube-controller-manager's garbage collector watches our kind.

    It rediscovers resources every 30 s, and an owner deleted before its kind is watched
    leaves its dependents behind. Probe it (no operator running): a ConfigMap owned by a
    throwaway object must vanish once the object is deleted; repeat until one does.
    """
    core = client.CoreV1Api(api)

    def probe() -> bool:
        name = f"gc-probe-{uuid.uuid4().hex[:8]}"
        owner = apply_key(api, namespace, name)
        ref = client.V1OwnerReference(
            api_version=f"{GROUP}/{VERSION}",
            kind="AIGatewayCoderdKey",
            name=name,
            uid=owner["metadata"]["uid"],
        )
        core.create_namespaced_config_map(
            namespace,
            client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, owner_references=[ref])),
        )
        custom(api).delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)

        def collected() -> bool:
            try:
                core.read_namespaced_config_map(name, namespace)
            except ApiException as exc:
                return exc.status == 404
            return False

        try:
            return wait_for(collected, 5, "probe ConfigMap collected")
        except AssertionError:
            return False

    wait_for(probe, 40, "the garbage collector to watch AIGatewayCoderdKeys", interval=0)


def test_deletion_blocked_while_in_use_then_forced_and_secret_collected(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    op = operator_factory(extra_env=FAST, start=False)
    wait_gc_watches_keys(k8s_api, namespace)
    op.start()
    apply_key(k8s_api, namespace, "busy")
    wait_condition(k8s_api, namespace, PLURAL, "busy", "Ready")
    secret = secret_value(k8s_api, namespace, "busy-key")
    assert secret is not None
    assert heartbeat(op, secret) == 1
    custom(k8s_api).delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "busy")

    def blocked() -> dict[str, Any] | None:
        obj = get_obj(k8s_api, namespace, PLURAL, "busy")
        c = condition(obj, "Ready")
        return obj if c and c["reason"] == "DeletionBlocked" else None

    wait_for(blocked, 20, "DeletionBlocked")
    assert len(rows(op)) == 1
    assert secret_value(k8s_api, namespace, "busy-key") == secret

    patch_key(
        k8s_api,
        namespace,
        "busy",
        {"metadata": {"annotations": {"aigateway.dev/force-delete": "true"}}},
    )

    def gone() -> bool:
        try:
            get_obj(k8s_api, namespace, PLURAL, "busy")
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, 30, "object deleted")
    assert rows(op) == []
    # The garbage collector removes the owned Secret with its owner.
    wait_for(lambda: secret_value(k8s_api, namespace, "busy-key") is None, 30, "Secret collected")


def test_foreign_secret_is_never_overwritten(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    op = operator_factory(extra_env=FAST)
    make_secret(k8s_api, namespace, "theirs", {"key": "not-ours"})
    apply_key(k8s_api, namespace, "foreign", {"secretName": "theirs"})
    obj = wait_condition(
        k8s_api, namespace, PLURAL, "foreign", "SecretInSync", "False", "SecretNotOwned"
    )
    assert condition(obj, "Ready")["status"] == "False"  # type: ignore[index]
    assert "spec.secretName" in condition(obj, "SecretInSync")["message"]  # type: ignore[index]
    assert secret_value(k8s_api, namespace, "theirs") == "not-ours"
    assert rows(op) == []


def test_name_conflict_with_a_row_we_did_not_create(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    op = operator_factory(extra_env=FAST)
    # Start with an empty object list so the schema exists, then add coderd's own key.
    apply_key(k8s_api, namespace, "first")
    wait_condition(k8s_api, namespace, PLURAL, "first", "Ready")
    foreign = uuid.uuid4()
    with psycopg.connect(op.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO ai_gateway_keys (id, created_at, name, secret_prefix, hashed_secret) "
            "VALUES (%s, now(), 'taken', 'abcdefghijk', %s)",
            (foreign, hashlib.sha256(b"coderd-made").digest()),
        )
    apply_key(k8s_api, namespace, "clash", {"keyName": "taken"})
    obj = wait_condition(k8s_api, namespace, PLURAL, "clash", "Issued", "False", "NameConflict")
    message = condition(obj, "Issued")["message"]  # type: ignore[index]
    assert "spec.keyName" in message
    assert "made in Coder" in message
    (row,) = [r for r in rows(op) if r[1] == "taken"]
    assert row[0] == foreign
    assert row[3] == hashlib.sha256(b"coderd-made").digest()
    assert secret_value(k8s_api, namespace, "clash-key") is None


def store_of(op: OperatorProcess) -> Settings:
    """Settings for a Store on the operator's database, as the operator opens it."""
    return Settings(  # type: ignore[call-arg]
        database_url=op.database_url,
        encryption_keys=base64.b64encode(op.encryption_key).decode(),
        instance_id=op.env.get("AIGW_INSTANCE_ID", "default"),
    )


def owner_of(op: OperatorProcess, namespace: str, name: str) -> OwnerRef:
    return OwnerRef(
        kind="AIGatewayCoderdKey",
        namespace=namespace,
        name=name,
        instance=op.env.get("AIGW_INSTANCE_ID", "default"),
    )


def journal(
    op: OperatorProcess, owner: OwnerRef, key_id: uuid.UUID, name: str, secret: str
) -> None:
    """What a pass does before it writes the Secret: the key journaled as pending."""

    async def run() -> None:
        async with await Store.open(store_of(op)) as store:
            await store.begin_gateway_key(owner, key_id, name, secret, rotating=False)

    asyncio.run(run())


def records(op: OperatorProcess) -> set[tuple[Any, ...]]:
    """(namespace, name, role, row_id) of every gateway-key ownership record."""
    with psycopg.connect(op.database_url) as conn:
        return {
            tuple(r)
            for r in conn.execute(
                "SELECT namespace, name, role, row_id FROM aigateway_operator.owners "
                "WHERE row_table = 'ai_gateway_keys'"
            ).fetchall()
        }


def owned_secret(
    api: client.ApiClient, namespace: str, name: str, owner: dict[str, Any], value: str,
    annotations: dict[str, str],
) -> str:  # fmt: skip
    """A key Secret as a pass writes it (owned by the object, labelled, annotated); its uid."""
    created = client.CoreV1Api(api).create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(
                name=name,
                labels={"aigateway.dev/gateway-key": owner["metadata"]["name"]},
                annotations=annotations,
                owner_references=[
                    client.V1OwnerReference(
                        api_version=f"{GROUP}/{VERSION}",
                        kind="AIGatewayCoderdKey",
                        name=owner["metadata"]["name"],
                        uid=owner["metadata"]["uid"],
                        controller=True,
                    )
                ],
            ),
            string_data={"key": value},
        ),
    )
    return str(created.metadata.uid)


def test_crash_between_secret_and_row_is_completed_on_restart(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    """The state a kill -9 leaves after the Secret write and before the row insert: the key
    journaled, the Secret holding it, no row. The restart inserts exactly that key."""
    op = operator_factory(extra_env=FAST, start=False)
    obj = apply_key(k8s_api, namespace, "crashy")
    planted = generate_gateway_secret()
    key_id = uuid.uuid4()
    journal(op, owner_of(op, namespace, "crashy"), key_id, "crashy", planted)
    planted_uid = owned_secret(
        k8s_api, namespace, "crashy-key", obj, planted, {"aigateway.dev/key-id": str(key_id)}
    )
    assert rows(op) == []
    op.start()
    obj = wait_condition(k8s_api, namespace, PLURAL, "crashy", "Ready", timeout=60)
    # Completed, not churned: the row is the planted key (its id, its hash), the Secret still
    # holds the planted value, and the status names the planted id.
    held = secret_value(k8s_api, namespace, "crashy-key")
    assert held == planted  # delivered once, completed, never churned
    row = assert_row_matches(op, planted, "crashy")
    assert row[0] == key_id
    assert obj["status"]["keyID"] == str(key_id)
    assert obj["status"]["keyPrefix"] == planted[:11]
    assert len(rows(op)) == 1
    assert records(op) == {(namespace, "crashy", "current", key_id)}
    sec = client.CoreV1Api(k8s_api).read_namespaced_secret("crashy-key", namespace)
    assert sec.metadata.uid == planted_uid, "the planted Secret was replaced, not completed"
    assert sec.metadata.annotations["aigateway.dev/key-id"] == str(key_id)

    # And a row left without its Secret (Secret lost while the operator was down).
    op.stop()
    client.CoreV1Api(k8s_api).delete_namespaced_secret("crashy-key", namespace)
    op.start()
    fresh = wait_secret_changes(k8s_api, namespace, "crashy-key", held, timeout=60)
    wait_for(lambda: len(rows(op)) == 1 and rows(op)[0][2] == fresh[:11], 20, "re-issued")
    assert_row_matches(op, fresh, "crashy")
    assert_never_leaked(op, k8s_api, namespace, [held, fresh])


def test_crash_before_the_secret_write_never_inserts_the_journaled_key(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    """The state a kill -9 leaves after the journal and before the Secret write: nobody has
    that plaintext, so it is discarded and another key issued."""
    op = operator_factory(extra_env=FAST, start=False)
    apply_key(k8s_api, namespace, "early")
    lost, lost_id = generate_gateway_secret(), uuid.uuid4()
    journal(op, owner_of(op, namespace, "early"), lost_id, "early", lost)
    op.start()
    obj = wait_condition(k8s_api, namespace, PLURAL, "early", "Ready", timeout=60)
    held = secret_value(k8s_api, namespace, "early-key")
    assert held is not None
    assert held != lost
    (row,) = rows(op)
    assert row[0] != lost_id
    assert row[3] == hashlib.sha256(held.encode()).digest()
    assert obj["status"]["keyID"] == str(row[0])
    assert records(op) == {(namespace, "early", "current", row[0])}
