"""The kopf layer: the only package that imports kopf. Handlers are thin: they turn kopf's
kwargs into plain values, call ``reconcile``, and turn the outcome into a status patch,
Events and retries.
"""

from __future__ import annotations

import secrets

import kopf

from aigateway_operator.config import Settings


def build_registry(settings: Settings) -> kopf.OperatorRegistry:
    """A fresh registry with every handler (an explicit registry, so tests can build two)."""
    from aigateway_operator.handlers import aiprovider, gatewaykey, lifecycle

    registry = kopf.OperatorRegistry()
    lifecycle.register(registry, settings)
    aiprovider.register(registry, settings)
    gatewaykey.register(registry, settings)
    return registry


def run(settings: Settings, *, verbose: bool = False) -> None:
    """Run the operator until SIGTERM/SIGINT (what ``aigateway-operator run`` calls)."""
    # log_prefix: every object's log line names its namespace/name.
    kopf.configure(verbose=verbose, log_prefix=True)
    namespaces = settings.namespace_list()
    peering = settings.peering or None
    priority = settings.peering_priority
    if peering is not None and priority is None:
        # Equal priorities make every replica pause; a random one makes one of them active.
        priority = secrets.randbelow(2**31 - 1) + 1
    kopf.run(
        registry=build_registry(settings),
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=peering is None,
        peering_name=peering,
        priority=priority,
        liveness_endpoint=(
            f"http://0.0.0.0:{settings.health_port}/healthz" if settings.health_port else None
        ),
    )
