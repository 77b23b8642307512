"""`flybot run`: the chat adapters whose settings are present, the scheduler, and one HTTP
server (aiohttp) on FLYBOT_HTTP_HOST:FLYBOT_HTTP_PORT (default 0.0.0.0:8080, as a Fly
`[http_service]` expects):

- `POST /slack/events`: bolt's endpoint (slash commands, interactivity and events on one
  URL), when Slack runs in HTTP mode (no SLACK_APP_TOKEN);
- `GET /healthz`: 200 once the database answers and every adapter is connected, 503 before
  (and while shutting down), with what is and is not ready;
- `GET /metrics`: a few gauges and counters in Prometheus' text format.

The server listens first, so a health check sees 503 during start-up rather than nothing;
SIGTERM or SIGINT stops it: adapters off, running work finished, the database closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web
from sqlalchemy import text

from bot.runtime import Runtime
from bot.settings import Settings, SettingsError

log = logging.getLogger(__name__)

DB_CHECK_TIMEOUT = 2.0  # seconds


class Adapter(Protocol):
    @property
    def connected(self) -> bool: ...

    async def connect(self) -> None: ...

    async def close(self) -> None: ...


@dataclass
class Server:
    runtime: Runtime
    adapters: dict[str, Adapter] = field(default_factory=dict)
    ready: bool = False
    requests: dict[str, int] = field(default_factory=dict)

    def _database_answers(self) -> bool:
        with self.runtime.services.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True

    async def healthz(self, request: web.Request) -> web.Response:
        try:
            database = await asyncio.wait_for(
                asyncio.to_thread(self._database_answers), DB_CHECK_TIMEOUT
            )
        except Exception as exc:
            log.warning("healthz: the database does not answer: %s", exc)
            database = False
        checks = {"database": "ok" if database else "down"}
        for name, adapter in self.adapters.items():
            checks[name] = "connected" if adapter.connected else "not connected"
        healthy = self.ready and database and all(a.connected for a in self.adapters.values())
        checks["status"] = "ok" if healthy else ("starting" if not self.ready else "degraded")
        return web.json_response(checks, status=200 if healthy else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        lines = [
            "# TYPE flybot_ready gauge",
            f"flybot_ready {int(self.ready)}",
            "# TYPE flybot_jobs_running gauge",
            f"flybot_jobs_running {self.runtime.services.jobs.running}",
            "# TYPE flybot_adapter_connected gauge",
            *(
                f'flybot_adapter_connected{{platform="{name}"}} {int(a.connected)}'
                for name, a in self.adapters.items()
            ),
            "# TYPE flybot_http_requests_total counter",
            *(
                f'flybot_http_requests_total{{path="{path}"}} {count}'
                for path, count in sorted(self.requests.items())
            ),
        ]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    def count(self, path: str) -> None:
        self.requests[path] = self.requests.get(path, 0) + 1


def web_app(
    server: Server, slack_events: Callable[[web.Request], object] | None
) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_get("/healthz", server.healthz)
    app.router.add_get("/metrics", server.metrics)
    if slack_events is not None:

        async def events(request: web.Request) -> web.StreamResponse:
            server.count("/slack/events")
            response = await slack_events(request)  # type: ignore[misc]
            assert isinstance(response, web.StreamResponse)
            return response

        app.router.add_post("/slack/events", events)
    return app


async def serve(runtime: Runtime, settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run until `stop` is set (or SIGTERM/SIGINT). Raises SettingsError (or the adapter's
    setup error) with one clear line when nothing can run or a platform refuses the tokens."""
    from adapters.slack.app import SlackAdapter

    stop = stop or asyncio.Event()
    server = Server(runtime)
    slack: SlackAdapter | None = None
    if settings.slack_bot_token or settings.slack_app_token or settings.slack_signing_secret:
        slack = SlackAdapter(runtime, settings)
        server.adapters["slack"] = slack
    if not server.adapters:
        raise SettingsError(
            "nothing to run: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (HTTP mode) or "
            "SLACK_APP_TOKEN (Socket Mode); see the README's Slack section."
        )
    http_events = slack.handle_http if slack is not None and not slack.socket_mode else None
    runner = web.AppRunner(web_app(server, http_events), access_log=None, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, settings.http_host, settings.http_port)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else settings.http_port
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    try:
        for adapter in server.adapters.values():
            await adapter.connect()
        await runtime.start()
        server.ready = True
        modes = []
        if slack is not None:
            modes.append(
                "Slack over Socket Mode" if slack.socket_mode else "Slack at /slack/events"
            )
        print(
            f"flybot: serving {', '.join(modes)} on http://{settings.http_host}:{bound} "
            "(/healthz, /metrics)",
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()
    finally:
        server.ready = False
        for adapter in server.adapters.values():
            try:
                await adapter.close()
            except Exception:
                log.exception("closing an adapter failed")
        await runtime.stop()
        await runner.cleanup()
