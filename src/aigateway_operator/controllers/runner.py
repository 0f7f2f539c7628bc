"""The life of one object between kopf and its kind's pass (no kopf here; no I/O of its own
beyond the status patch and the Events a pass asks for).

kopf gives every object a daemon (``operator.handlers``); the daemon calls
:meth:`Runner.serve`, which runs the kind's level-triggered pass, waits, and runs it again:

- **when something changed**: :meth:`Runner.observe` (kopf's ``on.event`` for the object's
  own events) wakes the object when its *marker* moves: generation, deletion, our finalizer,
  an ``aigateway.dev/*`` annotation. Echoes of our own status patches move none of these.
  :meth:`Runner.poke` wakes objects for everything else (a referenced Secret changed, a row
  drifted in Coder, a name became free): in memory, never by writing to the object.
- **when it is due**: after a transient failure (exponential backoff from the pass's
  ``retry_after``), at the pass's ``next_due`` (an STS verdict to refresh, a rotation, a
  grace period), and at the periodic resync (``AIGW_RESYNC_INTERVAL_S``, jittered). This is
  the operator's only way to "run again later": a timed wait inside kopf's daemon.

Because passes run inside kopf's daemons, they stop when kopf stops the daemons: on deletion
(then kopf's ``on.delete`` handler calls :meth:`Runner.release`), on exit, and when kopf
peering pauses this replica; what a kind keeps per running daemon (the drift watch's rows,
on the object's record) is dropped then too (``on_stop``, :meth:`Runner.serving`). A pass
that has started is shielded from that cancellation and finishes (each store call is one
transaction; a pass is seconds at most); the object's lock makes :meth:`release` wait for
it, so a finalizer is never released under a running pass.

Everything kept about an object is its record (:mod:`.record`), in :attr:`Runner.records`:
made by its first watch event, dropped by its ``DELETED`` event in one place
(:meth:`Runner.observe`), which then tells the kind (``forget``).

One pass per object at a time (the object's lock); at most ``AIGW_MAX_WORKERS`` passes of a
kind at once (a semaphore), so a burst of thousands of new objects does not run thousands of
passes at once.

The pass never writes to Coder before our finalizer is on the object: a delete must always
find it. kopf adds the finalizer in the object's first handling cycle (or the chart's
admission policy adds it at creation); its watch echo wakes the object.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, Generic, Protocol, TypeVar

from aigateway_operator import metrics
from aigateway_operator.api.common import ConditionType
from aigateway_operator.api.identity import ANNOTATION_PREFIX, FINALIZER, Kind
from aigateway_operator.controllers.record import ObjectRecord
from aigateway_operator.controllers.shared import ObjectIdentity, PassOutcome, record_pass
from aigateway_operator.controllers.wiring import Wiring
from aigateway_operator.kube import KubeError

__all__ = ["ERROR_BACKOFF_S", "Body", "KindPasses", "Runner", "marker", "pass_fields"]

log = logging.getLogger("aigateway_operator")

Body = dict[str, Any]

#: Base delay after an unexpected error in a pass (doubling per consecutive failure).
ERROR_BACKOFF_S = 2.0
BACKOFF_CAP_S = 300.0
#: The resync interval is spread by this fraction, so objects created together do not all
#: come due in the same second forever after.
RESYNC_JITTER = 0.1


Part = TypeVar("Part")


class KindPasses(Protocol[Part]):
    """What a kind plugs into its :class:`Runner` (``controllers.aiprovider``/``gatewaykey``).

    ``Part`` is the kind's own per-object state, carried on the object's
    :class:`~aigateway_operator.controllers.record.ObjectRecord`."""

    kind: Kind

    def new_part(self) -> Part:
        """A fresh kind-specific part for a new record."""
        ...

    async def reconcile(
        self, body: Body, ident: ObjectIdentity, record: ObjectRecord[Part]
    ) -> PassOutcome:
        """One level-triggered pass over a live object that carries our finalizer; ``ident``
        is ``body``'s identity, built once per pass (here); ``record`` is the object's own."""
        ...

    async def finalize(
        self, body: Body, ident: ObjectIdentity, record: ObjectRecord[Part]
    ) -> PassOutcome:
        """Deletion: ``done`` lets kopf release the finalizer (``ident``, ``record`` as for
        :meth:`reconcile`)."""
        ...

    def observed(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """Every watch event of the kind (indexes); must be cheap and must not fail."""
        ...

    def forget(self, ident: ObjectIdentity, record: ObjectRecord[Part] | None) -> None:
        """The object has left the cluster (its finalizer released, or deleted without it);
        its record (None if the watch never showed it) is already dropped: whatever the kind
        does here is action (collect rows, wake peers, drop metric series), not cleanup.

        ``record.lock`` is held while a pass of it still runs, so whatever is done with the
        object's rows waits for that pass."""
        ...


def marker(body: Mapping[str, Any]) -> Hashable:
    """What needs a pass when it changes: never status, so our own writes do not echo."""
    meta = body.get("metadata") or {}
    ours = tuple(
        sorted(
            (k, str(v))
            for k, v in (meta.get("annotations") or {}).items()
            if k.startswith(ANNOTATION_PREFIX + "/")
        )
    )
    return (
        meta.get("generation"),
        bool(meta.get("deletionTimestamp")),
        FINALIZER in (meta.get("finalizers") or ()),
        ours,
    )


#: What a pass reads of ``metadata`` (its identity, its marker, the resourceVersion): a
#: snapshot copies only these, never ``managedFields`` and the rest.
PASS_METADATA = (
    "name",
    "namespace",
    "uid",
    "generation",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "finalizers",
    "annotations",
)


def _private_copy(body: Mapping[str, Any]) -> Body:
    """The part of kopf's body a pass reads, as a private copy for one pass."""
    snapshot: Body = {
        k: copy.deepcopy(body.get(k)) for k in ("apiVersion", "kind", "spec", "status") if k in body
    }
    meta = body.get("metadata") or {}
    snapshot["metadata"] = {k: copy.deepcopy(meta[k]) for k in PASS_METADATA if k in meta}
    return snapshot


def _rv(body: Mapping[str, Any] | None) -> int:
    try:
        return int(((body or {}).get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


class Runner(Generic[Part]):
    def __init__(
        self,
        passes: KindPasses[Part],
        wiring: Wiring,
        limit: asyncio.Semaphore,
        *,
        resync_s: float,
        rng: random.Random | None = None,
        on_stop: Callable[[ObjectRecord[Part]], None] | None = None,
    ) -> None:
        """``on_stop(record)`` is called when an object's daemon ends (kopf stopped it: the
        object is deleted, the operator exits, or peering paused this replica): what the
        kind keeps only for running daemons goes with it."""
        self.passes = passes
        self._on_stop = on_stop
        self.kind = passes.kind
        self.wiring = wiring
        self._limit = limit
        self._resync_s = resync_s
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self.records: dict[str, ObjectRecord[Part]] = {}
        """Every object the watch shows, by uid: the operator's per-object state, all of it
        (``controllers.record``). Read it; only the runner adds and drops records."""
        self._inflight: set[asyncio.Task[float]] = set()
        self._waiting = 0

    # --- input ----------------------------------------------------------------------------

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """One watch event of the kind (kopf's ``on.event``; ``None``: a listing item)."""
        self.passes.observed(event_type, body)
        meta = body.get("metadata") or {}
        uid = str(meta.get("uid", ""))
        if not uid:
            return
        if event_type == "DELETED":
            self._forget(uid, body)
            return
        record = self._record(uid, meta)
        if record.written_rv and _rv(body) >= record.written_rv:
            # kopf's view has caught up with our last status patch (its echo): the status it
            # returned is kopf's now too, so the record stops holding a second copy (~7 KB
            # an object at rest, measured with bench/bench_memory_profile.py).
            record.forget_written()
        if meta.get("deletionTimestamp"):
            record.ending = True
        if marker(body) != record.taken:
            record.wake()

    def _forget(self, uid: str, body: Mapping[str, Any]) -> None:
        """The one forget path: the record dropped, then the kind told (it acts; it has
        nothing of the object left to clean)."""
        record = self.records.pop(uid, None)
        if record is not None:
            record.ending = True
            record.wake()
        self.passes.forget(ObjectIdentity.from_body(self.kind, body), record)

    def poke(self, uids: Iterable[str]) -> int:
        """Wake known objects (a Secret changed, a row drifted, a name became free)."""
        count = 0
        for uid in uids:
            record = self.records.get(uid)
            if record is not None:
                record.wake()
                count += 1
        return count

    def serving(self) -> frozenset[str]:
        """Objects whose daemon runs now (none while peering pauses this replica)."""
        return frozenset(uid for uid, r in self.records.items() if r.live is not None)

    def busy(self) -> frozenset[str]:
        """Objects whose pass is running right now."""
        return frozenset(uid for uid, r in self.records.items() if r.lock.locked())

    def _record(self, uid: str, meta: Mapping[str, Any]) -> ObjectRecord[Part]:
        record = self.records.get(uid)
        if record is None:
            record = self.records[uid] = ObjectRecord(
                uid,
                str(meta.get("namespace", "")),
                str(meta.get("name", "")),
                self.passes.new_part(),
            )
        return record

    # --- the daemon -----------------------------------------------------------------------

    async def serve(self, body: Mapping[str, Any], stopped: Callable[[], bool]) -> None:
        """Pass, wait, pass again, until kopf stops the object's daemon (or cancels it)."""
        meta = body.get("metadata") or {}
        uid = str(meta.get("uid", ""))
        record = self._record(uid, meta)
        record.live = body
        try:
            while not stopped() and not record.ending:
                record.woken = False
                task = asyncio.create_task(self._pass(record), name=f"aigw-pass-{uid}")
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
                # A started pass finishes even if kopf cancels the daemon meanwhile.
                delay = await asyncio.shield(task)
                if stopped() or record.ending:
                    break
                await record.sleep(delay)
        finally:
            record.live = None
            if self._on_stop is not None:
                self._on_stop(record)

    def idle(self) -> bool:
        """Whether no pass is running (a started pass counts until it ends, cancelled or
        not)."""
        return not self._inflight

    async def drain(self, within_s: float) -> None:
        """Let passes that are still running finish (the operator is exiting)."""
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=within_s)

    def _snapshot(self, record: ObjectRecord[Part]) -> Body | None:
        """The newest known state of the object, as a private copy for one pass.

        Never kept (the record holds no body), and without ``metadata.managedFields``: no
        pass reads it, and it is most of an object's bytes."""
        live = record.live
        if live is None:
            return None
        snapshot = _private_copy(live)
        if record.written_rv:
            if record.written_rv >= _rv(live):  # kopf has not seen our patch yet: ours is newer
                snapshot["status"] = copy.deepcopy(record.written_status)
                meta = snapshot.setdefault("metadata", {})
                meta["resourceVersion"] = str(record.written_rv)
            else:
                record.forget_written()  # kopf's view has caught up
        return snapshot

    async def _pass(self, record: ObjectRecord[Part]) -> float:
        """One pass; returns how long to wait before the next one (if nothing wakes it)."""
        self._waiting += 1
        metrics.WORK_PENDING.labels(self.kind.kind).set(self._waiting)
        try:
            await self._limit.acquire()
        finally:
            self._waiting -= 1
            metrics.WORK_PENDING.labels(self.kind.kind).set(self._waiting)
        try:
            async with record.lock:
                return await self._locked_pass(record)
        finally:
            self._limit.release()

    async def _locked_pass(self, record: ObjectRecord[Part]) -> float:
        body = self._snapshot(record)
        if body is None or record.ending:
            # Checked under the lock: a release or a collection that held it has run, and
            # kopf's view of a deleted object may still show it alive.
            return self._resync()
        meta = body.get("metadata") or {}
        record.taken = marker(body)
        if meta.get("deletionTimestamp"):
            return self._resync()  # kopf stops this daemon and calls release()
        if FINALIZER not in (meta.get("finalizers") or ()):
            return self._resync()  # the finalizer's watch echo wakes us
        ident = ObjectIdentity.from_body(self.kind, body)
        try:
            with metrics.RECONCILE_SECONDS.labels(self.kind.kind).time():
                outcome = await self.passes.reconcile(body, ident, record)
        except Exception:
            metrics.count_pass(self.kind.kind, "error")
            delay = self._backoff(record, ERROR_BACKOFF_S)
            log.exception(
                "%s pass failed; retrying in %.1fs", self.kind.kind, delay, extra=ident.log
            )
            return delay
        if self.records.get(record.uid) is record:  # not forgotten while the pass ran
            # Metrics first: they must not lag behind status.
            record_pass(ident, outcome)
        try:
            await self._apply(record, ident, outcome)
        except KubeError as exc:
            # A 409/422 is a stale view: the watch brings the newer object.
            if exc.status == 404:
                return self._resync()
            delay = self._backoff(record, 0.5 if exc.status in (409, 422) else 5.0)
            log.warning("%s; retrying in %.1fs", exc, delay, extra=ident.log)
            return delay
        log.info(
            "%s pass done%s",
            self.kind.kind,
            _summary(outcome),
            extra={**ident.log, **pass_fields(outcome)},
        )
        return self._next(record, outcome)

    async def _apply(
        self, record: ObjectRecord[Part], ident: ObjectIdentity, outcome: PassOutcome
    ) -> None:
        """Patch the status the pass asked for and queue its Events."""
        if outcome.status_patch:
            new = await self.wiring.kube.patch_status(
                self.kind.plural, ident.namespace, ident.name, outcome.status_patch
            )
            if new is None:
                raise KubeError(f"{self.kind.kind} {ident.label} is gone", 404)
            record.written_rv = _rv(new)
            record.written_status = new.get("status")
        recorder = self.wiring.events
        if recorder is not None:
            for event in outcome.events:
                recorder.post(ident.ref(), event.type, event.reason, event.message)

    def _next(self, record: ObjectRecord[Part], outcome: PassOutcome) -> float:
        if outcome.retry_after is not None:
            return self._backoff(record, outcome.retry_after)
        record.failures = 0
        wait = self._resync()
        if outcome.next_due is not None:
            due = (outcome.next_due - self.wiring.clock()).total_seconds()
            wait = min(wait, max(0.0, due))
        return wait

    def _backoff(self, record: ObjectRecord[Part], base: float) -> float:
        """Exponential backoff for consecutive failures: base, 2x base, ... up to the cap."""
        delay = min(BACKOFF_CAP_S, base * 2 ** min(record.failures, 10))
        record.failures += 1
        return float(delay)

    def _resync(self) -> float:
        spread = self._resync_s * RESYNC_JITTER
        return self._resync_s + self._rng.uniform(-spread, spread)

    # --- deletion -------------------------------------------------------------------------

    async def release(self, body: Mapping[str, Any]) -> PassOutcome:
        """kopf's ``on.delete``: finalize under the object's lock (after any running pass),
        patch status while it waits, queue the Events. ``done`` releases the finalizer."""
        meta = body.get("metadata") or {}
        record = self._record(str(meta.get("uid", "")), meta)
        snapshot = _private_copy(body)
        if record.written_rv and record.written_rv > _rv(snapshot):
            snapshot["status"] = copy.deepcopy(record.written_status)
        ident = ObjectIdentity.from_body(self.kind, snapshot)
        record.ending = True  # kopf calls this only for an object being deleted
        async with record.lock:
            outcome = await self.passes.finalize(snapshot, ident, record)
        if outcome.done:
            metrics.count_pass(self.kind.kind, "deleted")
            recorder = self.wiring.events
            if recorder is not None:
                for event in outcome.events:
                    recorder.post(ident.ref(), event.type, event.reason, event.message)
            return outcome
        try:
            await self._apply(record, ident, outcome)
        except KubeError as exc:
            log.warning("%s", exc, extra=ident.log)
        return outcome


def pass_fields(outcome: PassOutcome) -> dict[str, str]:
    """The pass's outcome as log fields, ``extra=`` beside the object's (``log_ref``):
    ``ready`` and ``reason``, Ready's status and reason after the pass (Ready carries the
    reason of the condition that blocks it). kopf's JSON formatter emits every ``extra`` as a
    key of the line (``AIGW_LOG_FORMAT=json``), so a log query can select passes by reason;
    the text line says the same in words (:func:`_summary`)."""
    for c in outcome.conditions:
        if c.type == ConditionType.READY:
            return {"ready": c.status.value, "reason": str(c.reason)}
    return {}


def _summary(outcome: PassOutcome) -> str:
    parts = []
    fields = pass_fields(outcome)
    if fields:
        parts.append(f"Ready={fields['ready']} ({fields['reason']})")
    if outcome.status_patch:
        # Field names only: status never holds a secret, but logs stay terse anyway.
        parts.append("status: " + ", ".join(sorted(outcome.status_patch)))
    if outcome.retry_after is not None:
        parts.append(f"retry: {outcome.retry_message or 'transient failure'}"[:300])
    return ("; " + "; ".join(parts)) if parts else ""
