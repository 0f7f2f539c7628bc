"""The operator in-process: kopf's ``operator()`` on a thread of the test process, with our
registry, against the real API server and a real Postgres 15 database (envtest style).

Because it runs in the test's process, a test can look inside it: the log records it emits
(``caplog``), its metrics, and the calls it makes (``monkeypatch`` a store method to count
them).
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import threading
from pathlib import Path
from typing import Any

import pytest

from aigateway_operator.config import Settings
from aigateway_operator.operator import main
from tests.support.operator import fresh_database

__all__ = ["InProcess", "inprocess_settings", "k8s_ref_name"]


class InProcess:
    """The operator on a thread with its own event loop; stopped through kopf's stop flag."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stop_flag = threading.Event()
        self.result: list[int] = []
        self.thread = threading.Thread(target=self._run, name="operator-under-test")

    def _run(self) -> None:
        self.result.append(
            asyncio.run(main(self.settings, stop_flag=self.stop_flag, configure_logging=False))
        )

    def start(self) -> InProcess:
        self.thread.start()
        return self

    def stop(self) -> int:
        self.stop_flag.set()
        self.thread.join(60)
        assert not self.thread.is_alive(), "the operator did not stop"
        return self.result[0]


def inprocess_settings(
    kubeconfig: Path,
    postgres: Any,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
    **overrides: Any,
) -> Settings:
    """Settings of an in-process operator watching ``namespace`` with a fresh database."""
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    values: dict[str, Any] = {
        "database_url": fresh_database(postgres),
        "encryption_keys": base64.b64encode(secrets.token_bytes(32)).decode(),
        "schema_mode": "create",
        "namespaces": namespace,
        "health_port": 0,
        "metrics_port": 0,
        "drift_debounce_s": 0.1,
    }
    values.update(overrides)
    return Settings(**values)


def k8s_ref_name(record: Any) -> str | None:
    """The object a log record of ours is about (``controllers.shared.log_ref``), if any."""
    ref = getattr(record, "k8s_ref", None)
    return str(ref.get("name")) if isinstance(ref, dict) else None
