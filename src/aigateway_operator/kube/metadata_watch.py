"""A metadata-only watch of Secrets: what kopf cannot do for us.

kopf watches our two kinds. Secrets are watched here instead, because kopf can only watch
whole objects: a kopf watch of Secrets would bring every Secret's data in the namespace (or
the cluster) into the operator's memory and through its handling cycle. This watch asks the
API server for ``PartialObjectMetadata`` (the ``Accept`` header client-go's metadata
informers and controller-runtime's ``OnlyMetadata`` use), so a Secret's data never crosses
the wire here; a pass reads the one Secret it needs by name.

It does what a client-go informer does and nothing more:

- list (one namespace, or the cluster), deliver every item as ``(None, meta)``; on a
  *relisting* (after a watch failure or ``410 Gone``) an item whose ``resourceVersion``
  moved while nobody watched is delivered as ``MODIFIED`` and a new one as ``ADDED``, and a
  Secret known before and gone now as ``DELETED``, so a change made during an API-server
  outage is not missed;
- watch from the list's ``resourceVersion`` with bookmarks, delivering each event; a watch
  that times out is resumed from the newest version;
- on ``410 Gone`` list again; on any other error back off exponentially (1 s .. 30 s) and
  list again.

The blocking client runs in one daemon thread per namespace; events reach the event loop
through ``call_soon_threadsafe`` in arrival order. What is delivered is only metadata.
Requests go through :func:`aigateway_operator.kube.client.send` (the client's own pool and
credentials); the stream is read line by line, one JSON watch event per line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

from kubernetes import client

from aigateway_operator.kube.calls import declare
from aigateway_operator.kube.client import send

__all__ = ["METADATA_LIST", "METADATA_WATCH", "Deliver", "SecretMetadataWatch", "WatchError"]

log = logging.getLogger("aigateway_operator")

Deliver = Callable[[str | None, dict[str, Any]], None]
"""``(event type or None for a listing item, the Secret's metadata-only body)``."""

#: ``Accept`` for metadata-only lists and watches (the server strips everything but metadata).
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
METADATA_WATCH = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"

# The calls of this module (kube/calls.py), in each served namespace or cluster-wide.
LIST_SECRETS = declare("list", "", "secrets", why="the Secret metadata watch (listing)")
WATCH_SECRETS = declare("watch", "", "secrets", why="the Secret metadata watch")

#: Server-side watch timeout: the stream is re-opened (from the newest version) this often,
#: so a connection silently dropped by a load balancer costs at most this long.
WATCH_TIMEOUT_S = 240
BACKOFF_MAX_S = 30.0
CONNECT_TIMEOUT_S = 10.0


class WatchError(RuntimeError):
    """The API server refused a list or a watch (``status``: HTTP code; 410: too old)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def _uid(body: dict[str, Any]) -> str:
    return str(body.get("metadata", {}).get("uid", ""))


def _key(body: dict[str, Any]) -> tuple[str, str, str]:
    meta = body.get("metadata", {})
    return (
        str(meta.get("namespace", "")),
        str(meta.get("name", "")),
        str(meta.get("resourceVersion", "")),
    )


class SecretMetadataWatch:
    def __init__(
        self,
        api: client.ApiClient,
        namespace: str | None,
        deliver: Deliver,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._api = api
        self.namespace = namespace
        self._deliver = deliver
        self._loop = loop
        self._stop = threading.Event()
        self._response: Any = None
        self._known: dict[str, tuple[str, str, str]] = {}  # uid -> (namespace, name, version)
        self._listed_once = False
        self._thread = threading.Thread(
            target=self._run, name=f"aigw-secret-watch-{namespace or 'all'}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        response = self._response
        if response is not None:  # unblocks the thread's read
            with contextlib.suppress(Exception):
                response.shutdown()
            with contextlib.suppress(Exception):
                response.release_conn()

    # --- the thread ----------------------------------------------------------------------

    def _send(self, type_: str | None, body: dict[str, Any]) -> None:
        try:
            self._loop.call_soon_threadsafe(self._deliver, type_, body)
        except RuntimeError:  # the loop is closed: the operator is exiting
            self._stop.set()

    def _path(self) -> str:
        if self.namespace:
            return f"/api/v1/namespaces/{quote(self.namespace, safe='')}/secrets"
        return "/api/v1/secrets"

    def _list(self) -> str:
        resp = send(self._api, "GET", self._path(), accept=METADATA_LIST)
        raw = resp.read()  # type: ignore[no-untyped-call]
        if resp.status != 200:
            raise WatchError(int(resp.status))
        listed: Any = json.loads(raw)
        res: dict[str, Any] = listed if isinstance(listed, dict) else {}
        items: list[dict[str, Any]] = list(res.get("items") or [])
        seen: dict[str, tuple[str, str, str]] = {}
        relist = self._listed_once
        for item in items:
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
        return str(res.get("metadata", {}).get("resourceVersion", ""))

    def _lines(self, response: Any) -> Iterator[bytes]:
        """The stream's lines (one watch event each), as they arrive."""
        buffer = b""
        for chunk in response.stream(amt=None, decode_content=False):
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    yield line

    def _stream(self, resource_version: str) -> str:
        """Watch until the server ends the stream; returns the newest version seen."""
        query = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(WATCH_TIMEOUT_S)),
        ]
        resp = send(
            self._api,
            "GET",
            self._path(),
            query=query,
            accept=METADATA_WATCH,
            timeout=(CONNECT_TIMEOUT_S, WATCH_TIMEOUT_S + 30),
        )
        if resp.status != 200:
            resp.read()  # type: ignore[no-untyped-call]
            raise WatchError(int(resp.status))
        self._response = resp.response
        try:
            for line in self._lines(resp.response):
                event = json.loads(line)
                type_ = event.get("type")
                obj = event.get("object") or {}
                if type_ == "ERROR":
                    raise WatchError(int(obj.get("code") or 500))
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
        finally:
            self._response = None
            with contextlib.suppress(Exception):
                resp.response.release_conn()
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
            except WatchError as exc:
                if exc.status == 410:
                    log.info("Secret watch expired (410 Gone): listing again")
                    resource_version = ""
                    continue
                log.warning(
                    "Secret watch failed (HTTP %s); listing again in %.0fs", exc.status, backoff
                )
                resource_version = ""
            except Exception as exc:  # connection refused, reset, timeouts
                if self._stop.is_set():
                    return
                log.warning(
                    "Secret watch failed (%s); listing again in %.0fs", type(exc).__name__, backoff
                )
                resource_version = ""
            self._stop.wait(backoff)  # backoff before relisting, interruptible by stop()
            backoff = min(BACKOFF_MAX_S, backoff * 2)
