"""The operator as one typed object, built once at start (kopf's startup handler).

:class:`OperatorApp` holds the settings, the :class:`~aigateway_operator.controllers.wiring.Wiring`
(store, the one Kubernetes client, the Event recorder), both kinds' controllers (with their
indexes and runners), the metadata-only Secret watches and the drift watch (which runs only
while kopf lets this replica act: :meth:`OperatorApp.set_active`). kopf's handlers
reach it through one key of kopf's memo (:func:`app_of`); nothing else is kept there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from aigateway_operator import __version__, metrics
from aigateway_operator.api.identity import AIGATEWAYCODERDKEY, AIPROVIDER
from aigateway_operator.config import Settings
from aigateway_operator.controllers.aiprovider import AIProviderController
from aigateway_operator.controllers.gatewaykey import GatewayKeyController
from aigateway_operator.controllers.wiring import Wiring, fingerprint_key
from aigateway_operator.kube import (
    EventRecorder,
    Kube,
    SecretMetadataWatch,
    api_client,
    load_configuration,
)
from aigateway_operator.store import Store

__all__ = ["OperatorApp", "app_of"]

log = logging.getLogger("aigateway_operator")

#: How long passes still running at exit may take to finish.
DRAIN_S = 10.0
#: How long a readiness answer about the database is reused.
READINESS_CACHE_S = 5.0


class OperatorApp:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.kube_config = load_configuration()
        self._wiring: Wiring | None = None
        self._providers: AIProviderController | None = None
        self._gateway_keys: GatewayKeyController | None = None
        self._watches: list[SecretMetadataWatch] = []
        self._drift_watch: asyncio.Task[None] | None = None
        self.started = False
        """The first database connection succeeded and every part runs (startup probe)."""
        self.refused: str | None = None
        """Why the operator refused to start (a wrong key, a missing schema), if it did."""
        self.active: bool | None = None
        """Whether kopf lets this replica run passes (None: not known yet)."""
        self._db_checked = (0.0, False)
        self._exiting = False
        metrics.BUILD_INFO.labels(__version__).set(1)

    # --- parts ----------------------------------------------------------------------------

    @property
    def wiring(self) -> Wiring:
        if self._wiring is None:
            raise RuntimeError("the operator has not started")
        return self._wiring

    @property
    def providers(self) -> AIProviderController:
        if self._providers is None:
            raise RuntimeError("the operator has not started")
        return self._providers

    @property
    def gateway_keys(self) -> GatewayKeyController:
        if self._gateway_keys is None:
            raise RuntimeError("the operator has not started")
        return self._gateway_keys

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store (schema and key checks: fail fast and loud), then everything else.

        Raises the store's errors; ``StoreUnavailable`` means "try again" (kopf retries the
        startup handler), anything else means "refuse to start".
        """
        settings = self.settings
        store = await Store.open(settings)
        kube = Kube(api_client(self.kube_config))
        events = EventRecorder(kube)
        wiring = Wiring(
            settings=settings,
            store=store,
            kube=kube,
            events=events,
            fingerprint_key=fingerprint_key(settings),
        )
        self._wiring = wiring
        self._providers = AIProviderController(wiring, asyncio.Semaphore(settings.max_workers))
        self._gateway_keys = GatewayKeyController(
            wiring, asyncio.Semaphore(max(2, settings.max_workers // 8))
        )
        try:
            await self._first_sweep(kube)
        except BaseException:
            # kopf calls start() again after a temporary failure: leave nothing open behind.
            self._wiring = self._providers = self._gateway_keys = None
            await store.close()
            kube.close()
            raise
        metrics.serve(settings.metrics_port)
        events.start()
        loop = asyncio.get_running_loop()
        watch_api = api_client(self.kube_config)  # the watches' own connection pool
        self._watches = [
            SecretMetadataWatch(watch_api, namespace, self.secret_event, loop)
            for namespace in (settings.namespace_list() or (None,))
        ]
        for watch in self._watches:
            watch.start()
        metrics.CODER_INFO.labels(store.coder_version.release.label).set(1)
        self.started = True
        self._db_checked = (time.monotonic(), True)
        metrics.DATABASE_UP.set(1)
        log.info(
            "connected to Coder's database (%s, encryption key %s)",
            store.coder_version.label,
            store.primary_key_digest or "none: plaintext",
        )

    async def _first_sweep(self, kube: Kube) -> None:
        """Before kopf watches anything (no pass runs yet, so one listing per kind and watched
        namespace is the truth), let both collectors sweep: rows whose object is gone are
        collected once missing for ``AIGW_GC_GRACE_S``. A listing that fails raises: kopf
        retries the startup."""
        settings = self.settings
        providers, gateway_keys = self._providers, self._gateway_keys
        if providers is None or gateway_keys is None:
            raise RuntimeError("controllers are built before the first sweep")
        listed: dict[str, list[dict[str, Any]]] = {
            AIPROVIDER.plural: [],
            AIGATEWAYCODERDKEY.plural: [],
        }
        for plural, objects in listed.items():
            for namespace in settings.namespace_list() or (None,):
                objects += await kube.list_objects(plural, namespace)
        for controller, plural in (
            (providers, AIPROVIDER.plural),
            (gateway_keys, AIGATEWAYCODERDKEY.plural),
        ):
            names = {
                (str(o["metadata"].get("namespace", "")), str(o["metadata"].get("name", "")))
                for o in listed[plural]
            }
            collected = await controller.sweep(names)
            if collected:
                log.info(
                    "collected the Coder rows of %d %s that no longer exist", collected, plural
                )

    async def stop(self) -> None:
        for watch in self._watches:
            watch.stop()
        task, self._drift_watch = self._drift_watch, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._wiring is None:
            return
        for controller in (self._providers, self._gateway_keys):
            if controller is not None:
                await controller.runner.drain(DRAIN_S)
        self._exiting = True
        if self.active:
            self.set_active(False, "stopping")
        for controller in (self._providers, self._gateway_keys):
            if controller is not None:
                await controller.stop()
        if self._wiring.events is not None:
            await self._wiring.events.stop()
        await self._wiring.store.close()
        self._wiring.kube.close()

    # --- events from outside kopf ---------------------------------------------------------

    def secret_event(self, event_type: str | None, body: dict[str, Any]) -> None:
        """What the metadata-only Secret watch delivers: both kinds look at it."""
        meta: Mapping[str, Any] = body.get("metadata") or {}
        self.providers.secret_changed(event_type, meta)
        self.gateway_keys.secret_changed(event_type, meta)

    def set_active(self, active: bool, why: str = "paused by kopf peering") -> None:
        """kopf's word on this replica (``operator.handlers``): its watch events arrive
        (active), or it stopped a daemon for ``OPERATOR_PAUSING`` (paused by peering), or it is
        stopping (:meth:`exiting`). The drift watch, the one part of ours that kopf does not
        run, follows it: an inactive replica holds no LISTEN connection and queries no row
        versions."""
        if active and self._exiting:
            return  # a late event while stopping: the replica starts no pass again
        if self.active is active:
            return
        self.active = active
        metrics.ACTIVE_REPLICA.set(1 if active else 0)
        log.info("this replica is %s", "active" if active else why)
        task = self._drift_watch
        if active and (task is None or task.done()) and self._providers is not None:
            self._drift_watch = asyncio.get_running_loop().create_task(
                self._providers.watch_drift(), name="aigw-drift-watch"
            )
        elif not active and task is not None:
            task.cancel()  # closes the LISTEN connection
            self._drift_watch = None

    def exiting(self) -> None:
        """kopf is stopping this replica's daemons for good: once no pass runs, the replica
        runs none again, and ``/readyz`` says so while the process winds down (a terminating
        pod must not look active next to its successor). A pass still running keeps it
        active until :meth:`stop` has drained it."""
        self._exiting = True
        if all(c is None or c.runner.idle() for c in (self._providers, self._gateway_keys)):
            self.set_active(False, "stopping")

    # --- probes ---------------------------------------------------------------------------

    async def database_ok(self) -> bool:
        """Whether Coder's database answers (cached for a few seconds)."""
        if self._wiring is None:
            return False
        at, ok = self._db_checked
        if time.monotonic() - at < READINESS_CACHE_S:
            return ok
        ok = await self._wiring.store.ping()
        self._db_checked = (time.monotonic(), ok)
        metrics.DATABASE_UP.set(1 if ok else 0)
        return ok


def app_of(memo: Any) -> OperatorApp:
    """The app kopf's memo carries (the one key the operator keeps there)."""
    app = getattr(memo, "app", None)
    if not isinstance(app, OperatorApp):
        raise RuntimeError("kopf's memo carries no OperatorApp")
    return app
