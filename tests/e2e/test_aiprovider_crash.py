"""SIGKILL at random moments during a batch: the operator still converges exactly."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import psycopg
import pytest
from kubernetes import client

from tests.e2e.conftest import GROUP, VERSION, OperatorProcess, condition, custom, make_secret
from tests.e2e.test_aiprovider import PLURAL, apply_provider, decrypt, openai_spec
from tests.support.wait import wait_for

pytestmark = pytest.mark.e2e

N_OBJECTS = 50
N_KILLS = 10


def test_kill9_loop_converges_with_one_row_per_object(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"kill -9 loop seed: {seed}")
    op = operator_factory()
    make_secret(k8s_api, namespace, "llm-keys", {"a": "sk-crash-a-0123456789", "b": "sk-b-01234"})
    names = [f"crash-{i:02d}" for i in range(N_OBJECTS)]
    for n in names:
        apply_provider(k8s_api, namespace, n, openai_spec("a", "b"))
    api = custom(k8s_api)
    kills = 0
    while kills < N_KILLS:
        # Let it run for a random moment (it is mid-batch most of the time), then SIGKILL.
        deadline = time.monotonic() + rng.uniform(0.3, 2.0)
        while time.monotonic() < deadline and op.alive():
            time.sleep(0.02)  # bounded by the random deadline: this is the fault schedule
        op.kill()
        kills += 1
        if kills == N_KILLS // 2:
            # Change things mid-storm: a spec edit, a rotated Secret value, a deletion.
            api.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, names[0], {"spec": {"displayName": "edited"}}
            )
            client.CoreV1Api(k8s_api).patch_namespaced_secret(
                "llm-keys", namespace, {"stringData": {"b": "sk-b-rotated-99"}}
            )
            api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, names[-1])
        op.start()

    live_names = names[:-1]

    def all_ready() -> bool:
        items = api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
        ready = {
            o["metadata"]["name"]
            for o in items
            if (c := condition(o, "Ready"))
            and c["status"] == "True"
            and c.get("observedGeneration") == o["metadata"]["generation"]
        }
        present = {o["metadata"]["name"] for o in items}
        return ready == set(live_names) and present == set(live_names)

    wait_for(all_ready, 180, "every provider Ready after the kill -9 storm")

    def keys_converged() -> bool:
        with psycopg.connect(op.database_url) as conn:
            rows = conn.execute(
                "SELECT p.name, k.api_key, k.api_key_key_id FROM ai_providers p "
                "JOIN ai_provider_keys k ON k.provider_id = p.id WHERE NOT p.deleted "
                "ORDER BY p.name, k.created_at, k.id"
            ).fetchall()
        by_name: dict[str, list[str]] = {}
        for name, value, key_id in rows:
            by_name.setdefault(name, []).append(decrypt(op.encryption_key, value, key_id))
        expected = ["sk-crash-a-0123456789", "sk-b-rotated-99"]
        return by_name == dict.fromkeys(live_names, expected)

    wait_for(keys_converged, 60, "key sets equal to the Secret")
    with psycopg.connect(op.database_url) as conn:
        live = conn.execute(
            "SELECT name, count(*) FROM ai_providers WHERE NOT deleted GROUP BY name"
        ).fetchall()
        deleted = conn.execute(
            "SELECT name FROM ai_providers WHERE deleted ORDER BY name"
        ).fetchall()
        orphan_keys = conn.execute(
            "SELECT count(*) FROM ai_provider_keys k JOIN ai_providers p ON p.id = k.provider_id "
            "WHERE p.deleted"
        ).fetchone()
        plaintext = conn.execute(
            "SELECT count(*) FROM ai_provider_keys WHERE api_key_key_id IS NULL "
            "OR api_key LIKE 'sk-%'"
        ).fetchone()
        display = conn.execute(
            "SELECT display_name FROM ai_providers WHERE name = %s AND NOT deleted", (names[0],)
        ).fetchone()
    assert sorted(live) == [(n, 1) for n in live_names]  # exactly one live row per object
    assert deleted in ([], [(names[-1],)])  # the deleted object: soft-deleted or never written
    assert orphan_keys == (0,)
    assert plaintext == (0,)  # encryption on: no plaintext in any key column
    assert display == ("edited",)
