"""Session fixtures for the real local environment: Postgres 15, moto STS and kube-apiserver.

Each piece starts lazily, once per test session, only when a test asks for it, and is
stopped at the end of the session. Unit tests use none of them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from aigateway_operator.devenv.postgres import PostgresServer
from aigateway_operator.devenv.sts import StsServer


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A real Postgres 15 server on loopback with a dedicated ``coder`` database."""
    server = PostgresServer.start(tmp_path_factory.mktemp("pg") / "server")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_dsn(postgres: PostgresServer) -> str:
    """DSN of the shared test database (tests that need isolation create their own schema/db)."""
    return postgres.dsn


@pytest.fixture(scope="session")
def sts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StsServer]:
    """moto's STS/IAM server on loopback."""
    server = StsServer.start(tmp_path_factory.mktemp("sts"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def aws_env(sts: StsServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point boto3's default credential chain and endpoints at the loopback STS via env only."""
    for var in list(os.environ):
        if var.startswith("AWS_"):
            monkeypatch.delenv(var)
    env = sts.env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
