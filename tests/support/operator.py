"""End-to-end fixtures: the operator as a subprocess (as in a pod) against the real pieces.

``operator_factory`` starts ``aigateway-operator run`` with a fresh database of its own,
encryption on, the loopback STS in its AWS environment, and the admin kubeconfig; the log
is captured to a file so tests can assert that no secret ever reaches it.
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kubernetes import client

from tests.support.wait import wait_for
from tools.devenv.postgres import PostgresServer
from tools.devenv.sts import StsServer

GROUP, VERSION = "aigateway.dev", "v1alpha1"


@dataclass
class OperatorProcess:
    """A running operator and what it was given."""

    env: dict[str, str] = field(repr=False)
    log_path: Path
    database_url: str = field(repr=False)
    encryption_key: bytes = field(repr=False)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aigateway_operator.cli", "run"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def fresh_database(postgres: PostgresServer) -> str:
    """A new, empty database (owned by the test role) and its DSN."""
    name = f"op_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres.superuser_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} OWNER aigw")
    return postgres.dsn.replace("/coder?", f"/{name}?")


@pytest.fixture
def operator_factory(
    kubeconfig: Path,
    postgres: PostgresServer,
    sts: StsServer,
    tmp_path: Path,
    namespace: str,
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., OperatorProcess]]:
    """Operators watch only the test's namespace by default (``namespaces=`` to change it),
    so objects other tests left behind never reach this test's database."""
    started: list[OperatorProcess] = []

    def make(
        extra_env: dict[str, str] | None = None,
        database_url: str | None = None,
        encryption_key: bytes | None = None,
        start: bool = True,
        namespaces: list[str] | None = None,
    ) -> OperatorProcess:
        key = encryption_key or secrets.token_bytes(32)
        dsn = database_url or fresh_database(postgres)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIGW_"))}
        env.update(sts.env())
        env.update(
            {
                "KUBECONFIG": str(kubeconfig),
                "AIGW_DATABASE_URL": dsn,
                "AIGW_SCHEMA": "create",
                "AIGW_ENCRYPTION_KEYS": base64.b64encode(key).decode(),
                "AIGW_HEALTH_PORT": "0",
                # Several operators share this host (pods would not): no fixed ports.
                "AIGW_METRICS_PORT": "0",
                "AIGW_DRIFT_DEBOUNCE_S": "0.1",
                "AIGW_NAMESPACES": ",".join(namespaces or [namespace]),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(extra_env or {})
        op = OperatorProcess(
            env=env,
            log_path=tmp_path / f"operator-{len(started)}.log",
            database_url=dsn,
            encryption_key=key,
        )
        if start:
            op.start()
        started.append(op)
        return op

    yield make
    for op in started:
        op.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        # The operator's log is secret-free by contract (tests assert it), so show its tail.
        for i, op in enumerate(started):
            tail = "\n".join(op.log().splitlines()[-80:])
            print(f"\n----- operator {i} log (last 80 lines) -----\n{tail}")


def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def get_obj(api: client.ApiClient, namespace: str, plural: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = custom(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, name
    )
    return obj


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return None


def wait_condition(
    api: client.ApiClient,
    namespace: str,
    plural: str,
    name: str,
    type_: str,
    status: str = "True",
    reason: str | None = None,
    timeout: float = 120,  # an upper bound for loaded machines; passing runs take seconds
) -> dict[str, Any]:
    """Wait until the object's condition has this status (and reason); return the object."""

    def check() -> dict[str, Any] | None:
        obj = get_obj(api, namespace, plural, name)
        c = condition(obj, type_)
        gen = obj["metadata"].get("generation")
        if (
            c
            and c.get("status") == status
            and (reason is None or c.get("reason") == reason)
            and c.get("observedGeneration") == gen
        ):
            return obj
        return None

    return wait_for(check, timeout, f"{plural}/{name} {type_}={status} {reason or ''}")


#: What a Secret carries to let AIProviders use it (``*``: any AIProvider of its namespace).
ALLOW_ALL = {"aigateway.dev/allowed-aiproviders": "*"}


def make_secret(
    api: client.ApiClient,
    namespace: str,
    name: str,
    data: dict[str, str],
    annotations: dict[str, str] | None = None,
) -> client.V1Secret:
    """A Secret as a user makes one; by default it lets every AIProvider of its namespace
    use it (``annotations={}`` for one that does not)."""
    meta = client.V1ObjectMeta(
        name=name, annotations=ALLOW_ALL if annotations is None else annotations or None
    )
    return client.CoreV1Api(api).create_namespaced_secret(
        namespace, client.V1Secret(metadata=meta, string_data=data)
    )
