"""The real ``helm`` CLI against a real API server: install, upgrade, uninstall, as a user
would run them (no client-side shortcuts), with a private Helm and discovery cache so runs
never share state."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class HelmCli:
    binary: Path
    kubeconfig: Path
    home: Path  # private cache/config/data dirs live here

    def env(self) -> dict[str, str]:
        return {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.home),
            "KUBECONFIG": str(self.kubeconfig),
            "KUBECACHEDIR": str(self.home / "kube-cache"),
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }

    def run(
        self, *args: str, values: dict[str, Any] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``helm ARGS`` (values as a file on stdin); the result, whatever the exit code."""
        cmd = [str(self.binary), *args]
        if values is not None:
            cmd += ["--values", "-"]
        return subprocess.run(
            cmd,
            input=json.dumps(values) if values is not None else None,
            capture_output=True,
            text=True,
            env=self.env(),
            check=False,
            timeout=300,
        )

    def ok(self, *args: str, values: dict[str, Any] | None = None) -> str:
        """``helm ARGS`` that must succeed; its stdout."""
        proc = self.run(*args, values=values)
        assert proc.returncode == 0, f"helm {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
        return proc.stdout
