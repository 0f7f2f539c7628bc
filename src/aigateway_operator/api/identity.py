"""The API's identity, defined once: group, version, kinds, plurals, the finalizer, and every
annotation and label the operator reads or writes. An object's ``apiVersion`` is
:attr:`Kind.api_version` (``aigateway.dev/v1alpha1``); ``VERSION`` is the version alone.

Everything else (the kopf handlers, the controllers, the Kubernetes calls, the chart's
templates through the tests that compare them) takes these names from here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AIGATEWAYCODERDKEY",
    "AIPROVIDER",
    "ALLOWED_AIPROVIDERS_ANNOTATION",
    "ALLOWED_HOSTS_ANNOTATION",
    "ANNOTATION_PREFIX",
    "FINALIZER",
    "FORCE_DELETE_ANNOTATION",
    "FORCE_RETIRE_ANNOTATION",
    "GATEWAY_KEY_ID_ANNOTATION",
    "GATEWAY_KEY_OWNER_LABEL",
    "GATEWAY_KEY_PREVIOUS_ID_ANNOTATION",
    "GATEWAY_KEY_ROTATION_ANNOTATION",
    "GROUP",
    "KEY_GENERATION_ANNOTATION",
    "KINDS",
    "KOPF_STORAGE_PREFIX",
    "MANAGED_BY_LABELS",
    "RECONCILE_ANNOTATION",
    "RESTART_ON_ROTATION_ANNOTATION",
    "VERSION",
    "Kind",
]

GROUP = "aigateway.dev"
VERSION = "v1alpha1"


@dataclass(frozen=True)
class Kind:
    """One kind of the API: what kopf's decorators and the Kubernetes calls need."""

    kind: str
    plural: str
    short_name: str
    group: str = GROUP
    version: str = VERSION

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


AIPROVIDER = Kind(kind="AIProvider", plural="aiproviders", short_name="aip")
AIGATEWAYCODERDKEY = Kind(
    kind="AIGatewayCoderdKey", plural="aigatewaycoderdkeys", short_name="cgwkey"
)
KINDS = (AIPROVIDER, AIGATEWAYCODERDKEY)

#: Every annotation and label of ours starts with this (``aigateway.dev/...``).
ANNOTATION_PREFIX = GROUP
#: Held on every object until its rows in Coder are released. kopf adds and removes it
#: (``settings.persistence.finalizer``); the chart's MutatingAdmissionPolicy may add it at
#: creation, which saves kopf a PATCH per new object.
FINALIZER = f"{GROUP}/finalizer"
#: kopf's own annotations (progress of a retried delete handler) live under this prefix,
#: apart from ours.
KOPF_STORAGE_PREFIX = f"kopf.{GROUP}"

#: Any change of an ``aigateway.dev/*`` annotation asks for a pass; this one exists for that
#: (``kubectl annotate ... aigateway.dev/reconcile="$(date +%s)" --overwrite``).
RECONCILE_ANNOTATION = f"{GROUP}/reconcile"
#: On an AIGatewayCoderdKey: delete even while gateways still use the key.
FORCE_DELETE_ANNOTATION = f"{GROUP}/force-delete"
#: On an AIGatewayCoderdKey: retire the previous key now, even while it is in use. The value
#: must be that key's prefix (``status.rotation.previousKeyPrefix``), so a forgotten
#: annotation never cuts short a later rotation.
FORCE_RETIRE_ANNOTATION = f"{GROUP}/force-retire"
#: On a Deployment or StatefulSet: the name of the AIGatewayCoderdKey (same namespace) whose
#: new keys restart it; the operator then stamps :data:`KEY_GENERATION_ANNOTATION` into its
#: pod template.
RESTART_ON_ROTATION_ANNOTATION = f"{GROUP}/restart-on-rotation"
#: On an opted-in workload's pod template: the id of the key its pods were started for.
KEY_GENERATION_ANNOTATION = f"{GROUP}/key-generation"

#: On a gateway-key Secret the operator wrote: the key id it holds (a hint, never authority).
GATEWAY_KEY_ID_ANNOTATION = f"{GROUP}/key-id"
#: On a gateway-key Secret during a rotation: the id of the key it replaces (a hint).
GATEWAY_KEY_PREVIOUS_ID_ANNOTATION = f"{GROUP}/previous-key-id"
#: On a gateway-key Secret: the rotation generation it was written for.
GATEWAY_KEY_ROTATION_ANNOTATION = f"{GROUP}/rotation-generation"
#: On a Secret: the AIProviders that may use it (``*`` or comma-separated names); see
#: ``credentials.SecretAccess``.
ALLOWED_AIPROVIDERS_ANNOTATION = f"{GROUP}/allowed-aiproviders"
#: On a Secret: the hosts its values may be sent to (``*`` or comma-separated ``host`` /
#: ``host:port``); without it, only the provider type's own default endpoint. See
#: ``credentials.allows_destination``.
ALLOWED_HOSTS_ANNOTATION = f"{GROUP}/allowed-hosts"
#: On every gateway-key Secret the operator owns (value: the owner's name, hashed if long).
GATEWAY_KEY_OWNER_LABEL = f"{GROUP}/gateway-key"
MANAGED_BY_LABELS = {"app.kubernetes.io/managed-by": "aigateway-operator"}
