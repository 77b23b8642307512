"""A project, a simulated Fly with machines in it, and the bot wired to both — for tests of
everything that deploys. Everything talks HTTP to the simulator on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.deploy.engine import EngineTiming
from bot.deploy.flytoml import load_stage_config, with_release
from bot.fly import FlyClient, FlyConfig, Machine, RetryPolicy, Timeouts
from bot.runtime import build_services
from bot.settings import Settings
from commands.context import Services
from tests.support import Bot

simulator = pytest.importorskip("bot.fly.simulator", reason="needs the Fly simulator")

OLD = "registry.fly.io/shop:v1"
NEW = "registry.fly.io/shop:v2"
BROKEN = "registry.fly.io/shop:v2-broken"
CRASHLOOP = "registry.fly.io/shop:v2-crashloop"

STAGE_TOML = """\
app = "{app}"
primary_region = "nrt"

[deploy]
  strategy = "rolling"
  max_unavailable = 2
  wait_timeout = "3s"

[env]
  STAGE = "{stage}"

[processes]
  web = "/app/shop serve"
  worker = "/app/shop work"

[http_service]
  internal_port = 8080
  processes = ["web"]

  [[http_service.checks]]
    interval = "1s"
    timeout = "1s"
    grace_period = "1s"
    method = "GET"
    path = "/healthz"

[checks.worker_alive]
  type = "tcp"
  port = 9090
  processes = ["worker"]
"""

FLYBOT_TOML = """\
[projects.shop]
path = "shop"

[projects.shop.stages.prod]
approvals = {approvals}
guarded = [{guarded}]
approval_expires = "30m"
"""

FAST_ENGINE = EngineTiming(
    lease_ttl=5,
    lease_refresh=0.3,
    check_poll=0.02,
    check_backoff_max=0.2,  # 4 s, paced as the checks are
    heartbeat=0.2,
    stale_after=2.0,
    check_pace=0.05,  # as SimulatorTiming.fast()'s check_time_scale: fly.toml's 1s is 50 ms
    proxy_settle=0.02,
    drain=0.05,  # SimulatorTiming.fast() drains in 0.03 s
)


GUARDED = '"deploy", "rollback"'


def write_project(root: Path, approvals: int = 1, extra: str = "", guarded: str = GUARDED) -> Path:
    folder = root / "shop"
    folder.mkdir(parents=True, exist_ok=True)
    for stage, name in (
        ("dev", "fly.toml"),
        ("staging", "staging.fly.toml"),
        ("prod", "prod.fly.toml"),
    ):
        (folder / name).write_text(STAGE_TOML.format(app=f"shop-{stage}", stage=stage))
    config = root / "flybot.toml"
    config.write_text(FLYBOT_TOML.format(approvals=approvals, guarded=guarded) + extra)
    return config


def fly_client(base_url: str, retry: RetryPolicy | None = None) -> FlyClient:
    return FlyClient(
        FlyConfig(
            token="test-token",
            org="demo",
            flaps_base_url=base_url,
            api_base_url=base_url,
            timeouts=Timeouts(connect=2.0, read=5.0, write=5.0, pool=2.0, wait_margin=2.0),
            retry=retry
            or RetryPolicy(attempts=8, backoff_initial=0.01, backoff_max=0.05, budget=10.0),
            listing_lag=0.5,
            registry_base_url=base_url,  # the simulator is the image registry too
        )
    )


@dataclass
class World:
    sim: Any
    base_url: str
    fly: FlyClient
    services: Services
    bot: Bot
    root: Path
    extra_clients: list[FlyClient] = field(default_factory=list)

    def route_through(self, base_url: str) -> FlyClient:
        """Send the bot's Fly calls to `base_url` (a proxy in front of the simulator)."""
        client = fly_client(base_url)
        self.extra_clients.append(client)
        self.services.fly = client
        assert self.services.deployer is not None
        self.services.deployer.fly = client
        return client

    def calls(self, operation: str | None = None) -> list[Any]:
        return [c for c in self.sim.calls if operation is None or c.operation == operation]

    async def machines(self, app: str = "shop-staging") -> list[Machine]:
        return [
            m
            for m in await self.fly.list_machines(app)
            if m.state not in ("destroying", "destroyed")
        ]


async def seed_stage(
    fly: FlyClient,
    base_url: str,
    config_file: Path,
    image: str,
    web: int = 4,
    worker: int = 2,
    create_app: bool = True,
) -> None:
    stage = load_stage_config(config_file)
    if create_app:
        async with httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": "Bearer test"}
        ) as http:
            body = {"app_name": stage.app, "org_slug": "demo"}
            response = await http.post("/v1/apps", json=body)
            assert response.status_code in (200, 201), response.text
    regions = ["nrt", "sin", "nrt", "syd"]

    async def launch(group: str, index: int) -> None:
        config = with_release(stage.machine_config(group, image), "seed", 1)
        machine = await fly.create_machine(stage.app, config, region=regions[index % 4])
        await fly.wait_for_state(stage.app, machine.id, "started", timeout=10)

    await asyncio.gather(
        *(
            launch(group, index)
            for group, count in (("web", web), ("worker", worker))
            for index in range(count)
        )
    )


@asynccontextmanager
async def world(
    tmp_path: Path,
    *,
    approvals: int = 1,
    seed_image: str = OLD,
    timing: Any = None,
    admins: tuple[str, ...] = ("shell:local:alice",),
    database_url: str | None = None,
    extra_config: str = "",
    fly_clock_skew: float = 0.0,
    guarded: str = GUARDED,
) -> AsyncIterator[World]:
    sim = simulator.FlySimulator(seed=7, timing=timing or simulator.SimulatorTiming.fast())
    sim.clock.advance(fly_clock_skew)  # Fly's clock, ahead of (or behind) this host's
    async with simulator.running_simulator(sim, port=0) as server:
        fly = fly_client(server.base_url)
        config = write_project(tmp_path, approvals, extra_config, guarded)
        await asyncio.gather(
            *(
                seed_stage(fly, server.base_url, tmp_path / "shop" / name, seed_image)
                for name in ("fly.toml", "staging.fly.toml", "prod.fly.toml")
            )
        )
        sim.calls.clear()
        settings = Settings(
            database_url=database_url or f"sqlite:///{tmp_path / 'flybot.db'}",
            config_path=config,
            fly_org="demo",
            fly_flaps_base_url=server.base_url,
            fly_api_base_url=server.base_url,
            fly_api_token="test-token",
            admins=admins,
        )
        services = build_services(settings, FAST_ENGINE)
        assert services.deployer is not None
        services.fly = fly
        services.deployer.fly = fly
        w = World(sim, server.base_url, fly, services, Bot(services), tmp_path)
        try:
            yield w
        finally:
            await services.jobs.wait_all()
            for client in w.extra_clients:
                await client.aclose()
            await fly.aclose()
