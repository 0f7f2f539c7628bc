"""What both kinds' kopf handlers do, in kopf's terms (the per-kind modules only bind a kind).

- :func:`observe`: an ``on.event`` event reaches the kind's runner (indexes, wake-ups); a
  replica that receives events is active. The body kopf keeps of the object loses its
  ``managedFields`` first (:mod:`.bodies`).
- :func:`serve`: a daemon runs the object's passes until kopf stops it; a stop for
  ``OPERATOR_PAUSING`` means peering paused this replica, one for ``OPERATOR_EXITING`` that
  it is stopping (inactive once no pass runs).
- :func:`release`: an ``on.delete`` that is not done yet becomes ``kopf.TemporaryError``, so
  kopf keeps the finalizer and calls again after the delay.
"""

from __future__ import annotations

import kopf

from aigateway_operator.api.identity import Kind
from aigateway_operator.controllers.runner import Runner
from aigateway_operator.operator.app import OperatorApp
from aigateway_operator.operator.bodies import drop_managed_fields

__all__ = ["CANCELLATION_TIMEOUT_S", "observe", "release", "serve"]

#: A daemon that does not stop at once is cancelled after this long (a running pass is
#: shielded and finishes; only the wait between passes is cancelled).
CANCELLATION_TIMEOUT_S = 5.0
#: Retry of a delete handler that gave no delay of its own.
RELEASE_RETRY_S = 10.0


def _runner(app: OperatorApp, kind: Kind) -> Runner:
    return app.providers.runner if kind == app.providers.kind else app.gateway_keys.runner


def observe(app: OperatorApp, kind: Kind, event: kopf.RawEvent) -> None:
    drop_managed_fields(event)
    app.set_active(True)
    _runner(app, kind).observe(event.get("type"), event.get("object") or {})


async def serve(app: OperatorApp, kind: Kind, body: kopf.Body, stopped: kopf.DaemonStopped) -> None:
    try:
        await _runner(app, kind).serve(body, lambda: bool(stopped))
    finally:
        reason = stopped.reason
        if reason is not None and kopf.DaemonStoppingReason.OPERATOR_PAUSING in reason:
            app.set_active(False)
        elif reason is not None and kopf.DaemonStoppingReason.OPERATOR_EXITING in reason:
            app.exiting()


async def release(app: OperatorApp, kind: Kind, body: kopf.Body) -> None:
    outcome = await _runner(app, kind).release(body)
    if not outcome.done:
        raise kopf.TemporaryError(
            outcome.retry_message or "waiting to release Coder's rows",
            delay=outcome.retry_after or RELEASE_RETRY_S,
        )
