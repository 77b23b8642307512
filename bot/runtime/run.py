"""`flybot run`: the chat adapters whose settings are present, the scheduler, and one HTTP
server (aiohttp) on FLYBOT_HTTP_HOST:FLYBOT_HTTP_PORT (default 0.0.0.0:8080, as a Fly
`[http_service]` expects):

- `POST /slack/events`: bolt's endpoint (slash commands, interactivity and events on one
  URL), when Slack runs in HTTP mode (no SLACK_APP_TOKEN);
- `GET /healthz`: 200 once the database answers and every adapter is connected, 503 before
  (and while shutting down), with what is and is not ready;
- `GET /metrics`: a few gauges and counters in Prometheus' text format.

Two event loops: this one reads requests and acknowledges them; a second one, in a thread of
its own (`WorkLoop`), holds the runtime — commands, deploys, the scheduler, the Fly client.
A command's database writes and Fly calls then never sit between a request and its ack.

The server listens first, so a health check sees 503 during start-up rather than nothing;
SIGTERM or SIGINT stops it: adapters off, running work finished, the database closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from aiohttp import web
from prometheus_client import Counter, Gauge
from sqlalchemy import func, select, text
from sqlmodel import col

from bot import metrics
from bot.runtime import Runtime
from bot.settings import Settings, SettingsError
from bot.store.models import ApprovalRequest

log = logging.getLogger(__name__)

READY = Gauge("flybot_ready", "1 once the database answers and every adapter is connected.")
JOBS_RUNNING = Gauge("flybot_jobs_running", "Background jobs (deploys…) running here.")
ADAPTER_CONNECTED = Gauge("flybot_adapter_connected", "1 while connected.", ["platform"])
HTTP_REQUESTS = Counter("flybot_http_requests", "Requests served, by path.", ["path"])

DB_CHECK_TIMEOUT = 2.0  # seconds
T = TypeVar("T")


ACK_FIRST_WAIT = 0.25  # seconds a new job may wait for the acks in flight to be sent
QUIET_FOR = 0.02  # seconds without a delivery being answered that count as a lull


class WorkLoop:
    """An event loop in a thread: the runtime and everything commands do run there.

    Acks first: both loops share one interpreter lock, so a job that starts while requests
    are still being answered would slow their acks. A new job waits until no delivery is
    being answered (`answering()`), for at most ACK_FIRST_WAIT, then starts regardless.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="flybot-work", daemon=True)
        self._answering = 0
        self._lock = threading.Lock()
        self._quiet = threading.Event()
        self._quiet.set()

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        """Around the reading and acknowledging of one delivery (on the serving loop)."""
        with self._lock:
            self._answering += 1
            self._quiet.clear()
        try:
            yield
        finally:
            with self._lock:
                self._answering -= 1
                if not self._answering:
                    self._quiet.set()

    async def _acks_sent(self) -> None:
        """Until no delivery has been answered for QUIET_FOR (deliveries come in bursts:
        one quiet instant between two is no lull), or ACK_FIRST_WAIT has passed."""
        waited = quiet = 0.0
        while quiet < QUIET_FOR and waited < ACK_FIRST_WAIT:
            await asyncio.sleep(0.005)
            waited += 0.005
            quiet = quiet + 0.005 if self._quiet.is_set() else 0.0

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> None:
        self.thread.start()

    async def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the work loop and wait for it from the calling loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self.loop))

    def spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> object:
        """Start `coroutine` as one of the runtime's jobs (shutdown waits for it)."""
        jobs = self.runtime.services.jobs

        async def launch() -> None:
            await self._acks_sent()
            jobs.spawn(coroutine, name)

        return asyncio.run_coroutine_threadsafe(launch(), self.loop)

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
        if not self.loop.is_running():
            self.loop.close()


class Adapter(Protocol):
    @property
    def connected(self) -> bool: ...

    async def connect(self) -> None: ...

    async def stop_intake(self) -> None: ...

    async def close(self) -> None: ...


@dataclass
class Server:
    runtime: Runtime
    adapters: dict[str, Adapter] = field(default_factory=dict)
    ready: bool = False

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

    def _pending_approvals(self) -> int:
        pending = col(ApprovalRequest.state) == "pending"
        query = select(func.count()).select_from(ApprovalRequest).where(pending)
        with self.runtime.services.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    async def metrics(self, request: web.Request) -> web.Response:
        """Prometheus' text format (bot/metrics.py). The gauges that describe the database
        (pending approvals, shared by every instance) are read at scrape time."""
        READY.set(int(self.ready))
        JOBS_RUNNING.set(self.runtime.services.jobs.running)
        for name, adapter in self.adapters.items():
            ADAPTER_CONNECTED.labels(name).set(int(adapter.connected))
        try:
            pending = await asyncio.wait_for(
                asyncio.to_thread(self._pending_approvals), DB_CHECK_TIMEOUT
            )
            metrics.PENDING_APPROVALS.set(pending)
        except Exception as exc:
            log.warning("metrics: the database does not answer: %s", exc)
        return web.Response(
            body=metrics.render(), headers={"Content-Type": metrics.CONTENT_TYPE}
        )

    def count(self, path: str) -> None:
        HTTP_REQUESTS.labels(path).inc()


def web_app(
    server: Server, slack_events: Callable[[web.Request], object] | None
) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_get("/healthz", server.healthz)
    app.router.add_get("/metrics", server.metrics)
    if slack_events is not None:

        async def events(request: web.Request) -> web.StreamResponse:
            server.count("/slack/events")
            # while draining too: the adapter answers each delivery as stopping, runs none
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
    work = WorkLoop(runtime)
    slack: SlackAdapter | None = None
    if settings.slack_bot_token or settings.slack_app_token or settings.slack_signing_secret:
        slack = SlackAdapter(runtime, settings, worker=work)
        server.adapters["slack"] = slack
    if settings.discord_token:
        from adapters.discord.app import DiscordAdapter  # discord.py only when it is used

        server.adapters["discord"] = DiscordAdapter(runtime, settings, worker=work)
    if not server.adapters:
        raise SettingsError(
            "nothing to run: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (HTTP mode) or "
            "SLACK_APP_TOKEN (Socket Mode), or DISCORD_TOKEN; see the README's Slack and "
            "Discord sections."
        )
    http_events = slack.handle_http if slack is not None and not slack.socket_mode else None
    runner = web.AppRunner(web_app(server, http_events), access_log=None, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, settings.http_host, settings.http_port)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else settings.http_port
    work.start()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.warning("%s again: exiting at once", name)
            for handler in logging.getLogger().handlers:
                handler.flush()
            os._exit(128 + signum)
        log.info(
            "%s: taking no new commands; running work has %.0f s to stop at a safe point",
            name,
            settings.shutdown_timeout,
        )
        stop.set()
        shutdown_reason[0] = f"flybot is shutting down ({name})"

    shutdown_reason = ["flybot is shutting down"]
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, on_signal, signum)
    served = False
    # What start-up made (modules, the registry, bolt, SQLAlchemy's caches) lives as long as
    # the process: out of the collector's way, a full collection stays short. No collection
    # first: it would cost tens of milliseconds of the start for little (with the collector
    # on through start-up one found nothing to free; `flybot run` keeps it off through its
    # imports, bot/runtime/cli.py, which leaves a few thousand unreachable objects, frozen
    # with the rest). On again before what waits on the network: a chat gateway may take its
    # time, and requests can already arrive.
    gc.freeze()
    gc.enable()
    try:
        for adapter in server.adapters.values():
            await adapter.connect()
        await work.call(runtime.start())
        gc.freeze()  # and what connecting and the runtime's start made
        server.ready = served = True
        modes = []
        if slack is not None:
            modes.append(
                "Slack over Socket Mode" if slack.socket_mode else "Slack at /slack/events"
            )
        if "discord" in server.adapters:
            modes.append("Discord over its gateway")
        log.info(
            "flybot: serving %s on http://%s:%s (/healthz, /metrics)",
            ", ".join(modes),
            settings.http_host,
            bound,
        )
        await stop.wait()
    finally:
        # Fly's proxy sees 503 and sends no more; deliveries are answered, not run; running
        # work gets the budget, then the chat connections close (its threads told by then).
        server.ready = False
        for adapter in server.adapters.values():
            try:
                await adapter.stop_intake()
            except Exception:
                log.exception("stopping an adapter's deliveries failed")
        await work.call(runtime.stop(settings.shutdown_timeout, shutdown_reason[0]))
        for adapter in server.adapters.values():
            try:
                await adapter.close()
            except Exception:
                log.exception("closing an adapter failed")
        work.stop()
        await runner.cleanup()
        if served:
            log.info("flybot: stopped")
