"""Operator lifecycle: kopf settings, the runtime in ``memo``, the drift watcher, probes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf

from aigateway_operator import metrics
from aigateway_operator.config import Settings
from aigateway_operator.handlers.common import FINALIZER, KOPF_PREFIX, KeyedLocks, runtime_of
from aigateway_operator.kube import Kube, load_api_client
from aigateway_operator.reconcile.drift import DriftTracker
from aigateway_operator.reconcile.runtime import Runtime, fingerprint_key
from aigateway_operator.store import Store, StoreError, StoreUnavailable

log = logging.getLogger("aigateway_operator")

DRIFT_POKE = "aigateway.dev/drift-poke"


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """kopf settings this operator relies on (see shared/kopf-notes.md A7, A11, A13)."""
    settings.persistence.finalizer = FINALIZER
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


async def start_runtime(settings: Settings, memo: Any) -> None:
    """Open the store (schema + key checks: fail fast and loud), the Kubernetes client."""
    metrics.serve(settings.metrics_port)
    store = await Store.open(settings)
    kube = Kube(load_api_client())
    memo.kube = kube
    memo.locks = KeyedLocks()
    memo.drift = DriftTracker()
    memo.runtime = Runtime(
        settings=settings, store=store, kube=kube, fingerprint_key=fingerprint_key(settings)
    )
    memo.drift_task = asyncio.create_task(_watch_drift(memo), name="aigw-drift-watcher")
    log.info(
        "connected to Coder's database (schema %s, encryption key %s)",
        settings.schema_mode.value,
        store.primary_key_digest or "none: plaintext",
    )


async def stop_runtime(memo: Any) -> None:
    task = getattr(memo, "drift_task", None)
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


async def _watch_drift(memo: Any) -> None:
    """On every burst of ``ai_providers_changed``: poke objects whose row someone else wrote."""
    runtime = runtime_of(memo)
    tracker: DriftTracker = memo.drift
    async for _ in runtime.store.watch_changes(runtime.settings.drift_debounce_s):
        try:
            ids = tracker.row_ids()
            if not ids:
                continue
            versions = await runtime.store.provider_versions(ids)
            for _uid, tracked in tracker.changed(versions):
                seen = versions.get(tracked.row_id) if tracked.row_id else None
                stamp = seen[0].isoformat() if seen else "gone"
                log.info(
                    "Coder row of AIProvider %s/%s changed outside the operator",
                    tracked.namespace,
                    tracked.name,
                )
                await memo.kube.annotate(
                    "aiproviders", tracked.namespace, tracked.name, {DRIFT_POKE: stamp}
                )
        except Exception:
            # The timer resync is the backstop; never let the watcher die.
            log.exception("drift check failed; the periodic resync will catch up")


def register(registry: kopf.OperatorRegistry, config: Settings) -> None:
    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        configure_kopf(settings)
        settings.peering.lifetime = config.peering_lifetime_s
        try:
            await start_runtime(config, memo)
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
