"""Kubernetes API access outside kopf's own machinery: Secrets, our objects' finalizers and
status, Events, and the informers that watch our kinds.

This is the only package allowed to import the ``kubernetes`` client.
"""

from aigateway_operator.kube.client import (
    GROUP,
    VERSION,
    Kube,
    KubeError,
    ObjectRef,
    SecretData,
    load_api_client,
)
from aigateway_operator.kube.informer import Informer

__all__ = [
    "GROUP",
    "VERSION",
    "Informer",
    "Kube",
    "KubeError",
    "ObjectRef",
    "SecretData",
    "load_api_client",
]
