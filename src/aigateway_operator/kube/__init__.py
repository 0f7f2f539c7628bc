"""Kubernetes API access outside kopf's own machinery (Secrets, pokes, listing).

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
