"""kopf handlers for AIGatewayCoderdKey (thin: each hands kopf's arguments to :mod:`.handling`).

The same styles as AIProvider's, for the same reasons (see ``operator.aiprovider``): the
pass is level-triggered, so ``on.event`` wakes the object's ``daemon``, which runs the pass
and comes back on its own for the heartbeat mirror, a grace period or a scheduled rotation;
``on.delete`` deletes the key's rows (or waits with ``DeletionBlocked`` while a gateway still
uses the key).
"""

from __future__ import annotations

from typing import Any

import kopf

from aigateway_operator.api.identity import AIGATEWAYCODERDKEY as KIND
from aigateway_operator.operator import handling
from aigateway_operator.operator.app import app_of

__all__ = ["register"]


async def observe(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    handling.observe(app_of(memo), KIND, event)


async def run(body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo, **_: Any) -> None:
    await handling.serve(app_of(memo), KIND, body, stopped)


async def release(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await handling.release(app_of(memo), KIND, body)


def register(registry: kopf.OperatorRegistry) -> None:
    g, v, p = KIND.group, KIND.version, KIND.plural
    kopf.on.event(g, v, p, id="observe", registry=registry)(observe)
    kopf.daemon(
        g, v, p, id="run", registry=registry, cancellation_timeout=handling.CANCELLATION_TIMEOUT_S
    )(run)
    kopf.on.delete(g, v, p, id="release", registry=registry)(release)
