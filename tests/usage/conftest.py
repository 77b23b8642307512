"""The usage family against the Fly simulator on 127.0.0.1: apps and machines made over
its HTTP API, egress rates set through /__sim/prometheus, and both clocks (the bot's and
the simulator's) moved together, so a month passes in a second."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.clock import FrozenClock, set_clock
from bot.deploy.engine import Deployer
from bot.fly import FlyClient
from bot.instance import INSTANCE_ID
from bot.runtime import build_services
from bot.settings import Settings
from bot.store.principals import IdentityKey, add_grant, ensure_identity
from bot.usage import collector
from tests.flyharness import FAST_ENGINE, fly_client
from tests.support import Bot, write_projects

simulator = pytest.importorskip("bot.fly.simulator", reason="needs the Fly simulator")

ORG = "demo"
APPS = ("ping-go-dev", "ping-go-prod", "hello-dev", "hello-staging", "hello-prod")
START = datetime(2026, 10, 31, 23, 0, tzinfo=UTC)  # the world is made an hour before Nov 1


def shared(cpus: int = 1, memory_mb: int = 256, kind: str = "shared") -> dict[str, Any]:
    return {"cpu_kind": kind, "cpus": cpus, "memory_mb": memory_mb}


@dataclass
class UsageWorld:
    sim: Any
    base_url: str
    bot: Bot
    tmp_path: Path
    database_url: str
    clock: FrozenClock
    config: Path
    clients: list[FlyClient] = field(default_factory=list)

    def instance(self) -> Bot:
        """Another bot instance on the same database and the same Fly."""
        return Bot(self._services())

    def _services(self) -> Any:
        settings = Settings(
            database_url=self.database_url,
            config_path=self.config,
            fly_org=ORG,
            admins=("shell:local:alice",),
        )
        services = build_services(settings)
        client = fly_client(self.base_url)
        self.clients.append(client)
        services.fly = client
        services.deployer = Deployer(services.engine, client, FAST_ENGINE)
        return services

    def at(self, when: datetime) -> None:
        """Both clocks to `when` (the simulator's lazily replays what happened meanwhile)."""
        self.clock.now = when
        with self.sim.lock:
            self.sim.clock.offset = when.timestamp() - time.time()
            self.sim.state.advance_all()

    async def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, headers={"Authorization": "Bearer t"})

    async def machine(self, app: str, region: str, guest: dict[str, Any]) -> str:
        """A machine as `fly deploy` leaves one (flyctl's metadata), of the size `guest`."""
        config = {
            "image": "registry.fly.io/x:v1",
            "guest": guest,
            "metadata": {"fly_platform_version": "v2", "fly_process_group": "app"},
        }
        async with await self.http() as http:
            r = await http.post(
                f"/v1/apps/{app}/machines", json={"region": region, "config": config}
            )
            assert r.status_code == 200, r.text
            return str(r.json()["id"])

    async def stop(self, app: str, machine_id: str) -> None:
        async with await self.http() as http:
            r = await http.post(f"/v1/apps/{app}/machines/{machine_id}/stop")
            assert r.status_code == 200, r.text

    async def egress(self, app: str, rates: dict[str, float]) -> None:
        async with await self.http() as http:
            r = await http.post(
                "/__sim/prometheus",
                json={"app": app, "egress_bps": rates, "since": START.timestamp()},
            )
            assert r.status_code == 200, r.text

    def volume(self, app: str, region: str, size_gb: int) -> None:
        """The simulator's Machines API has no volume create: seeded as the demo does."""
        state = self.sim.state
        with self.sim.lock:
            state.apps[app].volumes.append(
                simulator.state.Volume(
                    id="vol_" + state.ids.hex(16),
                    name="data",
                    region=region,
                    size_gb=size_gb,
                    created_at=START.timestamp(),
                )
            )

    async def collect(self, bot: Bot | None = None) -> collector.Collected:
        services = (bot or self.bot).services
        return await collector.collect(services.engine, services.fly, ORG, INSTANCE_ID)


def grant(
    bot: Bot,
    user: str,
    role: str,
    project: str = "*",
    stage: str = "*",
    platform: str = "shell",
    workspace: str = "local",
) -> None:
    identity = ensure_identity(bot.engine, IdentityKey(platform, workspace, user), user)
    add_grant(bot.engine, identity.principal_id, role, project, stage, granted_by=None)


@asynccontextmanager
async def usage_world(
    tmp_path: Path, database_url: str | None = None, usage_toml: str = ""
) -> AsyncIterator[UsageWorld]:
    sim = simulator.FlySimulator(seed=5, timing=simulator.SimulatorTiming.fast())
    clock = FrozenClock(START)
    set_clock(clock)
    with sim.lock:
        sim.clock.offset = START.timestamp() - time.time()
    async with simulator.running_simulator(sim, port=0) as server:
        async with httpx.AsyncClient(
            base_url=server.base_url, headers={"Authorization": "Bearer t"}
        ) as http:
            for app in APPS:
                r = await http.post("/v1/apps", json={"app_name": app, "org_slug": ORG})
                assert r.status_code == 201, r.text
        config = write_projects(tmp_path)
        if usage_toml:
            config.write_text(usage_toml + "\n\n" + config.read_text())  # before [projects]
        url = database_url or f"sqlite:///{tmp_path / 'flybot.db'}"
        world = UsageWorld(sim, server.base_url, None, tmp_path, url, clock, config)  # type: ignore[arg-type]
        world.bot = Bot(world._services())
        grant(world.bot, "bob", "deployer")
        grant(world.bot, "vic", "viewer")
        try:
            yield world
        finally:
            for client in world.clients:
                await client.aclose()


async def november(world: UsageWorld) -> dict[str, str]:
    """The month of the hand calculation (see test_figures.py): ping-go-dev runs two
    shared-cpu-1x 256 MB machines in nrt; ping-go-prod one shared-cpu-2x 1024 MB in fra and
    one shared-cpu-1x stopped in sin; hello-prod has a 2 GB volume; outbound 1 kB/s out of
    nrt (dev), 20 kB/s fra and 5 kB/s sin (prod), 0.5 kB/s jnb (hello-prod)."""
    ids = {
        "dev1": await world.machine("ping-go-dev", "nrt", shared()),
        "dev2": await world.machine("ping-go-dev", "nrt", shared()),
        "prod": await world.machine("ping-go-prod", "fra", shared(2, 1024)),
        "stopped": await world.machine("ping-go-prod", "sin", shared()),
    }
    world.at(START + timedelta(seconds=5))
    await world.stop("ping-go-prod", ids["stopped"])
    world.at(START + timedelta(seconds=10))
    world.volume("hello-prod", "ams", 2)
    await world.egress("ping-go-dev", {"nrt": 1_000.0})
    await world.egress("ping-go-prod", {"fra": 20_000.0, "sin": 5_000.0})
    await world.egress("hello-prod", {"jnb": 500.0})
    return ids
