"""The handler layer: the only package that imports kopf. kopf runs the process (startup,
login, probes, cleanup, peering); the watches, work queues and passes are ours
(``handlers.controller``). Handlers are thin: they turn watch events into plain values, call
``reconcile``, and turn the outcome into a status patch, Events and retries.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from typing import Any, cast

import kopf

from aigateway_operator.config import Settings
from aigateway_operator.handlers.lifecycle import Peering


def build_registry(settings: Settings, peering: Peering | None = None) -> kopf.OperatorRegistry:
    """A fresh registry with every handler (an explicit registry, so tests can build two)."""
    from aigateway_operator.handlers import lifecycle

    # kopf runs the lifecycle (startup, login, probes, cleanup) and peering; every watch is
    # ours (handlers.lifecycle starts them with the runtime).
    registry = kopf.OperatorRegistry()
    lifecycle.register(registry, settings, peering)
    return registry


def run(settings: Settings, *, verbose: bool = False) -> None:
    """Run the operator until SIGTERM/SIGINT (what ``aigateway-operator run`` calls)."""
    # log_prefix: every object's log line names its namespace/name.
    kopf.configure(verbose=verbose, log_prefix=True)
    if not verbose:
        # "Handler 'observe' succeeded" for every watch event is noise (and CPU under load);
        # our controllers log each pass themselves. kopf's warnings and errors still show.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    namespaces = settings.namespace_list()
    peering: Peering | None = None
    if settings.peering:
        # Equal priorities make every replica pause; a random one makes one of them active.
        priority = settings.peering_priority
        if priority is None:
            priority = secrets.randbelow(2**31 - 1) + 1
        # Unique per process (two replicas may share a host in tests); our gate needs it to
        # tell its own heartbeat from the others'.
        identity = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        peering = Peering(settings.peering, identity, priority)
    kopf.run(
        registry=build_registry(settings, peering),
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=peering is None,
        peering_name=peering.name if peering else None,
        priority=peering.priority if peering else None,
        # kopf types it as its own NewType of str.
        identity=cast(Any, peering.identity) if peering else None,
        liveness_endpoint=(
            f"http://0.0.0.0:{settings.health_port}/healthz" if settings.health_port else None
        ),
    )
