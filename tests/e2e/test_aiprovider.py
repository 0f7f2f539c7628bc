"""AIProvider end to end: the operator process, the real API server, Postgres and STS."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kubernetes import client

from tests.support.db import table_versions
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
from tests.support.providers import (
    PLURAL,
    SHARED,
    apply_provider,
    decrypt,
    encrypt_like_coderd,
    openai_spec,
    provider_keys,
    provider_rows,
)
from tests.support.rbac import sa_token
from tests.support.wait import wait_for

pytestmark = pytest.mark.e2e

CANARY_A = "sk-canary-AAAA-0123456789abcdefghijklmnop"
CANARY_B = "sk-canary-BBBB-0123456789abcdefghijklmnop"


def test_provider_synced_from_secret_and_secret_edit_propagates(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    op = operator_factory()
    make_secret(k8s_api, namespace, "llm-keys", {"a": CANARY_A, "b": CANARY_B})
    apply_provider(k8s_api, namespace, "openai-main", openai_spec("a", "b"))
    obj = wait_condition(k8s_api, namespace, PLURAL, "openai-main", "Ready")

    rows = provider_rows(op, "openai-main")
    assert len(rows) == 1
    pid, ptype, enabled, deleted, base_url, display = rows[0]
    assert (ptype, enabled, deleted, display) == ("openai", True, False, "OpenAI")
    assert base_url == "https://api.openai.com/v1/"
    assert provider_keys(op, pid) == [CANARY_A, CANARY_B]
    with psycopg.connect(op.database_url) as conn:
        raw = conn.execute("SELECT api_key FROM ai_provider_keys").fetchall()
    assert all(CANARY_A not in r[0] and CANARY_B not in r[0] for r in raw)  # encrypted at rest

    status = obj["status"]
    assert status["providerID"] == str(pid)
    assert status["providerName"] == "openai-main"  # defaulted from metadata.name
    assert status["keyCount"] == 2
    assert [k["masked"] for k in status["apiKeys"]] == ["sk-c...mnop", "sk-c...mnop"]
    assert status["apiKeys"][0]["fingerprint"] != status["apiKeys"][1]["fingerprint"]
    assert status["apiKeys"][0]["secretKeyRef"] == {"name": "llm-keys", "key": "a"}
    assert status["encryptionKeyDigest"]

    # A Secret edit reaches the database and a LISTEN connection (how fast is bench/'s
    # question: bench_operator.py measures edit -> notify; here it must happen at all).
    with psycopg.connect(op.database_url, autocommit=True) as listener:
        listener.execute("LISTEN ai_providers_changed")
        client.CoreV1Api(k8s_api).patch_namespaced_secret(
            "llm-keys", namespace, {"stringData": {"b": CANARY_B + "-rotated"}}
        )
        got = next(listener.notifies(timeout=60), None)  # a bound for loaded machines
    assert got is not None, "no notify after the Secret edit"
    assert got.channel == "ai_providers_changed"
    assert provider_keys(op, pid) == [CANARY_A, CANARY_B + "-rotated"]

    # Nothing secret in the log, the status or the Events.
    events = client.CoreV1Api(k8s_api).list_namespaced_event(namespace)
    everything = op.log() + json.dumps(get_obj(k8s_api, namespace, PLURAL, "openai-main"))
    everything += " ".join(e.message or "" for e in events.items)
    for canary in (CANARY_A, CANARY_B):
        assert canary not in everything
        assert canary[5:20] not in everything


def test_missing_secret_touches_nothing_then_converges(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    op = operator_factory()
    apply_provider(k8s_api, namespace, "late", openai_spec("a", secret="late-keys"))
    obj = wait_condition(
        k8s_api, namespace, PLURAL, "late", "SecretsResolved", "False", "SecretNotFound"
    )
    message = condition(obj, "SecretsResolved")["message"]  # type: ignore[index]
    assert "spec.apiKeys[0].secretKeyRef" in message
    assert "late-keys" in message
    assert condition(obj, "Ready")["status"] == "False"  # type: ignore[index]
    assert provider_rows(op, "late") == []
    make_secret(k8s_api, namespace, "late-keys", {"a": CANARY_A})
    wait_condition(k8s_api, namespace, PLURAL, "late", "Ready", timeout=30)
    assert len(provider_rows(op, "late")) == 1


def test_delete_soft_deletes_and_removes_keys(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    op = operator_factory()
    make_secret(k8s_api, namespace, "llm-keys", {"a": CANARY_A})
    apply_provider(k8s_api, namespace, "gone", openai_spec("a"))
    obj = wait_condition(k8s_api, namespace, PLURAL, "gone", "Ready")
    assert "aigateway.dev/finalizer" in obj["metadata"]["finalizers"]
    custom(k8s_api).delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "gone")

    def deleted() -> bool:
        rows = provider_rows(op, "gone")
        return len(rows) == 1 and rows[0][3] is True and rows[0][2] is False

    wait_for(deleted, 30, "row soft-deleted")
    assert provider_keys(op, provider_rows(op, "gone")[0][0]) == []


def test_drift_is_reverted(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    op = operator_factory()
    make_secret(k8s_api, namespace, "llm-keys", {"a": CANARY_A})
    apply_provider(k8s_api, namespace, "drifty", openai_spec("a"))
    wait_condition(k8s_api, namespace, PLURAL, "drifty", "Ready")
    # What coderd's PATCH does: update the row, bump updated_at, notify.
    with psycopg.connect(op.database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE ai_providers SET display_name = 'hacked', updated_at = now() "
            "WHERE name = 'drifty'"
        )
        conn.execute("SELECT pg_notify('ai_providers_changed', '')")
    wait_for(lambda: provider_rows(op, "drifty")[0][5] == "OpenAI", 15, "drift reverted")

    def reverted_event() -> bool:
        events = client.CoreV1Api(k8s_api).list_namespaced_event(namespace)
        return any(e.reason == "DriftReverted" for e in events.items)

    wait_for(reverted_event, 15, "DriftReverted event")


AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def test_bedrock_with_static_keys_is_verified_with_sts(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    op = operator_factory()
    make_secret(
        k8s_api,
        namespace,
        "aws",
        {"AWS_ACCESS_KEY_ID": AWS_KEY_ID, "AWS_SECRET_ACCESS_KEY": AWS_SECRET},
    )
    apply_provider(
        k8s_api,
        namespace,
        "claude",
        {
            "type": "bedrock",
            "bedrock": {
                "region": "us-east-1",
                "roleARN": "arn:aws:iam::210987654321:role/BedrockInvoke",
                "externalID": "coder-ext-1",
                "credentialsSecretRef": {"name": "aws"},
            },
        },
    )
    obj = wait_condition(k8s_api, namespace, PLURAL, "claude", "Ready")
    assert condition(obj, "CredentialsValid")["reason"] == "Verified"  # type: ignore[index]
    bedrock = obj["status"]["bedrock"]
    assert bedrock["assumedRoleARN"].startswith(
        "arn:aws:sts::210987654321:assumed-role/BedrockInvoke/"
    )
    assert bedrock["lastVerifiedAt"]
    with psycopg.connect(op.database_url) as conn:
        settings, key_id, base_url = conn.execute(
            "SELECT settings, settings_key_id, base_url FROM ai_providers WHERE name = 'claude'"
        ).fetchone()  # type: ignore[misc]
    plain = json.loads(decrypt(op.encryption_key, settings, key_id))
    assert plain["_type"] == "bedrock"
    assert plain["_version"] == 1
    assert plain["access_key"] == AWS_KEY_ID
    assert plain["role_arn"] == "arn:aws:iam::210987654321:role/BedrockInvoke"
    assert plain["external_id"] == "coder-ext-1"
    assert plain["model"]
    assert plain["small_fast_model"]
    assert base_url == "https://bedrock-runtime.us-east-1.amazonaws.com"
    assert AWS_SECRET not in op.log() + json.dumps(obj)


def test_bedrock_with_irsa_identity(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
    tmp_path: Any,
) -> None:
    """No static keys: the operator's ambient identity (IRSA web identity, with a real
    ServiceAccount token from the API server, as EKS projects it) is verified."""
    client.CoreV1Api(k8s_api).create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="operator"))
    )
    jwt = sa_token(k8s_api, namespace, "operator", audience="sts.amazonaws.com")
    token = tmp_path / "token"
    token.write_text(jwt)
    op = operator_factory(
        extra_env={
            "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/aigw-operator",
            "AWS_WEB_IDENTITY_TOKEN_FILE": str(token),
        },
        start=False,
    )
    # No static keys at all in the process's environment (set before it starts): the web
    # identity is the only credential the default chain can find.
    static = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    for name in static:
        op.env.pop(name, None)
    op.start()
    assert op.proc is not None
    environ = Path(f"/proc/{op.proc.pid}/environ").read_bytes().split(b"\0")
    assert not [e for e in environ if e.split(b"=", 1)[0].decode() in static]
    apply_provider(
        k8s_api,
        namespace,
        "claude-irsa",
        {
            "type": "anthropic",
            "bedrock": {
                "region": "eu-west-1",
                "roleARN": "arn:aws:iam::210987654321:role/CrossAccountBedrock",
            },
        },
    )
    obj = wait_condition(k8s_api, namespace, PLURAL, "claude-irsa", "Ready")
    bedrock = obj["status"]["bedrock"]
    assert ":assumed-role/aigw-operator/" in bedrock["callerARN"]
    assert bedrock["assumedRoleARN"].startswith(
        "arn:aws:sts::210987654321:assumed-role/CrossAccountBedrock/"
    )
    rows = provider_rows(op, "claude-irsa")
    # Bedrock is written as its own type, as coderd's backfill leaves such a row (#19).
    assert rows[0][1] == "bedrock"
    everything = op.log() + json.dumps(obj)
    assert jwt not in everything
    assert jwt.split(".")[1] not in everything


def test_provider_name_conflict_across_namespaces_older_wins(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    other = namespace + "-b"
    core = client.CoreV1Api(k8s_api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=other)))
    op = operator_factory(namespaces=[namespace, other])
    try:
        for ns in (namespace, other):
            make_secret(k8s_api, ns, "llm-keys", {"a": CANARY_A})
        apply_provider(k8s_api, namespace, "first", {**openai_spec("a"), "providerName": "shared"})
        wait_condition(k8s_api, namespace, PLURAL, "first", "Ready")
        apply_provider(k8s_api, other, "second", {**openai_spec("a"), "providerName": "shared"})
        obj = wait_condition(k8s_api, other, PLURAL, "second", "Synced", "False", "NameConflict")
        assert f"{namespace}/first" in condition(obj, "Synced")["message"]  # type: ignore[index]
        assert len(provider_rows(op, "shared")) == 1
        # The older one goes away: the newer one takes the name over.
        custom(k8s_api).delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "first")
        wait_condition(k8s_api, other, PLURAL, "second", "Ready", timeout=30)
        live = [r for r in provider_rows(op, "shared") if not r[3]]
        assert len(live) == 1
    finally:
        core.delete_namespace(other)


def test_existing_row_is_not_touched_unless_adopted(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    # Adoption is for the namespaces the platform team names (none by default).
    op = operator_factory(extra_env={"AIGW_ADOPTION_NAMESPACES": namespace})
    make_secret(k8s_api, namespace, "llm-keys", {"a": CANARY_A})
    # Bootstrap the schema through a first provider, then create a row "by hand" (as coderd).
    apply_provider(k8s_api, namespace, "boot", openai_spec("a"))
    wait_condition(k8s_api, namespace, PLURAL, "boot", "Ready")
    with psycopg.connect(op.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO ai_providers (type, name, display_name, base_url) "
            "VALUES ('openai', 'manual', 'Made in the UI', 'https://api.openai.com/v1/')"
        )
    apply_provider(k8s_api, namespace, "manual", openai_spec("a"))
    obj = wait_condition(k8s_api, namespace, PLURAL, "manual", "Synced", "False", "NameConflict")
    assert "adoptExisting" in condition(obj, "Synced")["message"]  # type: ignore[index]
    assert provider_rows(op, "manual")[0][5] == "Made in the UI"
    custom(k8s_api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "manual", {"spec": {"adoptExisting": True}}
    )
    wait_condition(k8s_api, namespace, PLURAL, "manual", "Ready")
    rows = provider_rows(op, "manual")
    assert len(rows) == 1
    assert rows[0][5] == "OpenAI"
    assert provider_keys(op, rows[0][0]) == [CANARY_A]


def test_orphan_policy_and_report_drift_policy(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    op = operator_factory()
    make_secret(k8s_api, namespace, "llm-keys", {"a": CANARY_A})
    spec = {**openai_spec("a"), "deletionPolicy": "Orphan", "driftPolicy": "Report"}
    apply_provider(k8s_api, namespace, "keep", spec)
    wait_condition(k8s_api, namespace, PLURAL, "keep", "Ready")
    with psycopg.connect(op.database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE ai_providers SET display_name = 'edited in UI', updated_at = now() "
            "WHERE name = 'keep'"
        )
        conn.execute("SELECT pg_notify('ai_providers_changed', '')")
    obj = wait_condition(k8s_api, namespace, PLURAL, "keep", "Synced", "False", "Drifted")
    assert "display_name" in condition(obj, "Synced")["message"]  # type: ignore[index]
    assert provider_rows(op, "keep")[0][5] == "edited in UI"  # reported, not reverted
    custom(k8s_api).delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "keep")

    def gone() -> bool:
        objs = custom(k8s_api).list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        return all(o["metadata"]["name"] != "keep" for o in objs["items"])

    wait_for(gone, 30, "object deleted")
    rows = provider_rows(op, "keep")
    assert len(rows) == 1
    assert rows[0][3] is False  # still live: orphaned
    assert provider_keys(op, rows[0][0]) == [CANARY_A]


def test_quiet_restart_writes_nothing(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    """A restart with everything in sync: zero database writes, zero status patches."""
    op = operator_factory()
    make_secret(k8s_api, namespace, "llm-keys", {"a": CANARY_A, "b": CANARY_B})
    names = [f"quiet-{i}" for i in range(5)]
    for n in names:
        apply_provider(k8s_api, namespace, n, openai_spec("a", "b"))
    for n in names:
        wait_condition(k8s_api, namespace, PLURAL, n, "Ready")

    def settled() -> bool:  # all five on api.openai.com: each is told, the first one too
        return all(
            SHARED in (condition(get_obj(k8s_api, namespace, PLURAL, n), "Synced") or {})["message"]
            for n in names
        )

    wait_for(settled, 30, "every provider told that it shares its hostname")
    before_objs = {n: get_obj(k8s_api, namespace, PLURAL, n) for n in names}
    before_db = table_versions(op.database_url)
    op.stop()
    log_before = len(op.log())
    op.start()

    def resumed_all() -> bool:
        return op.log()[log_before:].count("AIProvider pass done") >= len(names)

    wait_for(resumed_all, 60, "a start-up pass over every object")
    after_objs = {n: get_obj(k8s_api, namespace, PLURAL, n) for n in names}
    for n in names:
        assert after_objs[n]["metadata"] == before_objs[n]["metadata"], n
        assert after_objs[n]["status"] == before_objs[n]["status"], n
    assert table_versions(op.database_url) == before_db  # no INSERT/UPDATE/DELETE anywhere


def test_metrics_endpoint(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    import urllib.request

    from tools.devenv.procs import free_port

    port = free_port()
    op = operator_factory(extra_env={"AIGW_METRICS_PORT": str(port)})
    make_secret(k8s_api, namespace, "llm-keys", {"a": CANARY_A})
    apply_provider(k8s_api, namespace, "metered", openai_spec("a"))
    wait_condition(k8s_api, namespace, PLURAL, "metered", "Ready")

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            return str(resp.read().decode())

    text = scrape()
    assert 'aigw_reconciles_total{kind="AIProvider",result="synced"}' in text
    assert 'aigw_database_writes_total{action="created",kind="AIProvider"} 1.0' in text
    assert "aigw_notifies_total 1.0" in text
    assert "aigw_reconcile_duration_seconds_count" in text
    ready = (
        f'aigw_status_condition{{condition="Ready",kind="AIProvider",name="metered",'
        f'namespace="{namespace}",status="True"}} 1.0'
    )
    assert ready in text
    assert 'aigw_build_info{version="' in text
    assert "aigw_active_replica 1.0" in text
    assert 'aigw_last_sync_timestamp_seconds{kind="AIProvider",name="metered",' in text
    assert CANARY_A not in text
    assert op.alive()


def test_resync_reverifies_sts_and_catches_edits_made_without_notify(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    """No per-object timer: one loop re-verifies due Bedrock identities and compares rows."""
    op = operator_factory(
        extra_env={"AIGW_VERIFY_INTERVAL_S": "10", "AIGW_RESYNC_INTERVAL_S": "10"}
    )
    make_secret(
        k8s_api,
        namespace,
        "aws",
        {"AWS_ACCESS_KEY_ID": AWS_KEY_ID, "AWS_SECRET_ACCESS_KEY": AWS_SECRET},
    )
    apply_provider(
        k8s_api,
        namespace,
        "periodic",
        {
            "type": "bedrock",
            "bedrock": {"region": "us-east-1", "credentialsSecretRef": {"name": "aws"}},
        },
    )
    obj = wait_condition(k8s_api, namespace, PLURAL, "periodic", "Ready")
    first = obj["status"]["bedrock"]["lastVerifiedAt"]
    wait_for(
        lambda: (
            get_obj(k8s_api, namespace, PLURAL, "periodic")["status"]["bedrock"]["lastVerifiedAt"]
            != first
        ),
        40,
        "a periodic STS re-verification",
    )
    # A direct SQL edit, without the notify coderd would send: the resync still sees it.
    with psycopg.connect(op.database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE ai_providers SET enabled = false, updated_at = now() WHERE name = 'periodic'"
        )
    wait_for(lambda: provider_rows(op, "periodic")[0][2] is True, 40, "silent edit reverted")


def test_key_rows_edited_in_sql_are_restored_or_reported_by_the_resync(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    """#14: a key row deleted, or another validly encrypted key swapped in, by SQL and
    without a notify: the resync restores it (Revert) or reports it (Report)."""
    op = operator_factory(extra_env={"AIGW_RESYNC_INTERVAL_S": "10"})
    make_secret(k8s_api, namespace, "llm-keys", {"a": CANARY_A, "b": CANARY_B})
    apply_provider(k8s_api, namespace, "kept", openai_spec("a", "b"))
    apply_provider(
        k8s_api, namespace, "watched", {**openai_spec("a", "b"), "driftPolicy": "Report"}
    )
    for n in ("kept", "watched"):
        wait_condition(k8s_api, namespace, PLURAL, n, "Ready")
    kept, watched = provider_rows(op, "kept")[0][0], provider_rows(op, "watched")[0][0]
    assert provider_keys(op, kept) == [CANARY_A, CANARY_B]
    swapped = encrypt_like_coderd(op, "sk-swapped-in-0123456789")
    with psycopg.connect(op.database_url, autocommit=True) as conn:
        conn.execute(
            "DELETE FROM ai_provider_keys WHERE provider_id = %s AND id = (SELECT id FROM "
            "ai_provider_keys WHERE provider_id = %s ORDER BY created_at, id LIMIT 1)",
            (kept, kept),
        )
        conn.execute(
            "UPDATE ai_provider_keys SET api_key = %s WHERE provider_id = %s",
            (swapped, watched),
        )
    wait_for(
        lambda: provider_keys(op, kept) == [CANARY_A, CANARY_B], 60, "the deleted key restored"
    )
    obj = wait_condition(k8s_api, namespace, PLURAL, "watched", "Synced", "False", "Drifted")
    message = (condition(obj, "Synced") or {})["message"]
    assert "key" in message
    assert "sk-swapped-in" not in message
    assert provider_keys(op, watched) == ["sk-swapped-in-0123456789"] * 2, "Report writes nothing"
