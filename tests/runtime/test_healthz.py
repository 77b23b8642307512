"""`flybot run`'s /healthz: 200 only while the database answers and every adapter is
connected, 503 otherwise (starting, a database gone, a Socket Mode connection lost), so Fly's
health check takes an instance that cannot work out of rotation. The process-level 503→200
at start-up is tests/slack/test_http.py; here the server is run in this process against a
real PostgreSQL database that is then dropped under it. Also the HTTP settings' defaults."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psycopg
import pytest
from aiohttp import web

from bot.runtime import Runtime
from bot.runtime.run import Server, web_app
from bot.settings import DEFAULT_HTTP_HOST, DEFAULT_HTTP_PORT, Settings, SettingsError
from tests.conftest import PG_ADMIN_URL
from tests.support import write_projects


@dataclass
class Adapter:
    """An adapter as the server sees it: connected or not (its platform is not the point)."""

    connected: bool = True

    async def connect(self) -> None:
        self.connected = True

    async def close(self) -> None:
        self.connected = False


@asynccontextmanager
async def serving(server: Server) -> AsyncIterator[str]:
    runner = web.AppRunner(web_app(server, None))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def health(url: str) -> tuple[int, dict[str, str]]:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/healthz") as response:
        return response.status, json.loads(await response.text())


async def test_healthz_is_503_when_the_database_or_an_adapter_is_gone(
    tmp_path: Path, postgres_url: str
) -> None:
    runtime = Runtime.from_settings(
        Settings(database_url=postgres_url, config_path=write_projects(tmp_path))
    )
    slack = Adapter()
    server = Server(runtime, adapters={"slack": slack})
    try:
        async with serving(server) as url:
            assert await health(url) == (
                503,
                {"database": "ok", "slack": "connected", "status": "starting"},
            )
            server.ready = True
            assert await health(url) == (
                200,
                {"database": "ok", "slack": "connected", "status": "ok"},
            )
            slack.connected = False  # e.g. the Socket Mode websocket dropped
            assert await health(url) == (
                503,
                {"database": "ok", "slack": "not connected", "status": "degraded"},
            )
            slack.connected = True
            name = postgres_url.rsplit("/", 1)[-1]
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            assert await health(url) == (
                503,
                {"database": "down", "slack": "connected", "status": "degraded"},
            )
    finally:
        runtime.services.engine.dispose()


def test_the_http_server_listens_where_a_fly_http_service_expects_by_default() -> None:
    settings = Settings.from_env({})
    assert (settings.http_host, settings.http_port) == (DEFAULT_HTTP_HOST, DEFAULT_HTTP_PORT)
    assert (DEFAULT_HTTP_HOST, DEFAULT_HTTP_PORT) == ("0.0.0.0", 8080)
    chosen = Settings.from_env({"FLYBOT_HTTP_HOST": "127.0.0.1", "FLYBOT_HTTP_PORT": "9090"})
    assert (chosen.http_host, chosen.http_port) == ("127.0.0.1", 9090)
    for bad in ("http", "-1", "65536"):
        with pytest.raises(SettingsError, match=f"FLYBOT_HTTP_PORT '{bad}' is not a port"):
            Settings.from_env({"FLYBOT_HTTP_PORT": bad})
