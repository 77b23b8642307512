"""The bot wired to the Fly simulator on 127.0.0.1 with machines placed region by region:
project `shop` (dev unguarded; prod guarded for scale, with a [[vm]] section) and project
`store` (dev, whose web group mounts a volume)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.deploy.flytoml import load_stage_config, with_release
from bot.fly import FlyClient, Machine
from bot.runtime import build_services
from bot.settings import Settings
from bot.store.principals import IdentityKey, add_grant, ensure_identity
from commands.context import Services
from tests.flyharness import FAST_ENGINE, OLD, STAGE_TOML, fly_client
from tests.support import Bot

simulator = pytest.importorskip("bot.fly.simulator", reason="needs the Fly simulator")

FLYBOT_TOML = """\
[projects.shop]
path = "shop"

[projects.shop.stages.prod]
approvals = 1
guarded = ["deploy", "rollback", "scale"]
approval_expires = "30m"

[projects.store]
path = "store"

[projects.store.stages.dev]  # its only stage, so its last: guarded unless it says not
guarded = []
"""

VM_SECTION = """
[[vm]]
  size = "shared-cpu-1x"
  memory = "512mb"
  processes = ["web"]
"""

STORE_TOML = """\
app = "store-dev"
primary_region = "nrt"

[http_service]
  internal_port = 8080

[mounts]
  source = "data"
  destination = "/data"
"""


@dataclass
class ScaleWorld:
    sim: Any
    base_url: str
    fly: FlyClient
    services: Services
    bot: Bot
    root: Path
    http: httpx.AsyncClient
    settings: Settings
    seeded: dict[str, list[str]] = field(default_factory=dict)
    others: list[Services] = field(default_factory=list)

    def instance(self) -> Bot:
        """A second bot process on the same database and the same Fly."""
        services = build_services(self.settings, FAST_ENGINE)
        assert services.deployer is not None
        client = fly_client(self.base_url)
        services.fly = client
        services.deployer.fly = client
        self.others.append(services)
        return Bot(services)

    def calls(self, operation: str | None = None) -> list[Any]:
        return [c for c in self.sim.calls if operation is None or c.operation == operation]

    def writes(self) -> list[Any]:
        """Every call that could change something at Fly."""
        return [c for c in self.sim.calls if c.method not in ("GET", "HEAD")]

    async def machines(self, app: str = "shop-dev", group: str | None = None) -> list[Machine]:
        found = [
            m
            for m in await self.fly.list_machines(app)
            if m.state not in ("destroying", "destroyed")
        ]
        if group is not None:
            found = [m for m in found if m.metadata.get("fly_process_group") == group]
        return found  # Fly lists machines in the order they were made

    def live(self, app: str = "shop-dev") -> dict[str, tuple[str, str, str, str]]:
        """The simulator's own view: id -> (region, state, version, group)."""
        machines = self.sim.state.apps[app].machines.values()
        return {
            m.id: (m.region, m.state, m.version, m.metadata.get("fly_process_group", ""))
            for m in machines
            if m.state not in ("destroying", "destroyed")
        }

    async def create_volume(self, app: str, name: str, region: str) -> str:
        r = await self.http.post(
            f"/v1/apps/{app}/volumes", json={"name": name, "region": region, "size_gb": 1}
        )
        assert r.status_code == 200, r.text
        return str(r.json()["id"])

    async def launch(
        self,
        app: str,
        config_file: Path,
        group: str,
        region: str,
        *,
        volume: str | None = None,
    ) -> str:
        stage = load_stage_config(config_file)
        config = with_release(stage.machine_config(group, OLD), "seed", 1)
        if volume:
            config["mounts"][0]["volume"] = volume
        machine = await self.fly.create_machine(app, config, region=region)
        await self.fly.wait_for_state(app, machine.id, "started", timeout=10)
        self.seeded.setdefault(app, []).append(machine.id)
        return machine.id

    async def wait(self) -> None:
        await self.services.jobs.wait_all()


def grant(bot: Bot, user: str, role: str) -> None:
    identity = ensure_identity(bot.engine, IdentityKey("shell", "local", user), user)
    add_grant(bot.engine, identity.principal_id, role, "*", "*", granted_by=None)


def write_projects(root: Path) -> Path:
    shop = root / "shop"
    shop.mkdir(parents=True, exist_ok=True)
    (shop / "fly.toml").write_text(STAGE_TOML.format(app="shop-dev", stage="dev"))
    (shop / "prod.fly.toml").write_text(
        STAGE_TOML.format(app="shop-prod", stage="prod") + VM_SECTION
    )
    store = root / "store"
    store.mkdir(parents=True, exist_ok=True)
    (store / "fly.toml").write_text(STORE_TOML)
    config = root / "flybot.toml"
    config.write_text(FLYBOT_TOML)
    return config


@asynccontextmanager
async def scale_world(tmp_path: Path, database_url: str | None = None) -> AsyncIterator[ScaleWorld]:
    """shop-dev: web in nrt and sin, no worker. shop-prod: web ×3 (nrt, sin, nrt), worker
    in nrt. store-dev: web in nrt on its own volume."""
    sim = simulator.FlySimulator(seed=11, timing=simulator.SimulatorTiming.fast())
    async with simulator.running_simulator(sim, port=0) as server:
        fly = fly_client(server.base_url)
        config = write_projects(tmp_path)
        async with httpx.AsyncClient(
            base_url=server.base_url, headers={"Authorization": "Bearer test"}
        ) as http:
            for app in ("shop-dev", "shop-prod", "store-dev"):
                r = await http.post("/v1/apps", json={"app_name": app, "org_slug": "demo"})
                assert r.status_code in (200, 201), r.text
            settings = Settings(
                database_url=database_url or f"sqlite:///{tmp_path / 'flybot.db'}",
                config_path=config,
                fly_org="demo",
                fly_flaps_base_url=server.base_url,
                fly_api_base_url=server.base_url,
                fly_api_token="test-token",
                admins=("shell:local:alice",),
            )
            services = build_services(settings, FAST_ENGINE)
            assert services.deployer is not None
            services.fly = fly
            services.deployer.fly = fly
            bot = Bot(services)
            world = ScaleWorld(sim, server.base_url, fly, services, bot, tmp_path, http, settings)
            shop, store = tmp_path / "shop", tmp_path / "store"
            # One at a time: the simulator orders machines by creation, and so do the rules.
            for region in ("nrt", "sin"):
                await world.launch("shop-dev", shop / "fly.toml", "web", region)
            for region in ("nrt", "sin", "nrt"):
                await world.launch("shop-prod", shop / "prod.fly.toml", "web", region)
            await world.launch("shop-prod", shop / "prod.fly.toml", "worker", "nrt")
            volume = await world.create_volume("store-dev", "data", "nrt")
            await world.launch("store-dev", store / "fly.toml", "app", "nrt", volume=volume)
            grant(bot, "bob", "deployer")
            grant(bot, "carol", "approver")
            grant(bot, "vic", "viewer")
            sim.calls.clear()
            try:
                yield world
            finally:
                for one in (services, *world.others):
                    await one.jobs.wait_all()
                for other in world.others:
                    if other.fly is not None:
                        await other.fly.aclose()
                await fly.aclose()
