"""The calls the operator makes to the Kubernetes API itself (kopf makes the rest).

kopf watches our two kinds and manages their finalizer; what it does not do for us is read a
Secret, write a gateway-key Secret, patch our status with a minimal merge patch, check that
an object still exists, post aggregated Events, and ask the API server whether an admission
request's requester may read a Secret (a SubjectAccessReview). Those go through :class:`Kube`.

**One request style, one error rule.** Every call is one :meth:`Kube._send`: a path, a
method, a plain-JSON body, through the ``kubernetes`` client's own connection pool, TLS and
credentials (its bearer token is refreshed as the client does), built with the client's
public request builder (``ApiClient.param_serialize`` + ``ApiClient.call_api``, which the
generated API methods use underneath). The generated per-operation methods are not used:
they validate every argument with pydantic and walk every body through the model layer,
which cost more CPU than the request itself. Every non-2xx answer becomes one
:class:`KubeError` naming what was attempted, the HTTP status and the server's ``reason``
(never the response body, never a value we sent); a 404 is "not there" (``None``/``False``)
where a caller asks for it.

The client blocks, so each call runs in a worker thread (``asyncio.to_thread``): a blocking
call on kopf's event loop would stall every watch. Secret values read here are returned as
bytes to the caller and never logged.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from kubernetes import client
from kubernetes.client import rest

from aigateway_operator.api.identity import AIGATEWAYCODERDKEY, AIPROVIDER, GROUP, VERSION
from aigateway_operator.kube.calls import ApiCall, declare

__all__ = [
    "FIELD_MANAGER",
    "WORKLOAD_KINDS",
    "Kube",
    "KubeError",
    "ObjectRef",
    "Requester",
    "SecretData",
    "Workload",
    "send",
]

REQUEST_TIMEOUT_S = 30.0

# --- every call this module makes (kube/calls.py: the chart's RBAC is tested against them) -----
READ_SECRET = declare("get", "", "secrets", why="a referenced Secret")
CREATE_SECRET = declare("create", "", "secrets", why="a gateway key's Secret")
REPLACE_SECRET = declare("update", "", "secrets", why="a gateway key's Secret on rotation")
DELETE_SECRET = declare("delete", "", "secrets", why="a renamed gateway key's old Secret")
DISOWN_SECRET = declare("patch", "", "secrets", why="an orphaned key's Secret disowned")
CREATE_EVENT = declare("create", "", "events", why="a new Event")
PATCH_EVENT = declare("patch", "", "events", why="a repeated Event: count, lastTimestamp")
#: Opted-in workloads restarted onto a new gateway key (controllers/gatewaykey/restart.py).
_WORKLOAD_CALLS: dict[tuple[str, str], ApiCall] = {}
for _plural in ("deployments", "statefulsets"):
    _WORKLOAD_CALLS["list", _plural] = declare(
        "list", "apps", _plural, why="which workloads opted in to restarts on rotation"
    )
    _WORKLOAD_CALLS["get", _plural] = declare(
        "get", "apps", _plural, why="an opted-in workload's pod template annotations"
    )
    _WORKLOAD_CALLS["patch", _plural] = declare(
        "patch", "apps", _plural, why="stamp the pod template: restart onto the new key"
    )
REVIEW_ACCESS = declare(
    "create",
    "authorization.k8s.io",
    "subjectaccessreviews",
    why="may the requester get the Secret a change points at",
    admission=True,
)
_OBJECT_CALLS: dict[tuple[str, str], ApiCall] = {}
for _plural in (AIPROVIDER.plural, AIGATEWAYCODERDKEY.plural):
    _OBJECT_CALLS["get", _plural] = declare("get", GROUP, _plural, why="does it still exist")
    _OBJECT_CALLS["list", _plural] = declare("list", GROUP, _plural, why="uids at start")
    _OBJECT_CALLS["patch-status", _plural] = declare("patch", GROUP, _plural, "status")

#: The HTTP method of each verb (a request whose method is not its call's verb is a bug).
_METHODS = {
    "get": "GET",
    "list": "GET",
    "create": "POST",
    "update": "PUT",
    "patch": "PATCH",
    "delete": "DELETE",
}
#: Who owns the fields we write, in ``managedFields``.
FIELD_MANAGER = "aigateway-operator"


class KubeError(RuntimeError):
    """A Kubernetes API call failed (other than a 404 the caller asked to see as absent)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SecretData:
    """A Secret's data (decoded bytes per key) and the identity of that version."""

    namespace: str
    name: str
    uid: str
    resource_version: str
    data: dict[str, bytes] = field(repr=False)
    labels: dict[str, str] = field(default_factory=dict)
    owner_uids: tuple[str, ...] = ()
    annotations: dict[str, str] = field(default_factory=dict)
    owner_kinds: tuple[str, ...] = ()


@dataclass(frozen=True)
class Workload:
    """A Deployment or StatefulSet as the restart-on-rotation step needs it."""

    kind: str
    """``Deployment`` or ``StatefulSet``."""
    namespace: str
    name: str
    uid: str
    annotations: dict[str, str] = field(default_factory=dict)
    """The object's own annotations (where the opt-in is)."""
    template_annotations: dict[str, str] = field(default_factory=dict)
    """Its pod template's annotations (where the stamp goes); empty from a metadata list."""


#: The workload kinds that can opt into restarts: kind -> plural under ``apps/v1``.
WORKLOAD_KINDS = {"Deployment": "deployments", "StatefulSet": "statefulsets"}
#: What ``list_workloads`` asks for: metadata only (no pod templates, no status).
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


@dataclass(frozen=True)
class ObjectRef:
    """An object an Event is about."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str
    resource_version: str = ""


@dataclass(frozen=True)
class Requester:
    """Who made an admission request, as its ``userInfo`` says: what a SubjectAccessReview
    needs to ask about that user. ``extra`` can carry a token's id: it is only ever sent back
    to the API server in the review, never logged or stored (not in ``repr``)."""

    username: str
    groups: tuple[str, ...] = ()
    uid: str = field(default="", repr=False)
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict, repr=False)


def _reason(raw: bytes) -> str:
    """The ``reason`` of a Kubernetes Status response (never its whole body)."""
    try:
        status = json.loads(raw)
    except ValueError:
        return ""
    return str(status.get("reason", "")) if isinstance(status, dict) else ""


def _path(prefix: str, namespace: str, plural: str, name: str = "", sub: str = "") -> str:
    """``{prefix}/namespaces/{namespace}/{plural}[/{name}][/{sub}]``, names escaped."""
    out = f"{prefix}/namespaces/{quote(namespace, safe='')}/{plural}"
    if name:
        out += "/" + quote(name, safe="")
    return out + (f"/{sub}" if sub else "")


def _objects(plural: str, namespace: str, name: str = "", sub: str = "") -> str:
    return _path(f"/apis/{GROUP}/{VERSION}", namespace, plural, name, sub)


def _secrets(namespace: str, name: str = "") -> str:
    return _path("/api/v1", namespace, "secrets", name)


def _secret_data(obj: dict[str, Any]) -> SecretData:
    meta = obj.get("metadata") or {}
    return SecretData(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        resource_version=str(meta.get("resourceVersion", "")),
        data={k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()},
        labels=dict(meta.get("labels") or {}),
        owner_uids=tuple(str(o.get("uid")) for o in meta.get("ownerReferences") or []),
        annotations=dict(meta.get("annotations") or {}),
        owner_kinds=tuple(str(o.get("kind")) for o in meta.get("ownerReferences") or []),
    )


def send(
    api: client.ApiClient,
    method: str,
    path: str,
    *,
    query: list[tuple[str, str]] | None = None,
    body: Any = None,
    accept: str = "application/json",
    content_type: str = "application/json",
    timeout: float | tuple[float, float] = REQUEST_TIMEOUT_S,
) -> rest.RESTResponse:
    """The one way this package talks to the API server: one blocking request, its response
    not yet read (a watch reads it as a stream). Connection failures raise (urllib3).

    Built by the client's public request builder (``param_serialize`` + ``call_api``): its
    host, default headers and bearer token (``BearerToken`` auth, refreshed by the client's
    hook when it expires); client certificates and TLS live on its connection pool. The
    generated ``CoreV1Api``/``CustomObjectsApi`` are never imported: importing them builds
    hundreds of pydantic models (seconds of CPU and tens of MB at start).
    """
    method, url, headers, payload, _ = api.param_serialize(
        method=method,
        resource_path=path,
        query_params=query,
        header_params={"Accept": accept, "Content-Type": content_type},
        body=body,
        auth_settings=["BearerToken"],
    )
    response: rest.RESTResponse = api.call_api(
        method, url, header_params=headers, body=payload, _request_timeout=timeout
    )
    return response


class Kube:
    """Async facade over the few calls the operator makes outside kopf's own machinery."""

    def __init__(self, api: client.ApiClient) -> None:
        self._api = api

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    # --- the one request style ------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> tuple[int, bytes]:
        """One request, read whole: ``(status, raw body)``; our writes name their manager."""
        query = [("fieldManager", FIELD_MANAGER)] if method != "GET" else None
        resp = send(
            self._api,
            method,
            path,
            query=query,
            body=body,
            accept=accept,
            content_type=content_type,
        )
        resp.read()  # type: ignore[no-untyped-call]
        return int(resp.status), bytes(resp.data or b"")

    def _call(
        self,
        what: str,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        *,
        missing_ok: bool = True,
        accept: str = "application/json",
    ) -> dict[str, Any] | None:
        """:meth:`_send` for an object, and the one error rule.

        2xx: the object (``{}`` for an empty answer). 404 with ``missing_ok``: None. Anything
        else: :class:`KubeError` naming ``what``, the status and the server's reason.
        """
        try:
            code, raw = self._send(method, path, body, content_type, accept)
        except Exception as exc:  # connection refused/reset, TLS, timeouts (urllib3, client)
            # The exception's text may carry the URL and the client's request details; its
            # type is enough to say what happened.
            raise KubeError(f"{what} failed: {type(exc).__name__}") from None
        if code == 404 and missing_ok:
            return None
        if not 200 <= code < 300:
            raise KubeError(f"{what} failed: HTTP {code} {_reason(raw)}".rstrip(), code)
        if not raw:
            return {}
        obj = json.loads(raw)
        if not isinstance(obj, dict):
            raise KubeError(f"{what}: unexpected response type {type(obj).__name__}", code)
        return obj

    async def _async(
        self,
        call: ApiCall,
        what: str,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        *,
        missing_ok: bool = True,
        accept: str = "application/json",
    ) -> dict[str, Any] | None:
        """:meth:`_call` in a worker thread; ``call`` is the request's entry of the declared
        table (kube/calls.py) and must match its method."""
        if _METHODS[call.verb] != method:
            raise AssertionError(f"{method} {path} is not the declared {call}")
        return await asyncio.to_thread(
            self._call,
            what,
            method,
            path,
            body,
            content_type,
            missing_ok=missing_ok,
            accept=accept,
        )

    # --- Secrets ------------------------------------------------------------------------------

    async def read_secret(self, namespace: str, name: str) -> SecretData | None:
        """The Secret, or None if it does not exist."""
        obj = await self._async(
            READ_SECRET, f"reading Secret {namespace}/{name}", "GET", _secrets(namespace, name)
        )
        return None if obj is None else _secret_data(obj)

    async def write_owned_secret(
        self,
        namespace: str,
        name: str,
        data: dict[str, bytes],
        owner: dict[str, str],
        labels: dict[str, str],
        resource_version: str | None,
        annotations: dict[str, str] | None = None,
    ) -> SecretData:
        """Create the Secret, or replace it when ``resource_version`` matches (optimistic).

        A replace sets labels and annotations to exactly those given. A 409 (someone else
        wrote it first) raises :class:`KubeError` with ``status == 409``.
        """
        meta: dict[str, Any] = {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [
                {**owner, "controller": True, "blockOwnerDeletion": True},
            ],
        }
        if annotations:
            meta["annotations"] = annotations
        if resource_version is not None:
            meta["resourceVersion"] = resource_version
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta,
            "type": "Opaque",
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        }
        what = f"writing Secret {namespace}/{name}"
        if resource_version is None:
            obj = await self._async(
                CREATE_SECRET, what, "POST", _secrets(namespace), body, missing_ok=False
            )
        else:
            obj = await self._async(
                REPLACE_SECRET, what, "PUT", _secrets(namespace, name), body, missing_ok=False
            )
        written = _secret_data(obj or {})
        if not written.resource_version:
            raise KubeError(f"{what}: the answer carried no resourceVersion")
        # What we wrote, not what came back: the answer's data is the same bytes.
        return SecretData(
            namespace=namespace,
            name=name,
            uid=written.uid,
            resource_version=written.resource_version,
            data=dict(data),
            labels=dict(labels),
            owner_uids=(owner["uid"],),
            annotations=dict(annotations or {}),
            owner_kinds=(owner["kind"],),
        )

    async def delete_secret(self, namespace: str, name: str, uid: str) -> bool:
        """Delete the Secret if it is still the one with ``uid``; False if it is gone.

        The uid precondition makes sure a Secret someone else re-created under the same name
        is never deleted (that answers 409, reported as False).
        """
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": uid}}
        try:
            obj = await self._async(
                DELETE_SECRET,
                f"deleting Secret {namespace}/{name}",
                "DELETE",
                _secrets(namespace, name),
                body,
            )
        except KubeError as exc:
            if exc.status == 409:
                return False
            raise
        return obj is not None

    async def disown_secret(self, namespace: str, name: str, uid: str) -> bool:
        """Drop every ownerReference from the Secret (it then outlives its owner); False if
        it is gone or is no longer the Secret with ``uid``."""
        patch = [
            {"op": "test", "path": "/metadata/uid", "value": uid},
            {"op": "remove", "path": "/metadata/ownerReferences"},
        ]
        try:
            obj = await self._async(
                DISOWN_SECRET,
                f"releasing Secret {namespace}/{name}",
                "PATCH",
                _secrets(namespace, name),
                patch,
                "application/json-patch+json",
            )
        except KubeError as exc:
            if exc.status in (409, 422):
                return False
            raise
        return obj is not None

    # --- authorization ------------------------------------------------------------------------

    async def may_get_secret(self, requester: Requester, namespace: str, name: str) -> bool:
        """Whether ``requester`` may ``get`` Secret ``namespace/name`` (a SubjectAccessReview
        as that user, groups, uid and extra; the answer does not depend on whether the Secret
        exists). Needs ``create`` on ``subjectaccessreviews``."""
        spec: dict[str, Any] = {
            "user": requester.username,
            "groups": list(requester.groups),
            "resourceAttributes": {
                "namespace": namespace,
                "verb": "get",
                "group": "",
                "resource": "secrets",
                "name": name,
            },
        }
        if requester.uid:
            spec["uid"] = requester.uid
        if requester.extra:
            spec["extra"] = {k: list(v) for k, v in requester.extra.items()}
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": spec,
        }
        obj = await self._async(
            REVIEW_ACCESS,
            f"reviewing access to Secret {namespace}/{name}",
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            body,
            missing_ok=False,
        )
        status = (obj or {}).get("status") or {}
        return status.get("allowed") is True

    # --- our objects --------------------------------------------------------------------------

    async def get_object(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One of our objects as the API server has it now, or None if it does not exist."""
        return await self._async(
            _OBJECT_CALLS["get", plural],
            f"reading {plural} {namespace}/{name}",
            "GET",
            _objects(plural, namespace, name),
        )

    async def list_objects(self, plural: str, namespace: str | None) -> list[dict[str, Any]]:
        """Every object of one of our kinds, in ``namespace`` or the whole cluster (at start:
        to map the uids an earlier release recorded to names; the watch itself is kopf's)."""
        path = _objects(plural, namespace) if namespace else f"/apis/{GROUP}/{VERSION}/{plural}"
        listed = await self._async(
            _OBJECT_CALLS["list", plural], f"listing {plural}", "GET", path, missing_ok=False
        )
        return [i for i in (listed or {}).get("items") or [] if isinstance(i, dict)]

    async def patch_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patch ``status`` (None deletes a field); the object after, or None if gone."""
        return await self._async(
            _OBJECT_CALLS["patch-status", plural],
            f"patching status of {plural} {namespace}/{name}",
            "PATCH",
            _objects(plural, namespace, name, "status"),
            {"status": status},
            "application/merge-patch+json",
        )

    # --- workloads that restart on a new gateway key ---------------------------------------------

    async def list_workloads(self, namespace: str) -> list[Workload]:
        """The namespace's Deployments and StatefulSets, metadata only (their annotations say
        whether they opted in; no pod template or status crosses the wire)."""
        found: list[Workload] = []
        for kind, plural in WORKLOAD_KINDS.items():
            listed = await self._async(
                _WORKLOAD_CALLS["list", plural],
                f"listing {plural} in {namespace}",
                "GET",
                _path("/apis/apps/v1", namespace, plural),
                missing_ok=False,
                accept=METADATA_LIST,
            )
            for item in (listed or {}).get("items") or []:
                meta = item.get("metadata") or {} if isinstance(item, dict) else {}
                found.append(
                    Workload(
                        kind=kind,
                        namespace=namespace,
                        name=str(meta.get("name", "")),
                        uid=str(meta.get("uid", "")),
                        annotations=dict(meta.get("annotations") or {}),
                    )
                )
        return found

    async def read_workload(self, kind: str, namespace: str, name: str) -> Workload | None:
        """One Deployment or StatefulSet with its pod template's annotations; None if gone."""
        plural = WORKLOAD_KINDS[kind]
        obj = await self._async(
            _WORKLOAD_CALLS["get", plural],
            f"reading {kind} {namespace}/{name}",
            "GET",
            _path("/apis/apps/v1", namespace, plural, name),
        )
        if obj is None:
            return None
        meta = obj.get("metadata") or {}
        template = ((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}
        return Workload(
            kind=kind,
            namespace=namespace,
            name=name,
            uid=str(meta.get("uid", "")),
            annotations=dict(meta.get("annotations") or {}),
            template_annotations=dict(template.get("annotations") or {}),
        )

    async def stamp_pod_template(self, workload: Workload, annotations: dict[str, str]) -> bool:
        """Merge ``annotations`` into the workload's pod template (which rolls its pods), only
        while it is still the object with ``workload.uid``; False if it is gone or replaced."""
        plural = WORKLOAD_KINDS[workload.kind]
        patch: list[dict[str, Any]] = [
            {"op": "test", "path": "/metadata/uid", "value": workload.uid},
            *(
                {
                    "op": "add",
                    "path": "/spec/template/metadata/annotations/"
                    + key.replace("~", "~0").replace("/", "~1"),
                    "value": value,
                }
                for key, value in annotations.items()
            ),
        ]
        if not workload.template_annotations:
            # JSON patch cannot add into a map that does not exist.
            patch.insert(
                1,
                {"op": "add", "path": "/spec/template/metadata/annotations", "value": {}},
            )
        try:
            obj = await self._async(
                _WORKLOAD_CALLS["patch", plural],
                f"restarting {workload.kind} {workload.namespace}/{workload.name}",
                "PATCH",
                _path("/apis/apps/v1", workload.namespace, plural, workload.name),
                patch,
                "application/json-patch+json",
            )
        except KubeError as exc:
            if exc.status in (409, 422):
                return False
            raise
        return obj is not None

    # --- Events -------------------------------------------------------------------------------

    async def create_event(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create a core/v1 Event; the created Event (its name is needed to bump its count)."""
        obj = await self._async(
            CREATE_EVENT,
            f"posting an Event in {namespace}",
            "POST",
            _path("/api/v1", namespace, "events"),
            body,
            missing_ok=False,
        )
        return obj or {}

    async def patch_event(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patch an Event (count, lastTimestamp); None if it is gone (expired)."""
        return await self._async(
            PATCH_EVENT,
            f"updating Event {namespace}/{name}",
            "PATCH",
            _path("/api/v1", namespace, "events", name),
            patch,
            "application/merge-patch+json",
        )
