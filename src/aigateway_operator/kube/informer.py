"""List-then-watch of one kind, delivering raw events to the event loop.

Our two kinds are watched here rather than through kopf: kopf runs every watch event through
its whole handling cycle (per-object memory, diff-base essence, progress bookkeeping, patch
application), about 3 ms of CPU per event even when only ``on.event`` handlers exist, and a new
object produces three events. This loop does what a client-go informer does and nothing more:

- list (one namespace, or the cluster), deliver every item as ``(None, body)``, and a
  ``DELETED`` for every object known from an earlier listing that is gone now;
- watch from the list's ``resourceVersion`` with bookmarks, delivering each event and keeping
  the newest version; a watch that times out is resumed from there;
- on ``410 Gone`` (the version is too old) list again; on any other error, back off
  exponentially (1 s .. 30 s) and list again.

The blocking client runs in one daemon thread per namespace; events reach the loop through
``call_soon_threadsafe`` in arrival order. Bodies are delivered as parsed JSON (never logged).

Secrets (core ``v1``) are watched *metadata only* (``PartialObjectMetadata``, as client-go's
metadata informers do): the operator learns that a Secret changed without its data ever
crossing the wire; a pass reads the one Secret it needs. With ``report_relist_changes`` a
relisting (after a watch failure or ``410``) delivers an object whose ``resourceVersion``
moved while nobody watched as ``MODIFIED`` and a new one as ``ADDED`` (not as a listing
item), so a change made during an API-server outage is not missed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from aigateway_operator.kube.client import GROUP, VERSION

log = logging.getLogger("aigateway_operator")

Deliver = Callable[[str | None, dict[str, Any]], None]

#: ``Accept`` for metadata-only lists and watches (the server strips everything but metadata).
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
METADATA_WATCH = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"

#: Server-side watch timeout: the stream is re-opened (from the newest version) this often,
#: so a connection silently dropped by a load balancer costs at most this long.
WATCH_TIMEOUT_S = 240
BACKOFF_MAX_S = 30.0


def _uid(body: dict[str, Any]) -> str:
    return str(body.get("metadata", {}).get("uid", ""))


def _key(body: dict[str, Any]) -> tuple[str, str, str]:
    meta = body.get("metadata", {})
    return (
        str(meta.get("namespace", "")),
        str(meta.get("name", "")),
        str(meta.get("resourceVersion", "")),
    )


class Informer:
    def __init__(
        self,
        api: client.ApiClient,
        plural: str,
        namespace: str | None,
        deliver: Deliver,
        loop: asyncio.AbstractEventLoop,
        group: str = GROUP,
        version: str = VERSION,
        *,
        report_relist_changes: bool = False,
    ) -> None:
        self._custom = client.CustomObjectsApi(api)
        self._core = client.CoreV1Api(api)
        self.group, self.version = group, version
        self.plural = plural
        self.namespace = namespace
        self.metadata_only = group == "" and plural == "secrets"
        if group == "" and not self.metadata_only:
            raise ValueError(f"core/{version} {plural}: only Secrets are watched (metadata only)")
        self.report_relist_changes = report_relist_changes
        self._deliver = deliver
        self._loop = loop
        self._stop = threading.Event()
        self._watch: watch.Watch | None = None
        self._known: dict[str, tuple[str, str, str]] = {}  # uid -> (namespace, name, version)
        self._listed_once = False
        self.on_listed: Callable[[], None] = lambda: None
        """Called on the loop after every listing has been delivered."""
        self._thread = threading.Thread(
            target=self._run, name=f"aigw-informer-{plural}-{namespace or 'all'}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        w = self._watch
        if w is not None:
            w.stop()  # type: ignore[no-untyped-call]

    # --- the thread ----------------------------------------------------------------------

    def _send(self, type_: str | None, body: dict[str, Any]) -> None:
        try:
            self._loop.call_soon_threadsafe(self._deliver, type_, body)
        except RuntimeError:  # the loop is closed: the operator is exiting
            self._stop.set()

    def _list_fn(self) -> tuple[Callable[..., Any], tuple[str, ...]]:
        """The generated list/watch function and its arguments."""
        if self.metadata_only:
            if self.namespace:
                return self._core.list_namespaced_secret, (self.namespace,)
            return self._core.list_secret_for_all_namespaces, ()
        if self.namespace:
            return self._custom.list_namespaced_custom_object, (
                self.group, self.version, self.namespace, self.plural,
            )  # fmt: skip
        return self._custom.list_cluster_custom_object, (self.group, self.version, self.plural)

    def _list(self) -> str:
        fn, args = self._list_fn()
        if self.metadata_only:
            resp = fn(*args, _preload_content=False, _headers={"Accept": METADATA_LIST})
            try:
                listed: Any = json.loads(resp.data)
            finally:
                resp.release_conn()
        else:
            listed = fn(*args)
        res: dict[str, Any] = listed if isinstance(listed, dict) else {}
        items: list[dict[str, Any]] = list(res.get("items") or [])
        seen: dict[str, tuple[str, str, str]] = {}
        relist = self._listed_once and self.report_relist_changes
        for item in items:
            if not self.metadata_only:
                item.setdefault("apiVersion", f"{self.group}/{self.version}")
                item.setdefault("kind", str(res.get("kind", "")).removesuffix("List"))
            uid = _uid(item)
            seen[uid] = key = _key(item)
            type_: str | None = None
            if relist:
                before = self._known.get(uid)
                type_ = "ADDED" if before is None else "MODIFIED" if before != key else None
            self._send(type_, item)
        for uid in self._known.keys() - seen.keys():
            # Deleted while we were not watching: its last body is not known, its name is.
            namespace, name, _ = self._known[uid]
            self._send("DELETED", {"metadata": {"uid": uid, "namespace": namespace, "name": name}})
        self._known = seen
        self._listed_once = True
        self._loop.call_soon_threadsafe(self.on_listed)
        return str(res.get("metadata", {}).get("resourceVersion", ""))

    def _stream(self, resource_version: str) -> str:
        """Watch until the server ends the stream; returns the newest version seen."""
        self._watch = w = watch.Watch()  # type: ignore[no-untyped-call]
        fn, args = self._list_fn()
        extra = {"_headers": {"Accept": METADATA_WATCH}} if self.metadata_only else {}
        for event in w.stream(  # type: ignore[no-untyped-call]
            fn,
            *args,
            **extra,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_TIMEOUT_S,
            _request_timeout=WATCH_TIMEOUT_S + 30,
            deserialize=False,
        ):
            type_ = event.get("type")
            obj = event.get("object") or {}
            version = str(obj.get("metadata", {}).get("resourceVersion", ""))
            if version:
                resource_version = version
            if type_ == "BOOKMARK":
                continue
            if type_ == "DELETED":
                self._known.pop(_uid(obj), None)
            else:
                self._known[_uid(obj)] = _key(obj)
            self._send(type_, obj)
            if self._stop.is_set():
                break
        return resource_version

    def _run(self) -> None:
        backoff = 1.0
        resource_version = ""
        while not self._stop.is_set():
            try:
                if not resource_version:
                    resource_version = self._list()
                resource_version = self._stream(resource_version)
                backoff = 1.0
            except ApiException as exc:
                if exc.status == 410:
                    log.info("watch of %s expired (410 Gone): listing again", self.plural)
                    resource_version = ""
                    continue
                log.warning(
                    "watch of %s failed (HTTP %s); listing again in %.0fs",
                    self.plural,
                    exc.status,
                    backoff,
                )
                resource_version = ""
            except Exception as exc:  # connection refused, reset, timeouts
                if self._stop.is_set():
                    return
                log.warning(
                    "watch of %s failed (%s); listing again in %.0fs",
                    self.plural,
                    type(exc).__name__,
                    backoff,
                )
                resource_version = ""
            self._stop.wait(backoff)  # backoff before relisting, interruptible by stop()
            backoff = min(BACKOFF_MAX_S, backoff * 2)
