"""Processes left behind: what the local-environment tests look for after a teardown."""

from __future__ import annotations

import os
from pathlib import Path

from tools.devenv.procs import pid_alive


def processes_mentioning(text: str, *, environ: bool = False) -> list[str]:
    """Live processes whose command line (and, with ``environ``, environment) mentions
    ``text``, as ``"pid: cmdline"`` lines."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            env = (
                Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
                if environ
                else ""
            )
        except OSError:
            continue
        if (text in cmdline or text in env) and pid_alive(int(pid)):
            found.append(f"{pid}: {cmdline[:200]}")
    return found
