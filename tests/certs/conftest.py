"""The bot's command layer against the Fly simulator on 127.0.0.1, with the projects of
tests/support.py (ping-go dev/prod, hello dev/staging/prod) as apps in it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.fly import FlyClient
from bot.runtime import build_services
from bot.settings import Settings
from bot.store.models import CertificateWatch
from bot.store.principals import IdentityKey, add_grant, ensure_identity
from tests.flyharness import fly_client
from tests.support import Bot, write_projects

simulator = pytest.importorskip("bot.fly.simulator", reason="needs the Fly simulator")

APPS = ("ping-go-dev", "ping-go-prod", "hello-dev", "hello-staging", "hello-prod")
# hello/prod puts certs behind an approval; ping-go/prod leaves them to deployers.
GUARDED = """
[projects.hello.stages.prod]
approvals = 1
guarded = ["deploy", "rollback", "scale", "secrets", "certs"]
"""


@dataclass
class CertWorld:
    sim: Any
    base_url: str
    bot: Bot
    tmp_path: Path
    database_url: str
    clients: list[FlyClient] = field(default_factory=list)

    def calls(self, operation: str) -> list[Any]:
        return self.sim.calls_for(operation)

    def instance(self) -> Bot:
        """A second bot instance on the same database and the same Fly."""
        bot = Bot(self._services())
        return bot

    def _services(self) -> Any:
        settings = Settings(
            database_url=self.database_url,
            config_path=self.tmp_path / "flybot.toml",
            fly_org="personal",
            admins=("shell:local:alice",),
        )
        services = build_services(settings)
        client = fly_client(self.base_url)
        self.clients.append(client)
        services.fly = client
        return services

    def thread_of(self, bot: Bot, hostname: str) -> list[str]:
        """Every post in the certificate's thread through `bot`'s outbox. (The recording
        conversations number each run's messages from 1, so two threads can share an id: the
        posts are told apart by the hostname each one names.)"""
        row = watch_row(bot, hostname)
        assert row is not None and row.thread_id
        posts = [p.plain() for p in bot.outbox("shell").threads.get(row.thread_id, [])]
        return [p for p in posts if hostname in p]


def watch_row(bot: Bot, hostname: str) -> CertificateWatch | None:
    from bot.ops.certs import watched

    for app in APPS:
        row = watched(bot.engine, app, hostname)
        if row is not None:
            return row
    return None


def grant(bot: Bot, user: str, role: str, project: str = "*", stage: str = "*") -> None:
    identity = ensure_identity(bot.engine, IdentityKey("shell", "local", user), user)
    add_grant(bot.engine, identity.principal_id, role, project, stage, granted_by=None)


@asynccontextmanager
async def cert_world(tmp_path: Path, database_url: str | None = None) -> AsyncIterator[CertWorld]:
    sim = simulator.FlySimulator(seed=3, timing=simulator.SimulatorTiming.fast())
    async with simulator.running_simulator(sim, port=0) as server:
        async with httpx.AsyncClient(
            base_url=server.base_url, headers={"Authorization": "Bearer t"}
        ) as http:
            for app in APPS:
                r = await http.post("/v1/apps", json={"app_name": app, "org_slug": "personal"})
                assert r.status_code == 201, r.text
        config = write_projects(tmp_path)
        config.write_text(config.read_text() + GUARDED)
        url = database_url or f"sqlite:///{tmp_path / 'flybot.db'}"
        world = CertWorld(sim, server.base_url, None, tmp_path, url)  # type: ignore[arg-type]
        world.bot = Bot(world._services())
        grant(world.bot, "bob", "deployer")
        grant(world.bot, "carol", "approver")
        grant(world.bot, "vic", "viewer")
        sim.clear_calls()
        try:
            yield world
        finally:
            for client in world.clients:
                await client.aclose()
