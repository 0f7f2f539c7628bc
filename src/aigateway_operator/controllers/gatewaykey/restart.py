"""Opt-in restarts: the restart Coder's gateway chart asks for after a key change, done here.

Coder's standalone gateway reads ``CODER_AI_GATEWAY_KEY_FILE`` once, at start; a rotated key
reaches the mounted Secret but not the running process. A Deployment or StatefulSet in the
key object's namespace annotated ``aigateway.dev/restart-on-rotation: <key object name>``
gets ``aigateway.dev/key-generation: <key id>`` stamped into its pod template once the
Secret holds that key, which rolls its pods onto the new key (Kubernetes' own rollout: its
strategy, its surge, its readiness). Level-triggered: every pass compares each opted-in
workload's stamp with the current key, so a crash between the Secret write and the stamp is
finished by the next pass, and a workload that opts in later is stamped once (one rollout).

Only workloads of the object's own namespace are considered (a Secret volume cannot cross
namespaces either); nothing but that one pod-template annotation is ever written.

The namespace is not listed on every pass (passes come every heartbeat mirror): once every
opted-in workload carries the current key's stamp, the next scan for that object is due when
its key changes, or after ``AIGW_RESYNC_INTERVAL_S`` (a workload that opts in later waits at
most that long), or after an operator restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from aigateway_operator.api.common import EventReason, Reason
from aigateway_operator.api.identity import (
    KEY_GENERATION_ANNOTATION,
    RESTART_ON_ROTATION_ANNOTATION,
)
from aigateway_operator.controllers.gatewaykey.state import KeyPass, KeyState
from aigateway_operator.controllers.shared import MESSAGE_LIMIT
from aigateway_operator.kube import KubeError, Workload

__all__ = ["Restarts", "Workloads", "restart_workloads"]


class Workloads(Protocol):
    """What this step needs from the Kubernetes client (``kube.Kube`` implements it)."""

    async def list_workloads(self, namespace: str) -> list[Workload]: ...

    async def read_workload(self, kind: str, namespace: str, name: str) -> Workload | None: ...

    async def stamp_pod_template(self, workload: Workload, annotations: dict[str, str]) -> bool: ...


@dataclass
class Restarts:
    """The client, and when one object's workloads were last found stamped for which key
    (``last``: the object's record keeps it between passes, ``KeyPart.scanned``)."""

    workloads: Workloads
    rescan: timedelta
    last: tuple[str, datetime] | None = None

    def due(self, key_id: str, now: datetime) -> bool:
        last = self.last
        return last is None or last[0] != key_id or now - last[1] >= self.rescan

    def done(self, key_id: str, now: datetime) -> None:
        self.last = (key_id, now)


async def restart_workloads(p: KeyPass, restarts: Restarts, state: KeyState) -> list[str]:
    """Stamp every opted-in workload whose pods were not started for the current key; the
    workloads stamped (``Kind/name``). Failures are a Warning Event, never the pass's."""
    key_id = state.key_id
    now = p.wiring.clock()
    if key_id is None or not restarts.due(key_id, now):
        return []
    workloads = restarts.workloads
    namespace, name = p.ident.namespace, p.ident.name
    stamped: list[str] = []
    try:
        listed = await workloads.list_workloads(namespace)
        for w in listed:
            if w.annotations.get(RESTART_ON_ROTATION_ANNOTATION, "").strip() != name:
                continue
            full = await workloads.read_workload(w.kind, namespace, w.name)
            if full is None or full.template_annotations.get(KEY_GENERATION_ANNOTATION) == key_id:
                continue
            if await workloads.stamp_pod_template(full, {KEY_GENERATION_ANNOTATION: key_id}):
                stamped.append(f"{w.kind}/{w.name}")
                p.note(
                    EventReason.WORKLOAD_RESTARTED,
                    f"Restarting {w.kind} {w.name!r} onto the key with prefix {state.prefix}: "
                    f"stamped {KEY_GENERATION_ANNOTATION}={key_id} into its pod template "
                    f"({RESTART_ON_ROTATION_ANNOTATION}={name})",
                )
        restarts.done(key_id, now)
    except KubeError as exc:
        p.warn(
            Reason.WORKLOAD_RESTART_FAILED,
            (
                f"Could not restart the workloads annotated {RESTART_ON_ROTATION_ANNOTATION}="
                f"{name}: {exc}. The operator needs get, list and patch on deployments and "
                "statefulsets in this namespace (the chart's RBAC grants them)"
            )[:MESSAGE_LIMIT],
        )
    return stamped
