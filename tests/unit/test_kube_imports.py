"""The operator never imports the kubernetes client's generated API modules: importing
``CoreV1Api`` builds hundreds of pydantic models (seconds of CPU and tens of MB at start)
and every call we make goes through ``kube.client.send`` instead."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

PROBE = """
import asyncio, sys
from kubernetes import client
import aigateway_operator.operator
from aigateway_operator.kube import Kube, SecretMetadataWatch
api = client.ApiClient(client.Configuration())
Kube(api)
SecretMetadataWatch(api, "ns", lambda t, b: None, asyncio.new_event_loop())
print(sorted(m for m in sys.modules if m.startswith("kubernetes.client.api.")))
"""


def test_no_generated_api_module_is_imported() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]"
