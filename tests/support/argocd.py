"""Run the Argo CD health check (deploy/argocd/health.lua) as Argo CD does: the object as the
global ``obj``, a table with status and message back.

Argo CD runs health checks in gopher-lua, which implements Lua 5.1; so does this runner
(``lupa.lua51``, from the same lupa wheel), not lupa's default runtime (5.4/5.5). A script
that used a newer Lua's syntax or library (``//``, ``goto``, ``utf8``, integer subtypes)
would pass under the default runtime and fail in Argo CD; here it fails too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lupa import lua51

SCRIPT_PATH = Path(__file__).resolve().parents[2] / "deploy" / "argocd" / "health.lua"
#: What ``_VERSION`` says in Argo CD's interpreter (gopher-lua).
LUA_VERSION = "Lua 5.1"


def lua_runtime() -> Any:
    """A fresh Lua 5.1 interpreter, as the health checks get one."""
    return lua51.LuaRuntime(unpack_returned_tuples=True)


def argocd_health(obj: dict[str, Any], script: str | None = None) -> tuple[str, str]:
    """(status, message) Argo CD would show for ``obj``."""
    lua = lua_runtime()
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(script if script is not None else SCRIPT_PATH.read_text())
    return str(result["status"]), str(result["message"])
