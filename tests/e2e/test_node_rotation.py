"""Key rotation that Coder's standalone gateway survives, through the chart on the node.

Issue #22 item 6. The operator runs as the chart's pods (its RBAC, its image); a stand-in
gateway Deployment (tests/support/standin_gateway.py) reads its key file once at start and
heartbeats by key hash into ``ai_gateway_keys.last_heartbeat_at`` the way coderd records a
connected gateway, logging every beat. Two keys, two gateways:

- ``auto``: the gateway's Deployment is annotated ``aigateway.dev/restart-on-rotation``; a
  rotation rolls it (the operator stamps the new key's id into its pod template), the old
  row stays until the new key heartbeats, and the heartbeats never stop or fail;
- ``manual``: no annotation; the old key keeps being used past ``gracePeriod``, so it stays,
  and the status says why (``RotationWaiting``); forcing it cuts that gateway off (which is
  what would have happened before).

The node environment is the session's shared ``node`` fixture (tests/conftest.py), with the
same operator image. The release is this module's own: it needs operator settings the
shared release of test_node_chart.py does not have (a 5 s heartbeat mirror and the stand-in's
2 s heartbeat period instead of coderd's 60 s, or the test would take minutes), and changing
that release's settings would roll its pods under the other tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from kubernetes import client

from tests.support.operator import condition
from tests.support.release import (
    GROUP,
    VERSION,
    ChartRelease,
    crds_present,
    install_release,
    remove_release,
)
from tests.support.standin_gateway import (
    BEATS_TABLE,
    CREATE_BEATS,
    beats,
    deployment,
    dsn_secret,
    longest_gap_s,
    settled,
)
from tests.support.wait import wait_for
from tools.devenv.env import DevEnv
from tools.devenv.images import BuiltImage

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

PLURAL = "aigatewaycoderdkeys"
RELEASE = "aigw-rot"
#: The stand-in's heartbeat period, and the operator's idea of it (coderd's is 60 s).
PERIOD_S = 2.0
GRACE = "5s"
RESTART = "aigateway.dev/restart-on-rotation"
STAMP = "aigateway.dev/key-generation"


@dataclass
class Rig:
    rel: ChartRelease

    @property
    def api(self) -> client.ApiClient:
        return self.rel.api

    @property
    def namespace(self) -> str:
        return self.rel.namespace

    def custom(self) -> client.CustomObjectsApi:
        return self.rel.custom()

    def get(self, name: str) -> dict[str, Any]:
        return self.rel.get(PLURAL, name)

    def patch(self, name: str, body: dict[str, Any]) -> None:
        self.custom().patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, body
        )

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return self.rel.rows(sql, *params)

    def key_ids(self, name: str) -> set[str]:
        """The ids of ``name``'s rows in Coder (the key and a ``-retiring-`` one)."""
        return {
            str(r[0])
            for r in self.rows(
                "SELECT id FROM ai_gateway_keys WHERE name = %s OR name LIKE %s",
                name,
                f"{name}-retiring-%",
            )
        }

    def beats(self, prefixes: set[str]) -> list[tuple[str, str, bool, Any]]:
        return beats(
            self.rows(
                f"SELECT pod, prefix, ok, at FROM {BEATS_TABLE} "  # noqa: S608
                "WHERE prefix = ANY(%s)",
                list(prefixes),
            )
        )

    def events(self, name: str, reason: str) -> list[client.CoreV1Event]:
        return [
            e
            for e in client.CoreV1Api(self.api).list_namespaced_event(self.namespace).items
            if e.reason == reason and e.involved_object.name == name
        ]

    def ready_key(self, name: str) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            obj = self.get(name)
            c = condition(obj, "Ready")
            ok = c and c["status"] == "True" and obj["status"].get("keyID")
            return obj if ok else None

        return wait_for(ready, 120, f"{name} Ready")

    def gateway(self, name: str, key: str, annotations: dict[str, str]) -> None:
        client.AppsV1Api(self.api).create_namespaced_deployment(
            self.namespace,
            deployment(name, self.rel.image.name, f"{key}-key", PERIOD_S, annotations),
        )

    def settled(self, name: str, timeout: float = 180) -> client.V1Deployment:
        try:
            return wait_for(lambda: settled(self.api, self.namespace, name), timeout, name)
        except AssertionError as exc:
            pods = client.CoreV1Api(self.api).list_namespaced_pod(self.namespace).items
            states = [(p.metadata.name, p.status.phase, p.status.container_statuses) for p in pods]
            raise AssertionError(f"{exc}\npods: {states}") from None


@pytest.fixture(scope="module")
def rig(node: DevEnv, node_api: client.ApiClient, operator_image: BuiltImage) -> Iterator[Rig]:
    rel = install_release(
        node, node_api, operator_image, RELEASE, prefix="rot",
        # Another module's release may own the CRDs already (they are the same files).
        crds={"enabled": not crds_present(node_api)},
        config={
            "AIGW_HEARTBEAT_INTERVAL_S": "5",
            "AIGW_GATEWAY_HEARTBEAT_PERIOD_S": str(PERIOD_S),
        },
    )  # fmt: skip
    try:
        client.CoreV1Api(node_api).create_namespaced_secret(
            rel.namespace, dsn_secret(rel.database_url)
        )
        rel.execute(CREATE_BEATS)
        yield Rig(rel)
    finally:
        remove_release(rel)


def rotate(rig: Rig, name: str) -> tuple[dict[str, Any], datetime]:
    """Bump spec.rotation.generation; the object once the new key is issued, and when."""
    before = rig.get(name)["status"]["keyID"]
    rig.patch(name, {"spec": {"rotation": {"gracePeriod": GRACE, "generation": 1}}})

    def rotated() -> dict[str, Any] | None:
        obj = rig.get(name)
        rot = obj["status"].get("rotation") or {}
        ok = obj["status"].get("keyID") != before and rot.get("previousKeyID") == before
        return obj if ok else None

    obj = wait_for(rotated, 60, f"{name} rotated")
    ((db_now,),) = rig.rows("SELECT now()")
    return obj, db_now


def test_an_opted_in_gateway_rolls_onto_the_new_key_without_a_gap(rig: Rig) -> None:
    # Applied together, as from Git: the pod waits for the Secret the operator writes.
    rig.gateway("gateway-auto", "auto", {RESTART: "auto"})
    rig.custom().create_namespaced_custom_object(
        GROUP, VERSION, rig.namespace, PLURAL,
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AIGatewayCoderdKey",
         "metadata": {"name": "auto"}, "spec": {"rotation": {"gracePeriod": GRACE}}},
    )  # fmt: skip
    first = rig.ready_key("auto")
    apps = client.AppsV1Api(rig.api)
    # The operator stamps the opted-in workload with the key it delivered (one rollout).
    wait_for(
        lambda: (
            (apps.read_namespaced_deployment("gateway-auto", rig.namespace).spec.template.metadata
             .annotations or {}).get(STAMP) == first["status"]["keyID"]
        ),
        60, "the first stamp",
    )  # fmt: skip
    dep = rig.settled("gateway-auto")
    old_prefix = first["status"]["keyPrefix"]
    wait_for(lambda: rig.beats({old_prefix}), 60, "the gateway's first heartbeat")

    obj, rotated_at = rotate(rig, "auto")
    new_id, new_prefix = obj["status"]["keyID"], obj["status"]["keyPrefix"]
    old_id = obj["status"]["rotation"]["previousKeyID"]
    assert rig.key_ids("auto") == {old_id, new_id}
    # The old row goes only once the rollout is over and the new key heartbeats.
    wait_for(lambda: rig.key_ids("auto") == {new_id}, 120, "the previous key retired")
    retired = wait_for(lambda: rig.events("auto", "KeyRetired"), 30, "the KeyRetired Event")
    assert "a gateway uses the new key" in (retired[-1].message or "")

    after = rig.settled("gateway-auto")
    assert after.metadata.generation == dep.metadata.generation + 1  # rolled once, by us
    assert after.spec.template.metadata.annotations[STAMP] == new_id
    wait_for(
        lambda: any(
            "gateway-auto" in (e.message or "") and new_id in (e.message or "")
            for e in rig.events("auto", "WorkloadRestarted")
        ),
        30,
        "the WorkloadRestarted Event naming the Deployment and the new key",
    )
    log = rig.beats({old_prefix, new_prefix})
    assert all(ok for _, _, ok, _ in log), [b for b in log if not b[2]]  # nobody was cut off
    new_beats = [at for _, prefix, _, at in log if prefix == new_prefix]
    old_beats = [at for _, prefix, _, at in log if prefix == old_prefix]
    assert new_beats
    assert old_beats
    assert max(old_beats) > rotated_at  # the old key was in use after the rotation,
    # it was deleted only after the new key had heartbeated,
    stamp = retired[-1].last_timestamp or retired[-1].first_timestamp
    assert stamp >= min(new_beats).replace(microsecond=0)
    # and the heartbeats never paused, across both rollouts.
    gap = longest_gap_s(log)
    print(f"\nlongest pause between heartbeats: {gap:.1f}s (period {PERIOD_S}s)")
    assert gap <= 3 * PERIOD_S
    # The status is back to one key.
    final = rig.get("auto")
    assert condition(final, "Issued")["reason"] == "Issued"  # type: ignore[index]
    assert "previousKeyID" not in final["status"]["rotation"]


def test_a_gateway_nobody_restarts_keeps_its_old_key_past_the_grace_period(rig: Rig) -> None:
    rig.gateway("gateway-manual", "manual", {})
    rig.custom().create_namespaced_custom_object(
        GROUP, VERSION, rig.namespace, PLURAL,
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AIGatewayCoderdKey",
         "metadata": {"name": "manual"}, "spec": {"rotation": {"gracePeriod": GRACE}}},
    )  # fmt: skip
    first = rig.ready_key("manual")
    dep = rig.settled("gateway-manual")
    old_prefix = first["status"]["keyPrefix"]
    wait_for(lambda: rig.beats({old_prefix}), 60, "the gateway's first heartbeat")

    obj, rotated_at = rotate(rig, "manual")
    old_id = obj["status"]["rotation"]["previousKeyID"]
    retire_after = obj["status"]["rotation"]["retireAfter"]

    def waiting_long_past_grace() -> dict[str, Any] | None:
        o = rig.get("manual")
        c = condition(o, "Issued") or {}
        ((past,),) = rig.rows(
            "SELECT now() - %s::timestamptz > interval '20 seconds'", retire_after
        )
        return o if c.get("reason") == "RotationWaiting" and past else None

    waiting = wait_for(waiting_long_past_grace, 120, "RotationWaiting, 20 s past gracePeriod")
    issued = condition(waiting, "Issued")
    assert issued is not None
    assert issued["status"] == "True"
    assert "previous key last used" in issued["message"]
    assert "waiting for the new key to be used" in issued["message"]
    assert f"aigateway.dev/force-retire={old_prefix}" in issued["message"]
    assert old_id in rig.key_ids("manual")  # still there, well past gracePeriod
    warned = rig.events("manual", "RotationWaiting")
    assert warned
    assert warned[0].type == "Warning"
    # The gateway still beats with the old key, never failing, and was not restarted.
    log = rig.beats({old_prefix})
    assert all(ok for _, _, ok, _ in log)
    assert max(at for *_, at in log) > rotated_at
    now = client.AppsV1Api(rig.api).read_namespaced_deployment("gateway-manual", rig.namespace)
    assert now.metadata.generation == dep.metadata.generation
    assert not rig.events("manual", "WorkloadRestarted")

    # Forcing it does what the operator used to do after gracePeriod: that gateway is cut
    # off (its next beat finds no row) and only gets back in by restarting.
    rig.custom().patch_namespaced_custom_object(
        GROUP, VERSION, rig.namespace, PLURAL, "manual",
        {"metadata": {"annotations": {"aigateway.dev/force-retire": old_prefix}}},
    )  # fmt: skip
    wait_for(lambda: old_id not in rig.key_ids("manual"), 60, "the forced retirement")
    wait_for(
        lambda: any("forced" in (e.message or "") for e in rig.events("manual", "KeyRetired")),
        30,
        "the KeyRetired Event saying it was forced",
    )
    wait_for(
        lambda: any(not ok for _, _, ok, _ in rig.beats({old_prefix})), 60, "the gateway cut off"
    )
