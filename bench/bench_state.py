"""Bytes of the operator's own in-memory state per object (tracemalloc; no services, seconds).

``PYTHONPATH=. python bench/bench_state.py [--objects 1000]``

Builds both kinds' real controllers (no database, no API server) and, for ``--objects``
objects of each kind, leaves in memory what the watch and one finished pass leave: the
watch event (the object's record, the provider index), the daemon's live view and marker,
the row id and version (drift), the hostname check, the gateway key's written Secret and
workload scan, the metrics of the pass (condition and last-sync series) and one aggregated
Event. The objects' bodies are built before tracing starts: they are kopf's, not ours.
Reported per object: everything traced, and the part that is ours (without
prometheus_client's series, which are the metrics' price, not our bookkeeping), with the
biggest allocation sites. Results go to ``bench/results/state.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import tracemalloc
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aigateway_operator.api.common import Condition, ConditionStatus, ConditionType, Reason
from aigateway_operator.api.identity import AIGATEWAYCODERDKEY, AIPROVIDER, FINALIZER, Kind
from aigateway_operator.config import Settings
from aigateway_operator.controllers.aiprovider import AIProviderController
from aigateway_operator.controllers.aiprovider.drift import DriftTracker
from aigateway_operator.controllers.aiprovider.hostnames import HostnameCheck
from aigateway_operator.controllers.gatewaykey import GatewayKeyController
from aigateway_operator.controllers.gatewaykey.controller import remember_written
from aigateway_operator.controllers.runner import marker
from aigateway_operator.controllers.shared import ObjectIdentity, PassOutcome, record_pass
from aigateway_operator.kube.events import EventRecorder
from aigateway_operator.store import HostnamePeers, RowVersion

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RESULTS = Path(__file__).parent / "results" / "state.json"


def body(kind: Kind, i: int) -> dict[str, Any]:
    return {
        "apiVersion": kind.api_version,
        "kind": kind.kind,
        "metadata": {
            "name": f"obj-{i:05d}",
            "namespace": "bench-state",
            "uid": str(uuid.uuid4()),
            "resourceVersion": str(100 + i),
            "generation": 1,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "finalizers": [FINALIZER],
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {"type": "openai", "apiKeys": [{"secretKeyRef": {"name": f"s-{i}", "key": "a"}}]},
    }


def conditions() -> tuple[Condition, ...]:
    return tuple(
        Condition(
            type=t,
            status=ConditionStatus.TRUE,
            reason=Reason.SYNCED,
            message="ok",
            last_transition_time=T0,
        )
        for t in (ConditionType.SYNCED, ConditionType.READY)
    )


def measure(objects: int) -> dict[str, Any]:
    settings = Settings(database_url="postgresql://u:p@localhost/coder")  # type: ignore[call-arg]
    events = EventRecorder(SimpleNamespace())  # type: ignore[arg-type]
    wiring: Any = SimpleNamespace(settings=settings, events=events, kube=SimpleNamespace())
    providers = AIProviderController(wiring, asyncio.Semaphore(4))
    keys = GatewayKeyController(wiring, asyncio.Semaphore(4))
    done = conditions()
    results: dict[str, Any] = {}
    for kind, controller in ((AIPROVIDER, providers), (AIGATEWAYCODERDKEY, keys)):
        bodies = [body(kind, i) for i in range(objects)]
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for i, b in enumerate(bodies):
            controller.runner.observe("ADDED", b)
            record = controller.runner.records[b["metadata"]["uid"]]
            record.live, record.taken = b, marker(b)
            ident = ObjectIdentity.from_body(kind, b)
            if kind == AIPROVIDER:
                part = providers.runner.records[ident.uid].part
                version = RowVersion(T0, False, f"tok{i:032d}")
                DriftTracker.remember(part, str(uuid.uuid4()), version)
                peers = HostnamePeers("api.openai.com", (), 0)
                providers.hostnames.seen(part, HostnameCheck(ident.name, peers))
            else:
                key_part = keys.runner.records[ident.uid].part
                remember_written(key_part, ident.namespace, [(ident.namespace, "k", str(i))])
                key_part.scanned = (f"key-{i}", T0)
            outcome = PassOutcome({}, conditions=done, synced_at=T0)
            record.exported = record_pass(ident, outcome, record.exported)
            events._remember((ident.uid, "Normal", "Synced", "written"), f"ev-{i}", 1)
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        stats = after.compare_to(before, "filename")
        total = sum(s.size_diff for s in stats)
        ours = sum(s.size_diff for s in stats if "prometheus_client" not in s.traceback[0].filename)
        results[kind.kind] = {
            "bytes_per_object": round(total / objects),
            "ours_bytes_per_object": round(ours / objects),
            "sites": {
                s.traceback[0].filename.split("site-packages/")[-1].split("src/")[-1]: round(
                    s.size_diff / objects
                )
                for s in stats[:10]
            },
        }
    return {"objects_per_kind": objects, "kinds": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1000)
    args = parser.parse_args()
    result = measure(args.objects)
    for kind, r in result["kinds"].items():
        print(
            f"{kind}: {r['bytes_per_object']} B/object in all, "
            f"{r['ours_bytes_per_object']} B ours (without prometheus_client's series)"
        )
        for site, size in r["sites"].items():
            print(f"    {size:6d}  {site}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
