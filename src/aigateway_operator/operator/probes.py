"""Liveness, readiness and startup endpoints: what kopf's one liveness endpoint cannot say.

kopf serves a single liveness endpoint, and only once its startup handlers have finished —
which, for an operator whose startup waits for its database, means a database outage at
start looks like a dead process and the pod is restarted for nothing. Kubernetes wants three
different answers, so this module serves them itself (on kopf's event loop, with aiohttp,
which kopf already brings), from the moment the process runs:

- ``/healthz`` (liveness): 200 while the event loop answers. It stays up through database and
  API-server outages: a restart fixes neither.
- ``/startupz`` (startup): 200 once the first database connection succeeded and every part
  of the operator runs; 503 before. The chart's startup probe covers a slow first connection.
- ``/readyz`` (readiness): 200 while Coder's database answers (checked at most every few
  seconds), 503 when it does not. The JSON body also says whether this replica is the active
  one under kopf peering (``active``: true, false, or null while not known) and the version.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from aigateway_operator import __version__
from aigateway_operator.operator.app import OperatorApp

__all__ = ["ProbeServer"]

log = logging.getLogger("aigateway_operator")


class ProbeServer:
    def __init__(self, app: OperatorApp, port: int, host: str = "0.0.0.0") -> None:  # noqa: S104 - probes are for the kubelet
        self.app = app
        self.port = port
        self.host = host
        self._runner: web.AppRunner | None = None

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "version": __version__})

    async def _startupz(self, request: web.Request) -> web.Response:
        started = self.app.started
        return web.json_response({"started": started}, status=200 if started else 503)

    async def _readyz(self, request: web.Request) -> web.Response:
        database = await self.app.database_ok()
        body = {
            "database": "up" if database else "down",
            "active": self.app.active,
            "started": self.app.started,
            "version": __version__,
        }
        return web.Response(
            text=json.dumps(body),
            content_type="application/json",
            status=200 if database else 503,
        )

    async def start(self) -> None:
        if self.port <= 0:
            return
        web_app = web.Application()
        web_app.add_routes(
            [
                web.get("/healthz", self._healthz),
                web.get("/readyz", self._readyz),
                web.get("/startupz", self._startupz),
            ]
        )
        self._runner = web.AppRunner(web_app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            log.error("probe endpoints not started on port %d: %s", self.port, exc)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
