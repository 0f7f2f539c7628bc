"""moto's AWS server on loopback, standing in for STS (and IAM) in the local environment.

The operator never learns that it talks to moto: tests and the demo select it only through
the standard AWS environment (``AWS_ENDPOINT_URL_STS`` and friends), exactly as IRSA is
selected in production through ``AWS_ROLE_ARN`` / ``AWS_WEB_IDENTITY_TOKEN_FILE``.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tools.devenv.procs import ProcessExited, free_port, spawn, terminate, wait_until

DEFAULT_REGION = "us-east-1"


@dataclass
class StsServer:
    """A moto server process; :attr:`endpoint` is what ``AWS_ENDPOINT_URL_STS`` should be."""

    port: int
    pid: int
    log_path: Path
    host: str = "127.0.0.1"

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def env(self) -> dict[str, str]:
        """The AWS environment that points boto3's default chain at this server."""
        return {
            "AWS_ENDPOINT_URL_STS": self.endpoint,
            "AWS_ENDPOINT_URL_IAM": self.endpoint,
            "AWS_DEFAULT_REGION": DEFAULT_REGION,
            # Dummy static credentials: moto accepts any. Real deployments use IRSA or a Secret.
            "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    @classmethod
    def start(
        cls,
        log_dir: Path,
        port: int | None = None,
        timeout: float = 60.0,
        extra_env: dict[str, str] | None = None,
        host: str = "127.0.0.1",
    ) -> StsServer:
        """Start moto; ``extra_env`` passes server settings such as ``INITIAL_NO_AUTH_ACTION_COUNT``
        (moto then enforces IAM: trust policies and permissions decide AssumeRole). ``host``:
        where it listens (a node network's gateway, for pods)."""
        port = port or free_port()
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / "moto.log"
        proc = spawn(
            [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
            log_path,
            env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "false", **(extra_env or {})},
        )
        server = cls(port=port, pid=proc.pid, log_path=log_path, host=host)

        def ready() -> bool:
            if proc.poll() is not None:
                raise ProcessExited(f"moto server exited ({proc.returncode}); see {log_path}")
            with urllib.request.urlopen(  # noqa: S310 - fixed loopback http URL
                f"{server.endpoint}/moto-api/", timeout=2
            ) as resp:
                return bool(resp.status == 200)

        try:
            wait_until(ready, timeout, "moto STS server")
        except BaseException:
            terminate(proc.pid)
            raise
        return server

    def stop(self) -> None:
        terminate(self.pid)
