"""The one in-memory record of an object: everything the operator keeps about it while it exists.

The operator keeps three kinds of state, and only three:

- **per-object records** (:class:`ObjectRecord`, one dict per kind in its
  :class:`~aigateway_operator.controllers.runner.Runner`): what wakes and serialises the
  object's passes, what its last status patch left, and a small kind-specific ``part``
  (AIProvider: the row id and version drift compares, what the hostname check found;
  AIGatewayCoderdKey: the Secret our last pass wrote and when the opted-in workloads were
  last found stamped). A record is made by the object's first watch event and dropped by
  its ``DELETED`` event, in one place (``Runner.observe``), which then calls the kind's
  ``forget``: dropping the record is forgetting the object. ``forget`` only *acts* (it
  collects rows, wakes peers, removes the object's Prometheus series and Event aggregation
  keys); it has no state of its own to clean;
- **one cross-object index** per kind that needs one (AIProvider's
  :class:`~aigateway_operator.controllers.aiprovider.index.ProviderIndex`: name claims and
  Secret -> referrers, which are questions about *other* objects, so they cannot live on a
  record);
- **status**, in the API server.

Anything that must outlive the object (ownership of rows, the actors that wrote them) is in
the database (``aigateway_operator`` schema), never here.

What stays outside the records, on purpose:

- the garbage collector's *missing-since* clock (``Collector``) is about rows whose object is
  **gone**: there is no record for it (a record exists exactly while the watch knows the
  object), so it is keyed by the row's owner, rebuilt from the ownership records on every
  sweep, and bounded by the rows of missing objects;
- the Event recorder's aggregation keys (``kube.events``) are a bounded LRU (4,096 keys, as
  client-go's); the kind's ``forget`` drops the object's keys at once;
- the Prometheus series of an object are one small entry in ``metrics.ObjectSeries`` (a
  collector that writes them at scrape time); the kind's ``forget`` drops it, and a pass
  that ends after its record was dropped does not write it again.

Small by construction: ``__slots__``, no copy of the object's body (``live`` is kopf's own
body while the daemon runs; ``written_status`` is the status our last patch returned, kept
only until kopf's view catches up), and the wake-up is a flag plus a future that exists only
while the daemon waits (an ``asyncio.Event`` carries a dict and a deque: ~760 bytes each).
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Mapping
from typing import Any, Generic, TypeVar

__all__ = ["ObjectRecord", "Part"]

Part = TypeVar("Part")


class ObjectRecord(Generic[Part]):
    """What the operator keeps about one object (see the module docs)."""

    __slots__ = (
        "_waiter",
        "ending",
        "failures",
        "live",
        "lock",
        "name",
        "namespace",
        "part",
        "taken",
        "uid",
        "woken",
        "written_rv",
        "written_status",
    )

    def __init__(self, uid: str, namespace: str, name: str, part: Part) -> None:
        self.uid = uid
        self.namespace = namespace
        self.name = name
        self.part = part
        """The kind's own per-object state (a small ``__slots__`` object)."""
        self.lock = asyncio.Lock()
        """One pass (or release, or collection) of the object at a time."""
        self.woken = False
        """Something asked for another pass since the current one started."""
        self._waiter: asyncio.Future[None] | None = None
        self.taken: Hashable = None
        """The marker of the body the last pass started from."""
        self.written_rv = 0
        self.written_status: Any = None
        """What our last status patch left: its ``resourceVersion`` and ``status`` (newer than
        kopf's view until the echo; dropped once kopf's view has caught up). Not the whole
        object: a full copy per object, managedFields and all, was ~20 KB each."""
        self.failures = 0
        self.live: Mapping[str, Any] | None = None
        """kopf's live view of the object while its daemon runs (kopf's, not a copy)."""
        self.ending = False
        """The object is being deleted or is gone (a watch event said so, or its release is
        done): no pass runs for it again, whatever a stale body says. Never reset: a
        re-created object of the same name has another uid, so another record."""

    # --- waking ---------------------------------------------------------------------------

    def wake(self) -> None:
        self.woken = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def sleep(self, delay: float) -> None:
        """Wait until woken or ``delay`` has passed (a wake since the pass began counts)."""
        if self.woken:
            return
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(delay):
                await waiter
        except TimeoutError:
            pass
        finally:
            self._waiter = None

    def forget_written(self) -> None:
        self.written_rv, self.written_status = 0, None
