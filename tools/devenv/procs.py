"""Small process helpers shared by the local environment: ports, waiting, stopping."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

# Children we started, kept so they can be reaped (and so Popen does not warn when a
# handle is dropped while the child, on purpose, outlives this call).
_children: dict[int, subprocess.Popen[bytes]] = {}


def spawn(
    argv: list[str], log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a long-running child in its own session with output to ``log_path``."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # own process group: terminate() reaches its children too
            env=env,
        )
    _children[proc.pid] = proc
    return proc


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ProcessExited(RuntimeError):
    """A process we were waiting on died; waiting longer cannot help."""


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll ``check`` until true; raise ``TimeoutError`` naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except ProcessExited:
            raise
        except Exception:  # noqa: S110 - the check may fail until the thing is up
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def terminate(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM the process group led by ``pid`` (or the process), then SIGKILL at the deadline."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        child = _children.get(pid)
        while time.monotonic() < deadline:
            if child is not None:
                if child.poll() is not None:
                    _children.pop(pid, None)
                    return
            elif not pid_alive(pid):
                return
            time.sleep(0.05)
