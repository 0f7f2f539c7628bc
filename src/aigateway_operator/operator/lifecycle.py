"""kopf's settings and the operator's life: startup, login, cleanup.

- **startup** opens the store (schema and encryption-key checks: refuse to start on a wrong
  key or a missing schema; keep retrying while the database is unreachable) and builds the
  :class:`~aigateway_operator.operator.app.OperatorApp`.
- **login** hands kopf the operator's one Kubernetes client configuration.
- **cleanup** stops what startup started, letting running passes finish.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from aigateway_operator.api.identity import FINALIZER, KOPF_STORAGE_PREFIX
from aigateway_operator.config import Settings
from aigateway_operator.kube import KubeError, connection_facts
from aigateway_operator.operator.admission import configure_admission
from aigateway_operator.operator.app import app_of
from aigateway_operator.operator.diffbase import NoDiffBase
from aigateway_operator.store import StoreError, StoreUnavailable

__all__ = ["configure_kopf", "register"]

log = logging.getLogger("aigateway_operator")

#: Retry delay of the startup handler while the database is unreachable.
STARTUP_RETRY_S = 5.0


def configure_kopf(kopf_settings: kopf.OperatorSettings, settings: Settings) -> None:
    """kopf settings this operator relies on (see shared/kopf-notes.md)."""
    # kopf adds and removes our finalizer (the daemons and the delete handler need it).
    kopf_settings.persistence.finalizer = FINALIZER
    # Progress of a retried delete handler, under kopf's own prefix, apart from ours.
    kopf_settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=KOPF_STORAGE_PREFIX
    )
    kopf_settings.persistence.diffbase_storage = NoDiffBase()
    # Our Event recorder aggregates; kopf never turns log lines into Events (a leak path).
    kopf_settings.posting.enabled = False
    kopf_settings.posting.loggers = False
    kopf_settings.watching.server_timeout = 300
    kopf_settings.watching.client_timeout = 310
    kopf_settings.watching.connect_timeout = 30
    kopf_settings.networking.request_timeout = 60
    kopf_settings.networking.connect_timeout = 10
    # No CRD/namespace scanning: the CRDs must exist before start, and RBAC stays minimal.
    kopf_settings.scanning.disabled = True
    kopf_settings.peering.lifetime = settings.peering_lifetime_s
    # kopf's per-object workers only run our quick on.event handler and spawn daemons;
    # bounding them keeps a burst of new objects from inflating memory for good (the
    # passes themselves are bounded by AIGW_MAX_WORKERS). An idle worker gives its slot
    # back quickly (kopf's default keeps it 5 s). This bound is why the AIProvider index is
    # ours and not @kopf.index: kopf#1243 (controllers/aiprovider/index.py).
    kopf_settings.queueing.worker_limit = max(16, settings.max_workers)
    kopf_settings.queueing.idle_timeout = 0.5
    # The validating webhook (AIGW_ADMISSION): kopf's server and managed configuration.
    configure_admission(kopf_settings, settings)


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """The lifecycle handlers, on ``registry``."""

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        app = app_of(memo)
        configure_kopf(settings, app.settings)
        try:
            await app.start()
        except StoreUnavailable as exc:
            # Postgres not reachable yet: keep trying (kopf retries the activity); liveness
            # stays up meanwhile and the startup probe says why it waits.
            log.warning("waiting for Coder's database: %s", exc)
            raise kopf.TemporaryError(str(exc), delay=STARTUP_RETRY_S) from None
        except KubeError as exc:
            # Listing our objects for the first sweep failed: try again.
            log.warning("waiting for the Kubernetes API: %s", exc)
            raise kopf.TemporaryError(str(exc), delay=STARTUP_RETRY_S) from None
        except StoreError as exc:
            # Wrong encryption key, missing schema, bad configuration: fail closed and loud.
            # Nothing was written.
            why = str(exc).removeprefix("refusing to start: ")  # said once, not twice
            log.error("refusing to start: %s", why)
            app.refused = why
            raise kopf.PermanentError(f"refusing to start: {why}") from None

    @kopf.on.login(registry=registry)
    def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
        facts = connection_facts(app_of(memo).kube_config)
        return kopf.ConnectionInfo(
            server=facts.server,
            ca_path=facts.ca_path,
            insecure=facts.insecure,
            scheme=facts.scheme,
            token=facts.token,
            certificate_path=facts.certificate_path,
            private_key_path=facts.private_key_path,
        )

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        await app_of(memo).stop()

    _ = (startup, login, cleanup, settings)
