"""Every Kubernetes API call the operator makes, as RBAC sees it: one table, kept by the code.

Each request this package sends names its entry (:meth:`Kube._async` takes an
:class:`ApiCall`, the metadata watch declares its list and watch), and kopf's own requests,
fixed by the settings of ``operator/lifecycle.py``, are declared here. The chart's RBAC is
tested against :data:`CALLS` (``tests/integration/test_chart_rbac.py``): access reviews as the
chart's ServiceAccount, one per entry, so a call added without its rule fails there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["CALLS", "ApiCall", "Mode", "declare"]

Mode = Literal["any", "namespaced", "cluster-wide"]
"""Which installs make the call: every one, or only those serving listed namespaces
(``AIGW_NAMESPACES``), or only cluster-wide ones."""


@dataclass(frozen=True)
class ApiCall:
    """One (verb, API group, resource[/subresource]) the operator sends, in the namespaces it
    serves (or cluster-wide, or on a cluster-scoped resource).

    ``named``: only on the one object the install names (kopf's peering object: granted by
    ``resourceNames``); ``mode``: which installs send it; ``admission``: sent only by the
    validating webhook (granted only with ``admission.enabled``).
    """

    verb: str
    group: str
    resource: str
    subresource: str = ""
    named: bool = False
    mode: Mode = "any"
    why: str = ""
    admission: bool = False


CALLS: list[ApiCall] = []
"""Filled at import by :func:`declare` (importing :mod:`aigateway_operator.kube` declares
every call of this package)."""


def declare(
    verb: str,
    group: str,
    resource: str,
    subresource: str = "",
    *,
    named: bool = False,
    mode: Mode = "any",
    why: str = "",
    admission: bool = False,
) -> ApiCall:
    """An entry of :data:`CALLS` (the same call declared twice is one entry)."""
    call = ApiCall(
        verb, group, resource, subresource, named=named, mode=mode, why=why, admission=admission
    )
    if call not in CALLS:
        CALLS.append(call)
    return call


# --- kopf's own requests (operator/lifecycle.py: no scanning, no posting, no diff-base) -------
_KINDS = ("aiproviders", "aigatewaycoderdkeys")
for _plural in _KINDS:
    declare("list", "aigateway.dev", _plural, why="kopf's watch (its initial listing)")
    declare("watch", "aigateway.dev", _plural, why="kopf's watch")
    declare("patch", "aigateway.dev", _plural, why="kopf's finalizer and progress annotations")
# kopf's peering (AIGW_PEERING): it watches the peering kind and heartbeats into its own
# object, a KopfPeering in each served namespace, or one ClusterKopfPeering.
declare("list", "kopf.dev", "kopfpeerings", mode="namespaced", why="kopf's peering watch")
declare("watch", "kopf.dev", "kopfpeerings", mode="namespaced", why="kopf's peering watch")
declare("patch", "kopf.dev", "kopfpeerings", named=True, mode="namespaced", why="heartbeat")
declare("list", "kopf.dev", "clusterkopfpeerings", mode="cluster-wide", why="peering watch")
declare("watch", "kopf.dev", "clusterkopfpeerings", mode="cluster-wide", why="peering watch")
declare(
    "patch", "kopf.dev", "clusterkopfpeerings", named=True, mode="cluster-wide", why="heartbeat"
)
