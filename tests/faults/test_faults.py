"""Faults: API server crash, two active operators, a wrong encryption key, Postgres mid-batch."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from kubernetes import client, config

from tests.support import metrics
from tests.support.db import audit_problems, ownership_problems, table_versions, tables_exist
from tests.support.operator import (
    GROUP,
    VERSION,
    OperatorProcess,
    condition,
    custom,
    make_secret,
    wait_condition,
)
from tests.support.paths import repo_root
from tests.support.providers import (
    PLURAL,
    apply_provider,
    decrypt,
    openai_spec,
    provider_keys,
    provider_rows,
    row_id_of,
)
from tests.support.wait import wait_for
from tools.devenv import build, kube
from tools.devenv.crds import apply_crds
from tools.devenv.postgres import PostgresServer

pytestmark = pytest.mark.faults


def _digest(key: bytes) -> str:
    return hashlib.sha256(b"aes256gcm" + key).hexdigest()[:7]


@pytest.fixture(scope="module")
def own_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kube.ControlPlane]:
    """A control plane of this module's own: restarting it must not disturb other tests."""
    plane = kube.start(build.ensure_control_plane(), tmp_path_factory.mktemp("faultkube"))
    try:
        apply_crds(plane.kubeconfig, repo_root() / "crds")
        yield plane
    finally:
        plane.stop()


def test_apiserver_crash_watches_recover_without_missing_changes(
    own_plane: kube.ControlPlane,
    operator_factory: Callable[..., OperatorProcess],
) -> None:
    api = config.new_client_from_config(config_file=str(own_plane.kubeconfig))
    ns = f"f-{secrets.token_hex(4)}"
    client.CoreV1Api(api).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=ns))
    )
    op = operator_factory(extra_env={"KUBECONFIG": str(own_plane.kubeconfig)}, namespaces=[ns])
    make_secret(api, ns, "llm-keys", {"a": "sk-before-0123456789ab"})
    apply_provider(api, ns, "watched", openai_spec("a"))
    wait_condition(api, ns, PLURAL, "watched", "Ready")

    # The operator is frozen across the crash and the changes: its watches can reconnect
    # only after it is thawed, so the changes are made, provably, before they reconnected
    # (the operator must find them by listing again, not by a watch event).
    with op.frozen():
        own_plane.restart_apiserver()
        api = config.new_client_from_config(config_file=str(own_plane.kubeconfig))
        client.CoreV1Api(api).patch_namespaced_secret(
            "llm-keys", ns, {"stringData": {"a": "sk-after-0123456789abc"}}
        )
        apply_provider(api, ns, "created-after", openai_spec("a"))

    pid = provider_rows(op, "watched")[0][0]
    wait_for(
        lambda: provider_keys(op, pid) == ["sk-after-0123456789abc"], 90, "Secret edit applied"
    )
    wait_condition(api, ns, PLURAL, "created-after", "Ready", timeout=90)
    assert op.alive()
    api.close()


def test_two_active_operators_keep_the_database_correct(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    """Peering disabled by mistake: both act; lock 10 and idempotent writes keep it right."""
    first = operator_factory(metrics=True)
    second = operator_factory(
        database_url=first.database_url, encryption_key=first.encryption_key, metrics=True
    )
    make_secret(k8s_api, namespace, "llm-keys", {"a": "sk-dual-a-0123456789", "b": "sk-dual-b-0"})
    names = [f"dual-{i:02d}" for i in range(20)]
    for n in names:
        apply_provider(k8s_api, namespace, n, openai_spec("a", "b"))
    api = custom(k8s_api)
    uids = {
        o["metadata"]["name"]: o["metadata"]["uid"]
        for o in api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
    }
    # Three deleted while both operators create them, five once their rows exist, while
    # both operators also race to apply a rotated Secret value.
    early, late, live = names[:3], names[3:8], names[8:]
    for n in early:
        api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, n)
    for n in late:
        wait_condition(k8s_api, namespace, PLURAL, n, "Ready", timeout=90)
    client.CoreV1Api(k8s_api).patch_namespaced_secret(
        "llm-keys", namespace, {"stringData": {"b": "sk-dual-b-rotated"}}
    )
    for n in late:
        api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, n)
    for n in live:
        wait_condition(k8s_api, namespace, PLURAL, n, "Ready", timeout=90)

    def converged() -> bool:
        with psycopg.connect(first.database_url) as conn:
            rows = conn.execute(
                "SELECT p.name, k.api_key, k.api_key_key_id FROM ai_providers p "
                "JOIN ai_provider_keys k ON k.provider_id = p.id WHERE NOT p.deleted "
                "ORDER BY p.name, k.created_at, k.id"
            ).fetchall()
        got: dict[str, list[str]] = {}
        for name, key, key_id in rows:
            got.setdefault(name, []).append(decrypt(first.encryption_key, key, key_id))
        expected = ["sk-dual-a-0123456789", "sk-dual-b-rotated"]
        return got == dict.fromkeys(live, expected)

    wait_for(converged, 90, "one live row per object, exactly the Secret's keys")

    def released() -> bool:
        items = api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
        return {o["metadata"]["name"] for o in items} == set(live)

    wait_for(released, 90, "the deleted objects released by their finalizers")

    # Both really acted: each ran a pass over every object (its own log says so; a pass may
    # still be finishing when the rows converged through the other one, hence the wait) ...
    for op in (first, second):

        def missed(op: OperatorProcess = op) -> list[str]:
            log = op.log()
            return [n for n in live if f"[{namespace}/{n}] AIProvider pass done" not in log]

        wait_for(lambda op=op: not missed(op), 60, f"{op.log_path.name} to handle every object")
        assert metrics.value(op.metrics(), "aigw_reconciles_total", kind="AIProvider") >= len(live)

    # ... and what the unique index on live names does not guarantee holds too: no second
    # row of an object (live or soft-deleted), one ownership record per live object and none
    # for the deleted ones, and an audit log without a change recorded twice.
    with psycopg.connect(first.database_url) as conn:
        rows = conn.execute("SELECT name, id, deleted FROM ai_providers").fetchall()
        dead_keys = conn.execute(
            "SELECT count(*) FROM ai_provider_keys k JOIN ai_providers p "
            "ON p.id = k.provider_id WHERE p.deleted"
        ).fetchone()
    assert dead_keys == (0,)  # a deleted provider keeps no keys
    assert {n: rid for n, rid, deleted in rows if not deleted} == {
        n: row_id_of(namespace, n) for n in live
    }
    assert {n: rid for n, rid, deleted in rows if deleted} == {
        n: row_id_of(namespace, n) for n, _, deleted in rows if deleted
    }
    dead = {n for n, _, deleted in rows if deleted}
    assert set(late) <= dead <= set(early + late)  # rows that existed are soft-deleted
    gone = {n: uids[n] for n in early + late}
    assert ownership_problems(first.database_url, {n: uids[n] for n in live}, gone) == []
    assert audit_problems(first.database_url) == []
    assert first.alive()
    assert second.alive()


def test_wrong_encryption_key_fails_closed(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    right = operator_factory()
    make_secret(k8s_api, namespace, "llm-keys", {"a": "sk-keyed-0123456789ab"})
    apply_provider(k8s_api, namespace, "keyed", openai_spec("a"))
    before = wait_condition(k8s_api, namespace, PLURAL, "keyed", "Ready")
    right.stop()
    rows_before = table_versions(right.database_url)

    wrong_key = secrets.token_bytes(32)
    wrong = operator_factory(
        database_url=right.database_url,
        encryption_key=wrong_key,
        coderd_has_key=False,
    )
    # Make a change the wrong operator would otherwise write.
    custom(k8s_api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "keyed", {"spec": {"displayName": "changed"}}
    )
    assert wrong.wait_exit(60) == 1
    log = wrong.log()
    assert "refusing to start" in log
    assert _digest(wrong_key) in log  # says which key, by digest
    assert base64.b64encode(wrong_key).decode() not in log
    # Nothing written anywhere: no provider, key, audit or ownership row, no key row added.
    assert rows_before["ai_providers"]  # there was something to touch
    assert rows_before["audit_logs"]
    assert table_versions(right.database_url) == rows_before
    after = custom(k8s_api).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "keyed")
    assert after["status"] == before["status"]


def test_without_keys_the_operator_refuses_to_start_and_plaintext_is_refused_on_the_object(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    """#14: no keys and plaintext not chosen: exit 1 at start, nothing written. Plaintext
    chosen while coderd encrypts (an active dbcrypt key): the object says PlaintextRefused
    and not one secret column is written in plaintext."""
    bare = operator_factory(extra_env={"AIGW_ENCRYPTION_KEYS": ""})
    assert bare.wait_exit(60) == 1
    log = bare.log()
    assert "refusing to start" in log
    assert "AIGW_ALLOW_PLAINTEXT" in log
    assert (
        not tables_exist(bare.database_url)
        or table_versions(bare.database_url)["ai_providers"] == []
    )

    keyed = operator_factory()  # coderd's shape: an active dbcrypt key in the database
    make_secret(k8s_api, namespace, "llm-keys", {"a": "sk-plain-0123456789ab"})
    apply_provider(k8s_api, namespace, "first", openai_spec("a"))
    wait_condition(k8s_api, namespace, PLURAL, "first", "Ready")
    keyed.stop()
    before = table_versions(keyed.database_url)
    plain = operator_factory(
        database_url=keyed.database_url,
        extra_env={"AIGW_ENCRYPTION_KEYS": "", "AIGW_ALLOW_PLAINTEXT": "true"},
    )
    apply_provider(k8s_api, namespace, "second", openai_spec("a"))
    obj = wait_condition(
        k8s_api, namespace, PLURAL, "second", "Synced", "False", "PlaintextRefused"
    )
    assert "AIGW_ENCRYPTION_KEYS" in (condition(obj, "Synced") or {})["message"]
    assert (condition(obj, "Stalled") or {})["status"] == "True"
    assert plain.alive()
    after = table_versions(keyed.database_url)
    assert after["ai_provider_keys"] == before["ai_provider_keys"]
    assert after["ai_providers"] == before["ai_providers"]
    with psycopg.connect(keyed.database_url) as conn:
        (plaintext,) = conn.execute(
            "SELECT count(*) FROM ai_provider_keys WHERE api_key_key_id IS NULL"
        ).fetchone() or (None,)
    assert plaintext == 0


def test_postgres_crash_mid_batch_loses_and_duplicates_nothing(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
    postgres: PostgresServer,
    tmp_path: Path,
) -> None:
    # One pass at a time, so the batch takes long enough to be caught in the middle.
    op = operator_factory(extra_env={"AIGW_MAX_WORKERS": "1"})
    make_secret(k8s_api, namespace, "llm-keys", {"a": "sk-batch-a-0123456789", "b": "sk-b-012"})
    names = [f"batch-{i:02d}" for i in range(30)]
    for n in names:
        apply_provider(k8s_api, namespace, n, openai_spec("a", "b"))
    uids = {
        o["metadata"]["name"]: o["metadata"]["uid"]
        for o in custom(k8s_api).list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)[
            "items"
        ]
    }
    wait_for(lambda: len(_live(op)) >= 3, 60, "a few providers written")
    # Frozen between two steps, the operator is provably mid-batch when Postgres crashes:
    # some providers are written, some are not, and its open transactions die with the server.
    with op.frozen():
        written = len(_live(op))
        assert 0 < written < len(names), f"not mid-batch: {written} of {len(names)} written"
        postgres.stop(mode="immediate", remove=False)
    try:

        def outage_seen() -> bool:
            items = custom(k8s_api).list_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL
            )["items"]
            return any(
                c.get("reason") == "DatabaseUnavailable"
                for o in items
                for c in (o.get("status") or {}).get("conditions") or []
            )

        wait_for(outage_seen, 60, "an object to report DatabaseUnavailable during the outage")
    finally:
        postgres.start_again()
    for n in names:
        wait_condition(k8s_api, namespace, PLURAL, n, "Ready", timeout=120)
    # One row per object, none lost or doubled: every row is its object's own (by id), and
    # no object has a second one, soft-deleted or live.
    with psycopg.connect(op.database_url) as conn:
        rows = conn.execute("SELECT name, id, deleted FROM ai_providers").fetchall()
    assert sorted(rows) == sorted((n, row_id_of(namespace, n), False) for n in names)
    for name, pid, _ in rows:
        assert provider_keys(op, pid) == ["sk-batch-a-0123456789", "sk-b-012"], name
    assert ownership_problems(op.database_url, uids, {}) == []
    assert audit_problems(op.database_url) == []
    assert op.alive()


def _live(op: OperatorProcess) -> dict[str, object]:
    with psycopg.connect(op.database_url) as conn:
        try:
            rows = conn.execute("SELECT name, id FROM ai_providers WHERE NOT deleted").fetchall()
        except psycopg.errors.UndefinedTable:
            return {}  # the operator has not created the schema yet
    return dict(rows)
