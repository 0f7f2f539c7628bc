"""The kopf-facing layer: the only package that imports kopf.

- ``aiprovider``, ``gatewaykey``: the kopf handlers of each kind (``on.event``, ``daemon``,
  ``on.delete``), thin; ``handling`` is what they share
- ``lifecycle``: kopf's settings, startup (the store opened, the app built), login, cleanup
- ``app``: the operator as one typed object, reachable from kopf's memo
- ``admission``: kopf's validating webhook for both kinds (``AIGW_ADMISSION=true``)
- ``diffbase``, ``bodies``, ``probes``, ``webhook_tls``, ``connections``: what kopf lacks,
  one module each (their docstrings say why)

:func:`main` runs the operator: the probe endpoints first (liveness must answer before the
database does), then kopf; it returns once every connection it opened is closed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import threading
from typing import Any, cast

import kopf

from aigateway_operator.config import LogFormat, Settings
from aigateway_operator.operator import admission, aiprovider, gatewaykey, lifecycle
from aigateway_operator.operator.app import OperatorApp
from aigateway_operator.operator.connections import Connections
from aigateway_operator.operator.probes import ProbeServer

__all__ = ["CAPPED_LOGGERS", "build_registry", "main", "setup_logging"]

log = logging.getLogger("aigateway_operator")

#: Third-party loggers that can print request or response bodies or credentials at DEBUG
#: (botocore logs STS responses, urllib3 and the kubernetes client log requests, psycopg
#: logs connection parameters). They are capped whatever the operator's verbosity.
CAPPED_LOGGERS = (
    "botocore",
    "boto3",
    "urllib3",
    "kubernetes",
    "psycopg",
    "psycopg.pool",
    "aiohttp",
    "asyncio",
)


def build_registry(settings: Settings) -> kopf.OperatorRegistry:
    """A fresh registry with every handler (an explicit registry, so tests can build two)."""
    registry = kopf.OperatorRegistry()
    lifecycle.register(registry, settings)
    aiprovider.register(registry)
    gatewaykey.register(registry)
    admission.register(registry, settings)
    return registry


def cap_third_party_loggers() -> None:
    for name in CAPPED_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def setup_logging(settings: Settings, *, verbose: bool, handlers: bool = True) -> None:
    """The operator's logging: kopf's handler and format at the chosen verbosity (unless
    ``handlers`` is False: the process's own logging is kept), then the third-party loggers
    capped at WARNING whatever that verbosity (``--verbose`` sets the root logger to DEBUG)."""
    if handlers:
        # kopf's own formatters for every logger: per-object lines (kopf's and ours, which
        # pass the object as ``extra``, see controllers.shared.log_ref) are prefixed with
        # [namespace/name]; in JSON each line is one object with the object as a field.
        kopf.configure(
            verbose=verbose,
            log_prefix=True,
            log_format=(
                kopf.LogFormat.JSON
                if settings.log_format is LogFormat.JSON
                else kopf.LogFormat.FULL
            ),
        )
    cap_third_party_loggers()
    if not verbose:
        # "Handler 'observe' succeeded" for every watch event is noise (and CPU under load);
        # our runner logs each pass itself. kopf's warnings and errors still show.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)


def _peering(settings: Settings) -> dict[str, Any]:
    if not settings.peering:
        return {"standalone": True}
    # Equal priorities make every replica pause; a random one makes one of them active.
    priority = settings.peering_priority
    if priority is None:
        priority = secrets.randbelow(2**31 - 1) + 1
    # Unique per process (two replicas may share a host in tests).
    identity = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    return {
        "standalone": False,
        "peering_name": settings.peering,
        "priority": priority,
        # kopf types it as its own NewType of str.
        "identity": cast(Any, identity),
    }


async def main(
    settings: Settings,
    *,
    verbose: bool = False,
    stop_flag: threading.Event | asyncio.Event | None = None,
    configure_logging: bool = True,
) -> int:
    """Run the operator until SIGTERM/SIGINT (or ``stop_flag``); the process's exit code.

    ``stop_flag`` and ``configure_logging=False`` are for running it inside another process
    (the in-process integration tests).
    """
    setup_logging(settings, verbose=verbose, handlers=configure_logging)
    connections = Connections()
    app = OperatorApp(settings)
    probes = ProbeServer(app, settings.health_port)
    await probes.start()
    namespaces = settings.namespace_list()
    try:
        await kopf.operator(
            registry=build_registry(settings),
            clusterwide=not namespaces,
            namespaces=namespaces,
            memo=kopf.Memo(app=app),
            stop_flag=stop_flag,
            **_peering(settings),
        )
    except Exception:
        if app.refused is not None:
            # The startup handler refused (its reason is logged): no traceback.
            return 1
        raise
    finally:
        await probes.stop()
        await connections.close()
    return 1 if app.refused is not None else 0
