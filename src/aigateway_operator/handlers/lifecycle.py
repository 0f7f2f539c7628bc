"""Operator lifecycle: kopf settings, the runtime in ``memo``, the drift watcher, probes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kopf

from aigateway_operator import metrics
from aigateway_operator.config import Settings
from aigateway_operator.handlers.common import KOPF_FINALIZER, KOPF_PREFIX, runtime_of
from aigateway_operator.handlers.controller import AlwaysOpen
from aigateway_operator.handlers.events import EventPoster
from aigateway_operator.handlers.peering import PeeringGate
from aigateway_operator.kube import Informer, Kube, load_api_client
from aigateway_operator.reconcile.drift import DriftTracker
from aigateway_operator.reconcile.index import ProviderIndex
from aigateway_operator.reconcile.runtime import Runtime, fingerprint_key
from aigateway_operator.store import Store, StoreError, StoreUnavailable

log = logging.getLogger("aigateway_operator")


@dataclass(frozen=True)
class Peering:
    """kopf peering as this process takes part in it (None when standalone)."""

    name: str
    identity: str
    priority: int


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """kopf settings this operator relies on (see shared/kopf-notes.md A7, A11, A13)."""
    # Our controllers add and release our finalizer themselves (handlers.controller); kopf
    # only watches. kopf must not know our finalizer's name: with no handler of its own that
    # needs a finalizer, it *removes* its configured one from every object it sees. So it
    # gets a name of its own that nothing ever sets. Its storages are named anyway, so
    # nothing it might write lands under another prefix.
    settings.persistence.finalizer = KOPF_FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_PREFIX, key="last-handled-configuration"
    )
    settings.posting.reporting_component = "aigateway-operator"
    settings.posting.loggers = False  # log lines never become Events (secret-leak path)
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 310
    settings.watching.connect_timeout = 30
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 10
    # No CRD/namespace scanning: the CRDs must exist before start, and RBAC stays minimal.
    settings.scanning.disabled = True


async def start_runtime(settings: Settings, memo: Any, peering: Peering | None = None) -> None:
    """Open the store (schema + key checks: fail fast and loud), the Kubernetes client,
    and start the controllers' workers."""
    from aigateway_operator.handlers import aiprovider, gatewaykey

    metrics.serve(settings.metrics_port)
    store = await Store.open(settings)
    kube = Kube(load_api_client())
    memo.kube = kube
    memo.index = ProviderIndex()
    memo.drift = DriftTracker()
    memo.gateway_key_secrets = {}  # Secrets we wrote last: (namespace, name) -> version
    memo.runtime = Runtime(
        settings=settings, store=store, kube=kube, fingerprint_key=fingerprint_key(settings)
    )
    watch_api = load_api_client()  # the watches' own connection pool, apart from calls
    if peering is None:
        memo.gate = AlwaysOpen()
    else:
        memo.gate = PeeringGate(
            peering.name,
            settings.namespace_list(),
            peering.identity,
            peering.priority,
            settings.peering_lifetime_s,
        )
        memo.gate.start(watch_api)
    memo.events = EventPoster(kube)
    memo.events.start()
    memo.providers = aiprovider.make_controller(memo)
    memo.providers.start(settings.max_workers)
    memo.gateway_keys = gatewaykey.make_controller(memo, settings)
    memo.gateway_keys.start(max(2, settings.max_workers // 8))
    memo.heartbeat_task = asyncio.create_task(_heartbeat(memo), name="aigw-heartbeat")
    # Our kinds are watched by our own informers (kube.informer: kopf's per-event handling
    # cycle costs more CPU than a whole pass); one thread per kind and namespace.
    loop = asyncio.get_running_loop()
    memo.informers = [
        Informer(watch_api, plural, namespace, deliver, loop)
        for plural, deliver in (
            ("aiproviders", aiprovider.deliver(memo)),
            ("aigatewaycoderdkeys", gatewaykey.deliver(memo)),
        )
        for namespace in (settings.namespace_list() or (None,))
    ]
    # Secrets: metadata only (their data never reaches the operator through a watch); a
    # relisting reports what changed while the watch was down.
    memo.informers += [
        Informer(
            watch_api,
            "secrets",
            namespace,
            _secret_events(memo),
            loop,
            group="",
            version="v1",
            report_relist_changes=True,
        )
        for namespace in (settings.namespace_list() or (None,))
    ]
    for informer in memo.informers:
        informer.start()
    memo.drift_task = asyncio.create_task(_watch_drift(memo), name="aigw-drift-watcher")
    memo.resync_task = asyncio.create_task(_resync(memo), name="aigw-resync")
    log.info(
        "connected to Coder's database (schema %s, encryption key %s)",
        settings.schema_mode.value,
        store.primary_key_digest or "none: plaintext",
    )


def _secret_events(memo: Any) -> Callable[[str | None, dict[str, Any]], None]:
    """What the Secret informer calls: both kinds look at the metadata of every Secret event."""
    from aigateway_operator.handlers import aiprovider, gatewaykey

    def on_event(type_: str | None, body: dict[str, Any]) -> None:
        meta = body.get("metadata") or {}
        aiprovider.secret_event(memo, type_, meta)
        gatewaykey.secret_event(memo, type_, meta)

    return on_event


async def stop_runtime(memo: Any) -> None:
    for informer in getattr(memo, "informers", ()):
        informer.stop()
    for attr in ("providers", "gateway_keys", "gate", "events"):
        part = getattr(memo, attr, None)
        if part is not None and hasattr(part, "stop"):
            await part.stop()
    for attr in ("drift_task", "resync_task", "heartbeat_task"):
        task = getattr(memo, attr, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    runtime = getattr(memo, "runtime", None)
    if runtime is not None:
        await runtime.store.close()
    kube = getattr(memo, "kube", None)
    if kube is not None:
        kube.close()


async def check_drift(memo: Any) -> int:
    """Queue every object whose row someone else wrote since our last pass; return how many."""
    runtime = runtime_of(memo)
    tracker: DriftTracker = memo.drift
    snap = tracker.snapshot()
    if not snap.rows:
        return 0
    versions = await runtime.store.provider_versions(snap.row_ids())
    changed = tracker.changed(snap, versions, memo.providers.busy())
    for _uid, tracked in changed:
        log.info(
            "Coder row of AIProvider %s/%s changed outside the operator",
            tracked.namespace,
            tracked.name,
        )
    memo.providers.poke(uid for uid, _ in changed)
    return len(changed)


async def _watch_drift(memo: Any) -> None:
    """On every burst of ``ai_providers_changed``: poke objects whose row someone else wrote."""
    runtime = runtime_of(memo)
    async for _ in runtime.store.watch_changes(runtime.settings.drift_debounce_s):
        try:
            await check_drift(memo)
        except Exception:
            # The resync loop is the backstop; never let the watcher die.
            log.exception("drift check failed; the periodic resync will catch up")


async def _resync(memo: Any) -> None:
    """The operator-wide backstop, instead of a timer per object.

    Every few seconds: queue objects that are due a pass (an STS verdict to refresh, a blocked
    object to retry). Every ``AIGW_RESYNC_INTERVAL_S``: compare every row we own with what our
    last pass left, which catches edits made without a notify (direct SQL).
    """
    runtime = runtime_of(memo)
    tracker: DriftTracker = memo.drift
    interval = runtime.settings.resync_interval_s
    tick = min(5.0, interval)
    next_drift_check = time.monotonic() + interval
    while True:
        await asyncio.sleep(tick)
        try:
            for uid, _tracked in tracker.due(runtime.clock(), memo.providers.busy()):
                tracker.remember(uid, None, None, None)  # the pass will set the next one
                memo.providers.poke([uid])
            if time.monotonic() >= next_drift_check:
                next_drift_check = time.monotonic() + interval
                await check_drift(memo)
        except Exception:
            log.exception("resync failed; retrying at the next tick")


async def _heartbeat(memo: Any) -> None:
    """Every ``AIGW_HEARTBEAT_INTERVAL_S``: a pass over every AIGatewayCoderdKey (mirror the
    heartbeat, end grace periods, start due rotations), instead of a timer per object."""
    interval = runtime_of(memo).settings.heartbeat_interval_s
    while True:
        await asyncio.sleep(interval)  # the period itself, not synchronisation
        memo.gateway_keys.poke(memo.gateway_keys.known())


def register(
    registry: kopf.OperatorRegistry, config: Settings, peering: Peering | None = None
) -> None:
    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        configure_kopf(settings)
        settings.peering.lifetime = config.peering_lifetime_s
        # Bounded kopf workers (they only deliver watch events to our queues) keep a burst of
        # new objects from inflating memory for good. Safe only because the operator uses no
        # @kopf.index (see reconcile.index); an idle worker gives its slot back quickly
        # (kopf's default keeps it 5 s).
        settings.queueing.worker_limit = config.max_workers
        settings.queueing.idle_timeout = 0.2
        try:
            await start_runtime(config, memo, peering)
        except StoreUnavailable as exc:
            # Postgres not reachable yet: keep trying (kopf retries the activity).
            raise kopf.TemporaryError(str(exc), delay=5) from None
        except StoreError as exc:
            # Wrong encryption key, missing schema, bad configuration: fail closed and loud.
            # The process exits with this message (a CrashLoopBackOff in a cluster) and
            # nothing is written.
            log.error("refusing to start: %s", exc)
            raise kopf.PermanentError(f"refusing to start: {exc}") from None

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # An explicit registry has none of kopf's default login handlers: in-cluster service
        # account first, then KUBECONFIG, both through the kubernetes client's loaders.
        return kopf.login_via_client(**kwargs)

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        await stop_runtime(memo)

    @kopf.on.probe(id="database", registry=registry)
    async def database_probe(memo: kopf.Memo, **_: Any) -> str:
        # Reported, never failing liveness: a restart does not fix a database outage.
        runtime = getattr(memo, "runtime", None)
        return "open" if runtime is not None else "starting"
