"""kopf handlers for AIProvider (thin: each hands kopf's arguments to :mod:`.handling`).

**Why these handler styles.** The pass is level-triggered: it compares the whole desired
state with Coder's rows, whatever happened. kopf's change handlers (``on.create/update/
resume``) are made for the opposite: they hand out diffs, write a diff-base and progress
annotations on the object, and can only be re-run by a change *to the object* — a Secret
edit, a drifted row or a due STS check would have to be written onto the object to reach
them. So:

- ``@kopf.on.event`` receives every watch event of the kind (the listing at start too). It
  keeps the controller's indexes current and wakes the object's daemon when something that
  needs a pass changed (generation, deletion, our finalizer, our annotations). kopf persists
  nothing for it.
- ``@kopf.daemon`` is the object's life: it runs the pass, waits until something wakes it or
  a retry, a re-check or the resync is due, and runs it again. Everything else that wakes an
  object (a referenced Secret, a drifted row, a freed name) does so in memory. kopf stops
  daemons when the object is deleted, when the operator exits, and **when peering pauses this
  replica**: that is the operator's only leader mechanism.
- ``@kopf.on.delete`` releases Coder's row; kopf keeps the finalizer until it succeeds and
  calls it again (``TemporaryError``) while the database is down.
"""

from __future__ import annotations

from typing import Any

import kopf

from aigateway_operator.api.identity import AIPROVIDER as KIND
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
