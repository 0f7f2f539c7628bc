"""A throwaway Postgres 15 server: initdb + pg_ctl in a temp dir, loopback only.

initdb refuses to run as root, so when the caller is root the data directory is
chowned to the ``postgres`` system user and every server command runs as that user.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tools.devenv.procs import free_port

PG_MAJOR = 15
DB_NAME = "coder"
DB_USER = "aigw"


class PostgresError(RuntimeError):
    """Postgres could not be found, initialised or started."""


def pg_bindir() -> Path:
    """Find the Postgres 15 server binaries (Debian layout first, then PATH)."""
    debian = Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")
    if (debian / "initdb").exists():
        return debian
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise PostgresError(
        f"Postgres {PG_MAJOR} server binaries not found "
        f"(looked in {debian} and PATH); run `make setup` to install postgresql-{PG_MAJOR}"
    )


def _run_as() -> str | None:
    """The user to run server commands as: ``postgres`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise PostgresError("running as root but there is no 'postgres' user for initdb") from exc
    return "postgres"


@dataclass
class PostgresServer:
    """A running (or stopped) server owned by this process; see :meth:`start`."""

    base_dir: Path
    port: int
    password: str
    pid: int | None = None
    host: str = "127.0.0.1"
    """The address clients are given (the node network's gateway when pods are clients)."""

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def dsn(self) -> str:
        return (
            f"postgresql://{DB_USER}:{self.password}@{self.host}:{self.port}/{DB_NAME}"
            "?sslmode=disable"
        )

    @property
    def superuser_dsn(self) -> str:
        return (
            f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/postgres?sslmode=disable"
        )

    @classmethod
    def start(
        cls,
        base_dir: Path,
        port: int | None = None,
        timeout: float = 60.0,
        *,
        network: str | None = None,
    ) -> PostgresServer:
        """initdb, start on 127.0.0.1, create the ``aigw`` role and ``coder`` database.

        ``network`` (a node network's CIDR): also listen on its first address, accept password
        logins from its pods, and hand that address out in :attr:`dsn`.
        """
        bindir = pg_bindir()
        user = _run_as()
        base_dir.mkdir(parents=True, exist_ok=True)
        server = cls(base_dir=base_dir, port=port or free_port(), password=secrets.token_hex(16))
        listen = ["127.0.0.1"]
        if network is not None:
            server.host = str(ipaddress.ip_network(network).network_address + 1)
            listen.append(server.host)
        pwfile = base_dir / "pwfile"
        pwfile.write_text(server.password + "\n")
        pwfile.chmod(0o600)
        if user is not None:
            info = pwd.getpwnam(user)
            _make_traversable(base_dir)
            os.chown(base_dir, info.pw_uid, info.pw_gid)
            os.chown(pwfile, info.pw_uid, info.pw_gid)
        _check(
            [
                str(bindir / "initdb"),
                "-D",
                str(server.data_dir),
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            user,
            "initdb",
        )
        pwfile.unlink()
        # Loopback only, socket in our own dir, durability off: this is a throwaway test server.
        # Written to postgresql.conf so a restart after a crash comes back on the same port.
        conf = server.data_dir / "postgresql.conf"
        conf.write_text(
            conf.read_text()
            + "\n# aigateway-operator dev environment\n"
            + f"listen_addresses = '{','.join(listen)}'\n"
            + f"port = {server.port}\n"
            + f"unix_socket_directories = '{base_dir}'\n"
            # fsync off is safe for a killed *server process* (the OS cache survives), but
            # synchronous_commit must stay on: otherwise an immediate stop (a crash) loses
            # transactions already reported committed, and fault tests would see lost rows.
            + "fsync = off\nsynchronous_commit = on\nfull_page_writes = off\n"
            + "max_connections = 200\n"
        )
        if network is not None:
            hba = server.data_dir / "pg_hba.conf"
            hba.write_text(hba.read_text() + f"host all all {network} scram-sha-256\n")
        server._pg_ctl_start(timeout)
        server._bootstrap(timeout)
        return server

    def _bootstrap(self, timeout: float) -> None:
        import psycopg  # local import: devenv is usable without the runtime deps loaded

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(
                    self.superuser_dsn, autocommit=True, connect_timeout=5
                ) as conn:
                    conn.execute(f"CREATE ROLE {DB_USER} LOGIN PASSWORD '{self.password}'")
                    conn.execute(f"CREATE DATABASE {DB_NAME} OWNER {DB_USER}")
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def restart(self, timeout: float = 60.0) -> None:
        """Stop immediately (as a crash would) and start again on the same port."""
        self.stop(mode="immediate", remove=False)
        self._pg_ctl_start(timeout)

    def start_again(self, timeout: float = 60.0) -> None:
        """Start a server stopped with ``stop(remove=False)`` (same data dir and port)."""
        self._pg_ctl_start(timeout)

    def _pg_ctl_start(self, timeout: float) -> None:
        # -l matters: without a log file the server inherits our stdout pipe and
        # capture_output would wait for it forever.
        _check(
            [
                str(pg_bindir() / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.base_dir / "postgres.log"),
                "-w",
                "-t",
                str(int(timeout)),
                "start",
            ],
            _run_as(),
            "pg_ctl start",
        )
        self.pid = _read_pid(self.data_dir)

    def stop(self, mode: str = "fast", remove: bool = True) -> None:
        """Stop the server (if running) and remove its directory unless told not to."""
        if self.data_dir.exists() and (self.data_dir / "postmaster.pid").exists():
            _run(
                [
                    str(pg_bindir() / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-m",
                    mode,
                    "-w",
                    "-t",
                    "60",
                    "stop",
                ],
                _run_as(),
            )
        self.pid = None
        if remove:
            shutil.rmtree(self.base_dir, ignore_errors=True)


def _make_traversable(path: Path) -> None:
    """Let the postgres user reach ``path``: add o+x (search, not read) to ancestors we own."""
    path.chmod(0o755)
    for parent in path.parents:
        st = parent.stat()
        if st.st_uid == os.geteuid() and not st.st_mode & stat.S_IXOTH:
            parent.chmod(stat.S_IMODE(st.st_mode) | stat.S_IXOTH)


def _read_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def _run(cmd: list[str], user: str | None) -> subprocess.CompletedProcess[str]:
    """Run as ``user`` when given: uid, gid and no root supplementary groups (initdb checks all)."""
    if user is None:
        return subprocess.run(cmd, capture_output=True, text=True, check=False)
    return subprocess.run(
        cmd, capture_output=True, text=True, check=False, user=user, group=user, extra_groups=[]
    )


def _check(cmd: list[str], user: str | None, what: str) -> None:
    proc = _run(cmd, user)
    if proc.returncode != 0:
        raise PostgresError(f"{what} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
