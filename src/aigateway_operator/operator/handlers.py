"""The kopf handlers of both kinds: one :func:`register` binds them to a kind and its runner.

**Why these handler styles.** The pass is level-triggered: it compares the whole desired
state with Coder's rows, whatever happened. kopf's change handlers (``on.create/update/
resume``) are made for the opposite: they hand out diffs, write a diff-base and progress
annotations on the object, and can only be re-run by a change *to the object* — a Secret
edit, a drifted row or a due STS check would have to be written onto the object to reach
them. So, for each kind:

- ``@kopf.on.event`` (id ``observe``) receives every watch event of the kind (the listing at
  start too). It keeps the controller's records and index current and wakes the object's
  daemon when something that needs a pass changed (generation, deletion, our finalizer, our
  annotations); a replica that receives events is active. kopf persists nothing for it.
- ``@kopf.daemon`` (id ``run``) is the object's life: it runs the pass, waits until something
  wakes it or a retry, a re-check or the resync is due, and runs it again. Everything else
  that wakes an object (a referenced Secret, a drifted row, a freed name, a gateway key's
  Secret) does so in memory. kopf stops daemons when the object is deleted, when the operator
  exits, and **when peering pauses this replica**: that is the operator's only leader
  mechanism. A stop for ``OPERATOR_PAUSING`` marks the replica paused (the drift watch stops
  with it, ``OperatorApp.set_active``); one for ``OPERATOR_EXITING`` that it is stopping.
- ``@kopf.on.delete`` (id ``release``) releases Coder's rows (AIProvider) or deletes the key's
  rows, or waits with ``DeletionBlocked`` while a gateway still uses the key
  (AIGatewayCoderdKey); a release that is not done yet becomes ``kopf.TemporaryError``, so
  kopf keeps the finalizer and calls again after the delay (its progress is kept under
  ``kopf.aigateway.dev/release``: the ids above are stable on purpose).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import kopf

from aigateway_operator.api.identity import Kind
from aigateway_operator.controllers.runner import Runner
from aigateway_operator.operator.app import OperatorApp, app_of
from aigateway_operator.operator.bodies import drop_managed_fields

__all__ = ["CANCELLATION_TIMEOUT_S", "RELEASE_RETRY_S", "register"]

#: A daemon that does not stop at once is cancelled after this long (a running pass is
#: shielded and finishes; only the wait between passes is cancelled).
CANCELLATION_TIMEOUT_S = 5.0
#: Retry of a delete handler that gave no delay of its own.
RELEASE_RETRY_S = 10.0


class Controller(Protocol):
    """What the handlers need of a kind's controller."""

    @property
    def runner(self) -> Runner[Any]: ...


def register(
    registry: kopf.OperatorRegistry, kind: Kind, controller_of: Callable[[OperatorApp], Controller]
) -> None:
    """Register the three handlers of ``kind`` on ``registry``; ``controller_of`` finds the
    kind's controller in the app kopf's memo carries (built at startup)."""

    def runner(memo: kopf.Memo) -> tuple[OperatorApp, Runner[Any]]:
        app = app_of(memo)
        return app, controller_of(app).runner

    async def observe(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
        drop_managed_fields(event)  # before kopf keeps the body (operator/bodies.py)
        app, kind_runner = runner(memo)
        app.set_active(True)
        kind_runner.observe(event.get("type"), event.get("object") or {})

    async def run(body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo, **_: Any) -> None:
        app, kind_runner = runner(memo)
        try:
            await kind_runner.serve(body, lambda: bool(stopped))
        finally:
            reason = stopped.reason
            if reason is not None and kopf.DaemonStoppingReason.OPERATOR_PAUSING in reason:
                app.set_active(False)
            elif reason is not None and kopf.DaemonStoppingReason.OPERATOR_EXITING in reason:
                app.exiting()

    async def release(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        outcome = await runner(memo)[1].release(body)
        if not outcome.done:
            raise kopf.TemporaryError(
                outcome.retry_message or "waiting to release Coder's rows",
                delay=outcome.retry_after or RELEASE_RETRY_S,
            )

    g, v, p = kind.group, kind.version, kind.plural
    kopf.on.event(g, v, p, id="observe", registry=registry)(observe)
    kopf.daemon(g, v, p, id="run", registry=registry, cancellation_timeout=CANCELLATION_TIMEOUT_S)(
        run
    )
    kopf.on.delete(g, v, p, id="release", registry=registry)(release)
