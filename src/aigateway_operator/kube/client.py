"""The one module that talks to the Kubernetes API with the ``kubernetes`` client.

The client blocks, so every call runs in a worker thread (``asyncio.to_thread``): a blocking
call on kopf's event loop would freeze every watch. Secret values read here are returned as
bytes to the caller and never logged; errors carry names, never data.

The calls every reconcile pass makes (read a Secret, patch status, set a finalizer, post an
Event) go through :meth:`Kube._request`: the client's connection pool, TLS and credentials
(tokens refreshed as the client does), but plain JSON in and out. The generated API methods
validate every argument with pydantic and walk every body and response through the model
layer, which cost more CPU than the HTTP request itself.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

GROUP = "aigateway.dev"
_INSTANCE = socket.gethostname()
VERSION = "v1alpha1"
REQUEST_TIMEOUT_S = 30.0
FIELD_MANAGER = "aigateway-operator"


class KubeError(RuntimeError):
    """A Kubernetes API call failed for a reason other than 'not found'."""

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


@dataclass(frozen=True)
class ObjectRef:
    """The object an Event is about."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str
    resource_version: str = ""


def _as_dict(obj: object) -> dict[str, Any]:
    """A custom-object response (the client returns it as a plain, untyped JSON object)."""
    if not isinstance(obj, dict):
        raise KubeError(f"unexpected response type {type(obj).__name__}")
    return obj


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


def load_api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """In-cluster service-account config if present, else ``KUBECONFIG`` / ``~/.kube/config``."""
    if kubeconfig is None:
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
            return client.ApiClient()
        except config.ConfigException:
            pass
    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig
    )
    return api


class Kube:
    """Async facade over the calls the operator makes outside kopf's own machinery."""

    def __init__(self, api: client.ApiClient) -> None:
        self._api = api
        self._core = client.CoreV1Api(api)
        self._custom = client.CustomObjectsApi(api)

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
    ) -> tuple[int, bytes]:
        """One blocking request: ``(status, raw body)``. Connection failures raise (urllib3)."""
        headers: dict[str, Any] = {
            **self._api.default_headers,
            "Accept": "application/json",
            "Content-Type": content_type,
        }
        # Bearer token (refreshed by the client's hook when it expires); client certificates
        # are on the connection pool.
        self._api.update_params_for_auth(headers, [], ["BearerToken"], path, method, None)
        payload = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        if method != "GET":  # who owns the fields we write, in managedFields
            path += f"?fieldManager={FIELD_MANAGER}"
        resp = self._api.rest_client.pool_manager.request(
            method,
            self._api.configuration.host + path,
            body=payload,
            headers=headers,
            timeout=REQUEST_TIMEOUT_S,
        )
        return int(resp.status), bytes(resp.data)

    def _json(
        self,
        what: str,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
    ) -> dict[str, Any] | None:
        """:meth:`_request` for an object: the object, None if it is not found (404), else a
        :class:`KubeError` naming ``what`` with the status and its reason (never the body)."""
        code, raw = self._request(method, path, body, content_type)
        if code == 404:
            return None
        if not 200 <= code < 300:
            raise KubeError(f"{what} failed: HTTP {code} {_reason(raw)}".rstrip(), code)
        return _as_dict(json.loads(raw))

    async def read_secret(self, namespace: str, name: str) -> SecretData | None:
        """The Secret, or None if it does not exist."""

        def call() -> SecretData | None:
            path = _path("/api/v1", namespace, "secrets", name)
            obj = self._json(f"reading Secret {namespace}/{name}", "GET", path)
            if obj is None:
                return None
            meta = obj.get("metadata") or {}
            return SecretData(
                namespace=namespace,
                name=name,
                uid=str(meta.get("uid", "")),
                resource_version=str(meta.get("resourceVersion", "")),
                data={k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()},
                labels=dict(meta.get("labels") or {}),
                owner_uids=tuple(str(o.get("uid")) for o in meta.get("ownerReferences") or []),
                annotations=dict(meta.get("annotations") or {}),
            )

        return await asyncio.to_thread(call)

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

        def call() -> SecretData:
            body = client.V1Secret(
                metadata=client.V1ObjectMeta(
                    name=name,
                    namespace=namespace,
                    labels=labels,
                    annotations=annotations or None,
                    resource_version=resource_version,
                    owner_references=[
                        client.V1OwnerReference(
                            api_version=owner["apiVersion"],
                            kind=owner["kind"],
                            name=owner["name"],
                            uid=owner["uid"],
                            controller=True,
                            block_owner_deletion=True,
                        )
                    ],
                ),
                type="Opaque",
                data={k: base64.b64encode(v).decode() for k, v in data.items()},
            )
            try:
                if resource_version is None:
                    obj = self._core.create_namespaced_secret(namespace, body)
                else:
                    obj = self._core.replace_namespaced_secret(name, namespace, body)
            except ApiException as exc:
                raise KubeError(
                    f"writing Secret {namespace}/{name} failed: HTTP {exc.status} {exc.reason}",
                    exc.status,
                ) from None
            meta = obj.metadata
            return SecretData(
                namespace=namespace,
                name=name,
                uid=str(meta.uid) if meta else "",
                resource_version=str(meta.resource_version) if meta else "",
                data=dict(data),
                labels=dict(labels),
                owner_uids=(owner["uid"],),
                annotations=dict(annotations or {}),
            )

        return await asyncio.to_thread(call)

    async def delete_secret(self, namespace: str, name: str, uid: str) -> bool:
        """Delete the Secret if it is still the one with ``uid``; False if it is gone.

        The uid precondition makes sure a Secret someone else re-created under the same name
        is never deleted.
        """

        def call() -> bool:
            try:
                self._core.delete_namespaced_secret(
                    name,
                    namespace,
                    body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid)),
                )
            except ApiException as exc:
                if exc.status in (404, 409):
                    return False
                raise KubeError(
                    f"deleting Secret {namespace}/{name} failed: HTTP {exc.status} {exc.reason}",
                    exc.status,
                ) from None
            return True

        return await asyncio.to_thread(call)

    async def disown_secret(self, namespace: str, name: str, uid: str) -> bool:
        """Drop every ownerReference from the Secret (it then outlives its owner); False if
        it is gone or is no longer the Secret with ``uid``."""

        def call() -> bool:
            patch = [
                {"op": "test", "path": "/metadata/uid", "value": uid},
                {"op": "remove", "path": "/metadata/ownerReferences"},
            ]
            try:
                self._core.patch_namespaced_secret(name, namespace, patch)
            except ApiException as exc:
                if exc.status in (404, 409, 422):
                    return False
                raise KubeError(
                    f"releasing Secret {namespace}/{name} failed: HTTP {exc.status} {exc.reason}",
                    exc.status,
                ) from None
            return True

        return await asyncio.to_thread(call)

    async def set_finalizer(
        self,
        plural: str,
        namespace: str,
        name: str,
        resource_version: str,
        finalizers: list[str],
        finalizer: str,
        present: bool,
    ) -> dict[str, Any] | None:
        """Add or remove ``finalizer``; the object after the write, or None if it is gone.

        A JSON patch guarded by a ``resourceVersion`` test, so another controller's finalizer
        written meanwhile is never lost: a stale ``finalizers`` list raises :class:`KubeError`
        with status 409 (or 422), and the caller retries with the newer object.
        """
        wanted = [f for f in finalizers if f != finalizer] + ([finalizer] if present else [])
        patch: list[dict[str, Any]] = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version},
            {"op": "add", "path": "/metadata/finalizers", "value": wanted},
        ]
        return await self._patch_object(plural, namespace, name, patch, status=False)

    async def patch_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patch ``status`` (None deletes a field); the object after, or None if gone."""
        return await self._patch_object(plural, namespace, name, {"status": status}, status=True)

    async def _patch_object(
        self, plural: str, namespace: str, name: str, body: Any, *, status: bool
    ) -> dict[str, Any] | None:
        kind = (
            "application/json-patch+json"
            if isinstance(body, list)
            else "application/merge-patch+json"
        )
        path = _path(
            f"/apis/{GROUP}/{VERSION}", namespace, plural, name, "status" if status else ""
        )

        def call() -> dict[str, Any] | None:
            what = f"patching {'status of ' if status else ''}{plural} {namespace}/{name}"
            return self._json(what, "PATCH", path, body, content_type=kind)

        return await asyncio.to_thread(call)

    async def post_event(
        self,
        about: ObjectRef,
        type_: str,
        reason: str,
        message: str,
        component: str = "aigateway-operator",
    ) -> bool:
        """Post a core/v1 Event about ``about``; False (logged by nobody) if it failed.

        Events are best effort, as in every controller: a failure never fails the pass.
        ``message`` must be secret-free (every caller builds it from names and reasons).
        """
        now = datetime.now(UTC)

        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{about.name}.", "namespace": about.namespace},
            "involvedObject": {
                "apiVersion": about.api_version,
                "kind": about.kind,
                "name": about.name,
                "namespace": about.namespace,
                "uid": about.uid,
                **({"resourceVersion": about.resource_version} if about.resource_version else {}),
            },
            "type": type_,
            "reason": reason,
            "message": message,
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": _INSTANCE,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        path = _path("/api/v1", about.namespace, "events")

        def call() -> bool:
            try:
                code, _ = self._request("POST", path, body)
            except Exception:  # connection failures: best effort, as documented
                return False
            return 200 <= code < 300

        return await asyncio.to_thread(call)
