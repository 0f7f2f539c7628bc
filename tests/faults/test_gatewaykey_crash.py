"""SIGKILL storm during gateway-key create/rotate/delete traffic: converges exactly.

At every crash point (the operator killed, so the state holds still) no row is in Coder
whose plaintext nobody has: every row is recorded for an object, a current row hashes to
its object's Secret (or the Secret already holds the journaled key replacing it), a previous
row carries a retiring name, and a journaled key is never a row. At the end every object
has exactly one live row, recorded as its current key, whose plaintext is in its Secret, and
no key ever issued over the storm (each value any Secret held, watched throughout) is in the
log of any run, the objects, the Events or any row of the database.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from kubernetes import client

from tests.support.gatewaykeys import PLURAL, apply_key, patch_key, rows, secret_value
from tests.support.leaks import SecretHistory, surfaces
from tests.support.operator import GROUP, VERSION, OperatorProcess, condition, custom, kill_storm
from tests.support.wait import wait_for

OWNERS = "aigateway_operator.owners"


def ownership(op: OperatorProcess) -> list[tuple[Any, ...]]:
    """(name, role, row_id, secret_hash) of every gateway-key ownership record."""
    with psycopg.connect(op.database_url) as conn:
        return [
            (r[0], r[1], r[2], bytes(r[3]) if r[3] is not None else None)
            for r in conn.execute(
                f"SELECT name, role, row_id, secret_hash FROM {OWNERS} "  # noqa: S608
                "WHERE row_table = 'ai_gateway_keys'"
            ).fetchall()
        ]


def assert_no_row_without_plaintext(
    op: OperatorProcess, api: client.ApiClient, namespace: str
) -> None:
    """The crash-point invariant (see the module docstring); the operator must be dead."""
    with psycopg.connect(op.database_url) as conn:
        (schema,) = conn.execute(
            "SELECT to_regclass('aigateway_operator.owners') IS NOT NULL "
            "AND to_regclass('ai_gateway_keys') IS NOT NULL"
        ).fetchone() or (False,)
    if not schema:
        return  # killed before its schema existed: nothing written yet
    recs = ownership(op)
    by_row = {r[2]: r for r in recs}
    pending = {r[0]: r[3] for r in recs if r[1] == "pending"}
    live = {r[0]: r for r in rows(op)}
    for row_id, row in live.items():
        assert row_id in by_row, f"row {row[1]} is recorded for nobody"
        name, role, _, _ = by_row[row_id]
        if role == "previous":
            assert row[1].startswith(f"{name}-retiring-"), row[1]
            continue
        assert role == "current", (name, role)
        value = secret_value(api, namespace, f"{name}-key")
        assert value is not None, f"{name}: a current row and no Secret"
        digest = hashlib.sha256(value.encode()).digest()
        assert row[3] == digest or pending.get(name) == digest, f"{name}: plaintext lost"
    for r in recs:
        if r[1] == "pending":
            assert r[2] not in live, "a journaled key is a row"


pytestmark = pytest.mark.faults


@pytest.fixture
def issued_keys(k8s_api: client.ApiClient, namespace: str) -> Iterator[SecretHistory]:
    """Every value the namespace's Secrets hold over the test: each key ever issued."""
    with SecretHistory(k8s_api, namespace) as history:
        yield history


N_KEYS = 10
N_KILLS = 8


def test_kill9_during_key_traffic_converges(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
    issued_keys: SecretHistory,
) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"gateway-key kill -9 seed: {seed}")
    op = operator_factory(extra_env={"AIGW_HEARTBEAT_INTERVAL_S": "5"})
    names = [f"gw-{i:02d}" for i in range(N_KEYS)]
    for n in names:
        apply_key(k8s_api, namespace, n, {"rotation": {"gracePeriod": "5s"}})
    deleted = names[-2:]

    # The values a rotation asked to replace (a key not yet issued when its rotation was
    # asked for is simply issued at that generation: nothing to replace, so not counted).
    rotated_away: list[tuple[str, str]] = []

    def rotate(n: str, generation: int) -> None:
        value = secret_value(k8s_api, namespace, f"{n}-key")
        if value is not None:
            rotated_away.append((n, value))
        patch_key(k8s_api, namespace, n, {"spec": {"rotation": {"generation": generation}}})

    def mid_storm(kill: int) -> None:
        assert_no_row_without_plaintext(op, k8s_api, namespace)  # the operator is dead here
        if kill == 2:  # rotate half of them mid-storm
            for n in names[:4]:
                rotate(n, 1)
        if kill == 4:  # and delete two (never used, so the guard lets them go)
            for n in deleted:
                custom(k8s_api).delete_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, n
                )
        if kill == 5:  # rotate two of them again
            for n in names[:2]:
                rotate(n, 2)

    # Every exit must be one of ours (a crash loop would be hidden by the restarts).
    assert kill_storm(op, N_KILLS, rng, mid_storm) == [], f"seed {seed}"

    live = names[:-2]

    def converged() -> bool:
        items = custom(k8s_api).list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        present = {o["metadata"]["name"]: o for o in items["items"]}
        if set(present) != set(live):
            return False
        for n in live:
            c = condition(present[n], "Issued")
            if not c or c["status"] != "True":
                return False
            if c.get("observedGeneration") != present[n]["metadata"]["generation"]:
                return False
        by_name = {r[1]: r for r in rows(op)}
        if set(by_name) != set(live):  # retiring rows gone, deleted keys gone, no orphans
            return False
        recorded = {(r[0], r[1], r[2]) for r in ownership(op)}
        if recorded != {(n, "current", by_name[n][0]) for n in live}:
            return False  # one current record per live object, nothing pending or previous
        for n in live:
            value = secret_value(k8s_api, namespace, f"{n}-key")
            if value is None or by_name[n][3] != hashlib.sha256(value.encode()).digest():
                return False
        return True

    wait_for(converged, 120, "one row per key, hashing to its Secret, nothing else")
    gens = {
        o["metadata"]["name"]: (o["status"].get("rotation") or {}).get("generation")
        for o in custom(k8s_api).list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)[
            "items"
        ]
    }
    assert gens["gw-00"] == 2
    assert gens["gw-03"] == 1
    assert op.alive()  # and the teardown's SIGTERM checks a clean exit
    finals: dict[str, str] = {}
    for n in live:
        value = secret_value(k8s_api, namespace, f"{n}-key")
        assert value is not None
        finals[n] = value

    def holding_finals() -> set[str] | None:
        seen = issued_keys.snapshot()
        return seen if set(finals.values()) <= seen else None

    issued = wait_for(holding_finals, 30, "the Secret history to hold the final keys")
    # Every value a rotation replaced was replaced (its key's final value is another one) and
    # is in the history that is searched below. Counted, never printed: they are keys.
    assert rotated_away, f"seed {seed}: no rotation found an issued key to replace"
    not_replaced = sum(1 for n, old in rotated_away if finals[n] == old)
    not_in_history = sum(1 for _, old in rotated_away if old not in issued)
    assert (not_replaced, not_in_history) == (0, 0), f"seed {seed}"
    seen = surfaces(k8s_api, namespace, op.database_url, [PLURAL], log=op.log())
    for value in issued:
        assert seen.holding(value) == [], f"an issued key ({value[:7]}...) leaked"
