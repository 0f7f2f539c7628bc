"""Kubernetes API access outside kopf's own machinery: the one client configuration, the
calls a pass makes (Secrets, status, Events, the admission webhook's access reviews), the
metadata-only Secret watch and the Event recorder — each of the last two one module saying
what kopf lacks.

This is the only package allowed to import the ``kubernetes`` client.
"""

from aigateway_operator.kube.client import (
    Kube,
    KubeError,
    ObjectRef,
    Requester,
    SecretData,
    Workload,
)
from aigateway_operator.kube.config import (
    ConnectionFacts,
    api_client,
    connection_facts,
    load_configuration,
)
from aigateway_operator.kube.events import EventRecorder
from aigateway_operator.kube.metadata_watch import SecretMetadataWatch

__all__ = [
    "ConnectionFacts",
    "EventRecorder",
    "Kube",
    "KubeError",
    "ObjectRef",
    "Requester",
    "SecretData",
    "SecretMetadataWatch",
    "Workload",
    "api_client",
    "connection_facts",
    "load_configuration",
]
