"""The controller loop of one kind: our informer's watch in, a work queue, one pass per object.

Why not kopf's create/update/resume/delete handlers: for every new object they cost about
four API writes (finalizer, diff-base annotation, status, progress) and as many watch
echoes, and a referenced Secret, a drifted row or a due re-check could only reach them by
*writing* a poke annotation onto the object. Here our informer (``kube.informer``) delivers
the watch events, and everything else is ours too:

- :meth:`Controller.observe` keeps the newest body of each object and queues its uid when
  something that needs a pass changed (the kind's ``marker``: generation, deletion, our
  finalizer, our annotations). Echoes of our own status writes change none of these, so they
  cost nothing.
- Other triggers (a Secret, a drifted row, a due re-verification) call :meth:`poke`: an
  in-memory enqueue, no API write.
- Workers take uids from the :class:`WorkQueue` (one pass per object at a time) and run the
  kind's level-triggered pass on the newest body. The finalizer is added with a
  resourceVersion-guarded JSON patch before the first database write and removed once the
  kind's ``finalize`` says it is done; status is merge-patched only where it differs; Events
  are queued to the background poster (``handlers.events``); transient failures are retried
  with per-object exponential backoff.
- Workers act only while the :class:`~aigateway_operator.handlers.peering.ActiveGate` is open
  (always, unless kopf peering is on and another replica outranks this one).

Bodies are kept newest-first by ``resourceVersion``, compared as integers: Kubernetes 1.35+
guarantees they are comparable (KEP-5504), and etcd revisions always were.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from aigateway_operator.handlers.common import FINALIZER, marker
from aigateway_operator.handlers.events import EventPoster
from aigateway_operator.kube import GROUP, VERSION, Kube, KubeError
from aigateway_operator.kube.client import ObjectRef
from aigateway_operator.reconcile.provider import Event
from aigateway_operator.reconcile.workqueue import WorkQueue

log = logging.getLogger("aigateway_operator")

Body = dict[str, Any]

#: Base delay after an unexpected error in a pass (doubling per consecutive failure).
ERROR_BACKOFF_S = 2.0


class PassOutcome(Protocol):
    """What a kind's pass returns (``reconcile.provider.Outcome`` and ``KeyOutcome`` are)."""

    status_patch: dict[str, Any]
    events: list[Event]
    retry_after: float | None
    retry_message: str
    done: bool


OutcomeT = TypeVar("OutcomeT", bound=PassOutcome)


@dataclass(frozen=True)
class Hooks(Generic[OutcomeT]):
    """What a kind plugs into its controller (see ``handlers.aiprovider``/``gatewaykey``)."""

    kind: str
    plural: str
    reconcile: Callable[[Body], Awaitable[OutcomeT]]
    """One pass over a live object (the finalizer is already on it)."""
    finalize: Callable[[Body], Awaitable[OutcomeT]]
    """Deletion: ``done`` releases the finalizer."""
    marker: Callable[[Body], Hashable] = marker
    """What, when it changes, needs a pass (never status: our own writes would re-trigger)."""
    api_version: str = f"{GROUP}/{VERSION}"
    finalizer: str = FINALIZER
    after_pass: Callable[[Body, OutcomeT], None] = lambda body, outcome: None
    """Bookkeeping after a pass (metrics, indexes): must not fail."""
    gone: Callable[[str, Body], None] = lambda uid, body: None
    """The object left the cluster (or its finalizer was released)."""


def _rv(body: Mapping[str, Any]) -> int:
    try:
        return int(body.get("metadata", {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def _ref(body: Mapping[str, Any], hooks: Hooks[Any]) -> ObjectRef:
    meta = body.get("metadata", {})
    return ObjectRef(
        api_version=str(body.get("apiVersion") or hooks.api_version),
        kind=str(body.get("kind") or hooks.kind),
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        resource_version=str(meta.get("resourceVersion", "")),
    )


class ActiveGate(Protocol):
    async def wait_open(self) -> None: ...


class AlwaysOpen:
    async def wait_open(self) -> None:
        return None


class Controller(Generic[OutcomeT]):
    def __init__(
        self,
        hooks: Hooks[OutcomeT],
        kube: Kube,
        gate: ActiveGate | None = None,
        events: EventPoster | None = None,
    ) -> None:
        self.hooks = hooks
        self.kube = kube
        self.events = events
        self.gate: ActiveGate = gate or AlwaysOpen()
        self.queue = WorkQueue()
        self._bodies: dict[str, tuple[int, bytes]] = {}
        """uid -> (resourceVersion, the slim body as compact JSON): a parsed body costs
        several times its JSON size in Python objects, and thousands are held."""
        self._taken: dict[str, Hashable] = {}
        self._workers: list[asyncio.Task[None]] = []

    # --- input -------------------------------------------------------------------------

    def observe(self, event_type: str | None, body: Body) -> None:
        """One watch event (``None``: the initial listing). Cheap: no I/O."""
        meta = body.get("metadata", {})
        uid = str(meta.get("uid", ""))
        if not uid:
            return
        if event_type == "DELETED":
            self._gone(uid, body)
            return
        current = self._bodies.get(uid)
        if current is not None and _rv(body) < current[0]:
            return  # older than what we hold (our own write's response came first)
        self._store(uid, body)
        if self.hooks.marker(body) != self._taken.get(uid):
            self.queue.add(uid)

    def poke(self, uids: Iterable[str]) -> int:
        """Queue a pass for known objects (a Secret changed, a row drifted, a check is due)."""
        count = 0
        for uid in uids:
            if uid in self._bodies:
                self.queue.add(uid)
                count += 1
        return count

    def known(self) -> Sequence[str]:
        return list(self._bodies)

    def body(self, uid: str) -> Body | None:
        """The newest body held for ``uid`` (a fresh copy)."""
        held = self._bodies.get(uid)
        return None if held is None else dict(json.loads(held[1]))

    def _store(self, uid: str, body: Body) -> None:
        self._bodies[uid] = (_rv(body), json.dumps(body, separators=(",", ":")).encode())

    def busy(self) -> frozenset[str]:
        return self.queue.busy()

    # --- workers -----------------------------------------------------------------------

    def start(self, workers: int) -> None:
        for i in range(workers):
            name = f"aigw-{self.hooks.plural}-worker-{i}"
            self._workers.append(asyncio.create_task(self._work(), name=name))

    async def stop(self) -> None:
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._workers.clear()

    async def _work(self) -> None:
        while True:
            uid = await self.queue.get()
            try:
                await self.gate.wait_open()
                await self._pass(uid)
            except asyncio.CancelledError:
                raise
            except KubeError as exc:
                # A 409/422 is a stale resourceVersion: the watch brings the newer object.
                delay = self.queue.backoff(uid, 0.5 if exc.status in (409, 422) else 5.0)
                log.warning("%s: %s; retrying in %.1fs", self._label(uid), exc, delay)
                self.queue.add_after(uid, delay)
            except Exception:
                delay = self.queue.backoff(uid, ERROR_BACKOFF_S)
                log.exception("%s: pass failed; retrying in %.1fs", self._label(uid), delay)
                self.queue.add_after(uid, delay)
            finally:
                self.queue.done(uid)

    def _label(self, uid: str) -> str:
        meta = (self.body(uid) or {}).get("metadata", {})
        return f"[{meta.get('namespace', '')}/{meta.get('name', uid)}] {self.hooks.kind}"

    def _keep(self, uid: str, body: Body | None) -> Body | None:
        """Adopt the response of our own write as the newest body (None: the object is gone)."""
        if body is None:
            return None
        current = self._bodies.get(uid)
        if current is None or _rv(body) >= current[0]:
            self._store(uid, body)
        self._taken[uid] = self.hooks.marker(body)
        return body

    async def _pass(self, uid: str) -> None:
        body = self.body(uid)
        if body is None:
            return
        hooks = self.hooks
        self._taken[uid] = hooks.marker(body)
        meta = body.get("metadata", {})
        ns, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        finalizers = list(meta.get("finalizers") or [])
        ours = hooks.finalizer in finalizers

        if meta.get("deletionTimestamp"):
            if not ours:
                return  # not ours to hold (never synced, or already released)
            outcome = await hooks.finalize(body)
            hooks.after_pass(body, outcome)
            self._post(body, outcome.events)
            if not outcome.done:
                await self._status(uid, body, outcome.status_patch)
                self._retry(uid, outcome)
                return
            released = await self._set_finalizer(body, present=False)
            log.info("[%s/%s] finalized; finalizer released", ns, name)
            if released is None or not released.get("metadata", {}).get("finalizers"):
                self._gone(uid, body)  # the apiserver removes it now; DELETED follows
            else:
                self._keep(uid, released)
            return

        if not ours:
            # Before the first database write: a delete must always find our finalizer.
            # Its echo may arrive before the response: expect it, so it is not a trigger.
            with_ours = {**meta, "finalizers": [*finalizers, hooks.finalizer]}
            self._taken[uid] = hooks.marker({**body, "metadata": with_ours})
            added = await self._set_finalizer(body, present=True)
            kept = self._keep(uid, added)
            if kept is None:
                return
            body = kept
        outcome = await hooks.reconcile(body)
        hooks.after_pass(body, outcome)  # metrics first: they must not lag behind status
        await self._status(uid, body, outcome.status_patch)
        self._post(body, outcome.events)
        self._retry(uid, outcome)
        log.info("[%s/%s] %s pass done%s", ns, name, hooks.kind, _summary(outcome))

    async def _set_finalizer(self, body: Body, *, present: bool) -> Body | None:
        """Add or release our finalizer, guarded by the body's resourceVersion."""
        meta = body.get("metadata", {})
        return await self.kube.set_finalizer(
            self.hooks.plural,
            str(meta.get("namespace", "")),
            str(meta.get("name", "")),
            str(meta.get("resourceVersion", "")),
            list(meta.get("finalizers") or []),
            self.hooks.finalizer,
            present=present,
        )

    async def _status(self, uid: str, body: Body, patch: dict[str, Any]) -> None:
        if not patch:
            return
        meta = body.get("metadata", {})
        new = await self.kube.patch_status(
            self.hooks.plural, str(meta.get("namespace", "")), str(meta.get("name", "")), patch
        )
        self._keep(uid, new)

    def _post(self, body: Body, events: Sequence[Event]) -> None:
        if not events or self.events is None:
            return
        ref = _ref(body, self.hooks)
        for event in events:
            self.events.post(ref, event.type, event.reason, event.message)

    def _retry(self, uid: str, outcome: PassOutcome) -> None:
        if outcome.retry_after is not None:
            self.queue.add_after(uid, self.queue.backoff(uid, outcome.retry_after))
        else:
            self.queue.succeeded(uid)

    def _gone(self, uid: str, body: Body) -> None:
        self._bodies.pop(uid, None)
        self._taken.pop(uid, None)
        self.queue.forget(uid)
        self.hooks.gone(uid, body)


def _summary(outcome: PassOutcome) -> str:
    parts = []
    if outcome.status_patch:
        # Field names only: status never holds a secret, but logs stay terse anyway.
        parts.append("status: " + ", ".join(sorted(outcome.status_patch)))
    if outcome.retry_after is not None:
        parts.append(f"retry: {outcome.retry_message or 'transient failure'}"[:300])
    return ("; " + "; ".join(parts)) if parts else ""
