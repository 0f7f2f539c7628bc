"""One Kubernetes client configuration for the whole process.

It is loaded once (in-cluster service account if present, else ``KUBECONFIG`` /
``~/.kube/config``) and used twice: by our :class:`~aigateway_operator.kube.client.Kube` and
our Secret watch through a ``kubernetes`` ``ApiClient``, and by kopf, whose login handler
(``operator.lifecycle``) turns :func:`connection_facts` of the *same* configuration into
kopf's ``ConnectionInfo`` instead of letting kopf load its own. So both HTTP stacks in the
process talk to the same server with the same identity, and a token refreshed for one is the
token the other uses at its next login.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from kubernetes import client, config

__all__ = [
    "ConnectionFacts",
    "NoKubeConfiguration",
    "api_client",
    "connection_facts",
    "load_configuration",
]


class NoKubeConfiguration(Exception):
    """Neither an in-cluster service account nor a kubeconfig was found (or it is invalid)."""


def load_configuration(kubeconfig: str | None = None) -> client.Configuration:
    """In-cluster service-account config if present, else ``KUBECONFIG``/``~/.kube/config``.

    ``KUBECONFIG`` is read when this is called (the client reads it once, at import).
    """
    cfg = client.Configuration()
    if kubeconfig is None and not os.environ.get("KUBECONFIG"):
        try:
            config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
            return cfg
        except config.ConfigException:
            pass
    try:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig or os.environ.get("KUBECONFIG"), client_configuration=cfg
        )
    except (config.ConfigException, OSError) as exc:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise NoKubeConfiguration(
            f"no Kubernetes configuration: not in a pod with a service account, and {where} "
            f"is missing or invalid ({type(exc).__name__}); set KUBECONFIG"
        ) from None
    return cfg


def api_client(cfg: client.Configuration) -> client.ApiClient:
    """A ``kubernetes`` API client on ``cfg`` (its own connection pool)."""
    return client.ApiClient(configuration=cfg)


@dataclass(frozen=True)
class ConnectionFacts:
    """What kopf needs to reach the API server as we do (plain values, no kopf types)."""

    server: str
    ca_path: str | None
    insecure: bool
    scheme: str | None
    token: str | None = field(repr=False)
    certificate_path: str | None
    private_key_path: str | None


def connection_facts(cfg: client.Configuration) -> ConnectionFacts:
    """The server, CA, client certificate and current bearer token of ``cfg``.

    The token is read through ``get_api_key_with_prefix``, which runs the client's refresh
    hook (in-cluster: the projected service-account token file is re-read when it expires).
    kubernetes >= 36.0.1 keeps it under ``BearerToken``, older versions under
    ``authorization``; both are looked at.
    """
    header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix(
        "authorization"
    )
    parts = header.split(" ", 1) if header else []
    scheme, token = (
        (None, None) if not parts else (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    )
    return ConnectionFacts(
        server=str(cfg.host),
        ca_path=cfg.ssl_ca_cert or None,
        insecure=not cfg.verify_ssl,
        scheme=scheme,
        token=token,
        certificate_path=cfg.cert_file or None,
        private_key_path=cfg.key_file or None,
    )
