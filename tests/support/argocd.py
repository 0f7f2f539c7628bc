"""Run the Argo CD health check (deploy/argocd/health.lua) as Argo CD does: the object as the
global ``obj`` in a real Lua interpreter (lupa), a table with status and message back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lupa

SCRIPT_PATH = Path(__file__).resolve().parents[2] / "deploy" / "argocd" / "health.lua"


def argocd_health(obj: dict[str, Any], script: str | None = None) -> tuple[str, str]:
    """(status, message) Argo CD would show for ``obj``."""
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(script if script is not None else SCRIPT_PATH.read_text())
    return str(result["status"]), str(result["message"])
