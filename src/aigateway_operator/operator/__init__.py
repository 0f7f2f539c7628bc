"""The kopf-facing layer: the only package that imports kopf.

- ``handlers``: the kopf handlers (``on.event``, ``daemon``, ``on.delete``), one
  ``register(registry, kind, controller_of)`` for both kinds
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
import time
from typing import Any, cast

import kopf

from aigateway_operator.api.identity import AIGATEWAYCODERDKEY, AIPROVIDER
from aigateway_operator.config import LogFormat, Settings
from aigateway_operator.operator import admission, handlers, lifecycle
from aigateway_operator.operator.app import OperatorApp
from aigateway_operator.operator.connections import Connections
from aigateway_operator.operator.probes import ProbeServer

__all__ = ["CAPPED_LOGGERS", "build_registry", "main", "seniority_priority", "setup_logging"]

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
    handlers.register(registry, AIPROVIDER, lambda app: app.providers)
    handlers.register(registry, AIGATEWAYCODERDKEY, lambda app: app.gateway_keys)
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


#: Milliseconds since the epoch stay below this until the year 2109.
_SENIORITY_SPAN_MS = 2**42
_TIE_BITS = 10


def seniority_priority(started_at: float) -> int:
    """A kopf peering priority that ranks a replica started earlier above one started later.

    kopf's peering is not a lease: each replica decides alone from the peering object, so a
    new replica of higher priority resumes as soon as it sees itself highest, and the active
    one pauses only once it sees the newcomer: both run for that moment (measured on the node
    during ``helm upgrade``: 19-78 ms, ``tests/e2e/test_node_chart.py``). Ranked by seniority,
    a new replica (an upgrade's, a restarted pod's) never outranks the one already active: it
    waits as a standby until that one leaves. Equal priorities freeze every replica (kopf
    pauses all of them), so the low bits are random: two replicas started in the same
    millisecond still differ, but for one chance in 1,024. The value stays below 2**53, so
    every JSON reader of the KopfPeering object reads it exactly.
    """
    started_ms = int(started_at * 1000)
    return ((_SENIORITY_SPAN_MS - started_ms) << _TIE_BITS) + secrets.randbelow(2**_TIE_BITS)


def _peering(settings: Settings) -> dict[str, Any]:
    if not settings.peering:
        return {"standalone": True}
    priority = settings.peering_priority
    if priority is None:
        priority = seniority_priority(time.time())
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
