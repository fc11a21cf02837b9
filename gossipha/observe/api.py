"""Read-only HTTP: /metrics (Prometheus text), /status (orjson), /healthz.

`make_app` builds the aiohttp application; `ApiServer` owns its runner with paired
`setup()`/`cleanup()` (cleanup is safe twice or after a failed setup). The default address
is loopback (`Observe.listen_address`); nothing here changes cluster state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from gossipha.observe.status import ClusterStatus, to_json

log = logging.getLogger(__name__)

StatusProvider = Callable[[], ClusterStatus | None]
HealthProvider = Callable[[], bool]
STATUS_KEY: Final[web.AppKey[StatusProvider]] = web.AppKey("status_provider")
HEALTH_KEY: Final[web.AppKey[HealthProvider]] = web.AppKey("health_provider")
REGISTRY_KEY: Final = web.AppKey("registry", CollectorRegistry)
SHUTDOWN_TIMEOUT_S = 2.0


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY_KEY])
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


async def _status(request: web.Request) -> web.Response:
    status = request.app[STATUS_KEY]()
    if status is None:
        return web.json_response({"error": "starting"}, status=503)
    body = orjson.dumps(to_json(status), option=orjson.OPT_INDENT_2)
    return web.Response(body=body, content_type="application/json")


async def _healthz(request: web.Request) -> web.Response:
    ok = request.app[HEALTH_KEY]()
    return web.Response(text="ok\n" if ok else "unhealthy\n", status=200 if ok else 503)


def make_app(
    status_provider: StatusProvider,
    registry: CollectorRegistry,
    health_provider: HealthProvider | None = None,
) -> web.Application:
    """The app; `status_provider` returns the latest ClusterStatus (None while starting).

    It is called on the loop per request: return a value already built, do not compute.
    `health_provider` (default: a status exists) answers /healthz for systemd or a probe.
    """
    app = web.Application()
    app[STATUS_KEY] = status_provider
    app[REGISTRY_KEY] = registry
    app[HEALTH_KEY] = health_provider or (lambda: status_provider() is not None)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/status", _status)
    app.router.add_get("/healthz", _healthz)
    return app


class ApiServer:
    """One TCP site for `app` on (host, port); port 0 picks a free one (see `port`)."""

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 9694) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    @property
    def port(self) -> int:
        """The bound port (after setup)."""
        if self._site is None or self._runner is None:
            raise RuntimeError("ApiServer.port before setup()")
        for addr in self._runner.addresses:
            return int(addr[1])
        return self._port

    async def setup(self) -> None:
        if self._runner is not None:
            raise RuntimeError("ApiServer.setup() called twice")
        runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        self._runner = runner
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port, reuse_address=True)
        await site.start()
        self._site = site
        log.info("observe api listening address=%s port=%d", self._host, self.port)

    async def cleanup(self) -> None:
        runner, self._runner, self._site = self._runner, None, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> ApiServer:
        try:
            await self.setup()
        except BaseException:
            await self.cleanup()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.cleanup()
