"""The whole local environment: control plane + Postgres 15 + moto STS, with a state file.

``up`` starts everything on loopback, applies ``crds/`` and writes shell ``export`` lines.
``down`` stops every process it recorded and removes every directory it made.
The same :class:`DevEnv` object backs the pytest session fixtures.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.devenv import build, kube
from tools.devenv.postgres import PostgresServer
from tools.devenv.procs import pid_alive, terminate
from tools.devenv.sts import StsServer

STATE_FILE = "state.json"
STATE_ENV = "AIGW_DEV_STATE_DIR"


@dataclass
class DevEnv:
    """A running local environment (or the record of one, loaded from its state dir)."""

    state_dir: Path
    kubeconfig: Path | None = None
    database_url: str = ""
    sts_env: dict[str, str] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    postgres_dir: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)
    # Live handles, present only in the process that started them.
    plane: kube.ControlPlane | None = None
    postgres: PostgresServer | None = None
    sts: StsServer | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    @classmethod
    def up(
        cls,
        state_dir: Path | None = None,
        *,
        with_kube: bool = True,
        crds_dir: Path | None = None,
        progress: build.Progress = build._stderr_progress,
    ) -> DevEnv:
        """Start everything; on any failure stop what was started and re-raise."""
        state = state_dir or Path(tempfile.mkdtemp(prefix="aigw-dev-"))
        state.mkdir(parents=True, exist_ok=True)
        env = cls(state_dir=state)
        try:
            t0 = time.monotonic()
            if with_kube:
                bins = build.ensure_control_plane(progress=progress)
                env.timings["build_or_cache"] = time.monotonic() - t0
                t1 = time.monotonic()
                progress("Starting etcd, kube-apiserver and kube-controller-manager ...")
                env.plane = kube.start(bins, state / "kube")
                env.kubeconfig = env.plane.kubeconfig
                env.pids.update(env.plane.pids)
                env.timings["control_plane"] = time.monotonic() - t1
            t2 = time.monotonic()
            progress("Starting Postgres 15 ...")
            env.postgres = PostgresServer.start(state / "postgres")
            env.database_url = env.postgres.dsn
            env.postgres_dir = env.postgres.base_dir
            env.timings["postgres"] = time.monotonic() - t2
            t3 = time.monotonic()
            progress("Starting moto STS ...")
            env.sts = StsServer.start(state / "sts")
            env.sts_env = env.sts.env()
            env.pids["moto"] = env.sts.pid
            env.timings["sts"] = time.monotonic() - t3
            if with_kube and crds_dir is not None and crds_dir.is_dir():
                from tools.devenv.crds import apply_crds

                applied = apply_crds(env.kubeconfig, crds_dir)  # type: ignore[arg-type]
                if applied:
                    progress(f"Applied CRDs: {', '.join(applied)}")
            env.timings["total"] = time.monotonic() - t0
            env.save()
        except BaseException:
            env.down()
            raise
        return env

    def down(self) -> None:
        """Stop every recorded process and remove the state dir (idempotent)."""
        if self.plane is not None:
            self.plane.stop()
        if self.sts is not None:
            self.sts.stop()
        if self.postgres is not None:
            self.postgres.stop()
        elif self.postgres_dir is not None and self.postgres_dir.exists():
            PostgresServer(base_dir=self.postgres_dir, port=0, password="").stop()
        for name in ("kube-controller-manager", "kube-apiserver", "etcd", "moto"):
            pid = self.pids.get(name)
            if pid and pid_alive(pid):
                terminate(pid)
        self.pids.clear()
        shutil.rmtree(self.state_dir, ignore_errors=True)

    # ---- persistence -----------------------------------------------------------------------

    def save(self) -> None:
        data = {
            "kubeconfig": str(self.kubeconfig) if self.kubeconfig else None,
            "database_url": self.database_url,
            "sts_env": self.sts_env,
            "pids": self.pids,
            "postgres_dir": str(self.postgres_dir) if self.postgres_dir else None,
            "timings": self.timings,
        }
        path = self.state_dir / STATE_FILE
        path.write_text(json.dumps(data, indent=2))
        path.chmod(0o600)

    @classmethod
    def load(cls, state_dir: Path) -> DevEnv:
        data: dict[str, Any] = json.loads((state_dir / STATE_FILE).read_text())
        return cls(
            state_dir=state_dir,
            kubeconfig=Path(data["kubeconfig"]) if data.get("kubeconfig") else None,
            database_url=data.get("database_url", ""),
            sts_env=dict(data.get("sts_env", {})),
            pids={k: int(v) for k, v in data.get("pids", {}).items()},
            postgres_dir=Path(data["postgres_dir"]) if data.get("postgres_dir") else None,
            timings=dict(data.get("timings", {})),
        )

    # ---- what clients need -----------------------------------------------------------------

    def environ(self) -> dict[str, str]:
        """The variables a shell, the operator or a test needs to use this environment."""
        env: dict[str, str] = {STATE_ENV: str(self.state_dir)}
        if self.kubeconfig:
            env["KUBECONFIG"] = str(self.kubeconfig)
        env["AIGW_DATABASE_URL"] = self.database_url
        env["AIGW_SCHEMA"] = "create"
        # The local database has no coderd keys: choose plaintext on purpose (the operator
        # refuses otherwise); export AIGW_ENCRYPTION_KEYS to try encryption instead.
        env["AIGW_ALLOW_PLAINTEXT"] = "true"
        env.update(self.sts_env)
        return env

    def write_env_file(self, path: Path) -> None:
        lines = [
            "# written by `python -m tools.devenv up`; remove with "
            "`python -m tools.devenv down --env-file`"
        ]
        lines += [f"export {k}={shlex.quote(v)}" for k, v in self.environ().items()]
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)

    def status(self) -> dict[str, bool]:
        running = {name: pid_alive(pid) for name, pid in self.pids.items()}
        if self.postgres_dir is not None:
            pidfile = self.postgres_dir / "data" / "postmaster.pid"
            try:
                running["postgres"] = pid_alive(int(pidfile.read_text().split()[0]))
            except (OSError, ValueError, IndexError):
                running["postgres"] = False
        return running


def state_dir_from_env_file(path: Path) -> Path:
    """Find the state dir recorded in an env file written by :meth:`DevEnv.write_env_file`."""
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith(f"export {STATE_ENV}="):
            return Path(shlex.split(line.split("=", 1)[1])[0])
    raise ValueError(
        f"{path} does not name {STATE_ENV}; was it written by `python -m tools.devenv up`?"
    )


def default_env_file() -> Path:
    return Path(os.environ.get("AIGW_DEV_ENV_FILE", ".dev/env"))
