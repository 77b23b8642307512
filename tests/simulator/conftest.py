"""The simulator on 127.0.0.1 with tiny timings, and an httpx client for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bot.fly.simulator import FlySimulator, SimulatorTiming, running_simulator

AUTH = {"Authorization": "Bearer test-token"}
IMAGE = "registry.fly.io/sim-test:v1"


@dataclass
class Sim:
    sim: FlySimulator
    base_url: str
    http: httpx.AsyncClient

    async def create_app(self, name: str = "sim-test") -> str:
        r = await self.http.post("/v1/apps", json={"app_name": name, "org_slug": "personal"})
        assert r.status_code == 201, r.text
        return name

    async def create_machine(self, app: str, **body: Any) -> dict[str, Any]:
        body.setdefault("region", "nrt")
        body.setdefault("config", machine_config())
        r = await self.http.post(f"/v1/apps/{app}/machines", json=body)
        assert r.status_code == 200, r.text
        machine: dict[str, Any] = r.json()
        return machine

    async def wait(self, app: str, machine_id: str, state: str, **params: Any) -> httpx.Response:
        return await self.http.get(
            f"/v1/apps/{app}/machines/{machine_id}/wait",
            params={"state": state, "timeout": 5, **params},
        )

    async def machine(self, app: str, machine_id: str) -> dict[str, Any]:
        r = await self.http.get(f"/v1/apps/{app}/machines/{machine_id}")
        assert r.status_code == 200, r.text
        machine: dict[str, Any] = r.json()
        return machine


def machine_config(image: str = IMAGE, **extra: Any) -> dict[str, Any]:
    return {
        "image": image,
        "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256},
        "services": [
            {
                "protocol": "tcp",
                "internal_port": 8080,
                "ports": [{"port": 443, "handlers": ["tls", "http"]}],
                "checks": [{"type": "http", "method": "GET", "path": "/healthz"}],
            }
        ],
        "checks": {"alive": {"type": "tcp", "port": 8080}},
        "metadata": {"fly_platform_version": "v2", "fly_process_group": "web"},
        **extra,
    }


async def eventually(
    probe: Callable[[], Awaitable[bool]], timeout: float = 3.0, every: float = 0.01
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await probe():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(every)


@pytest.fixture
async def fly() -> AsyncIterator[Sim]:
    sim = FlySimulator(seed=1, timing=SimulatorTiming.fast())
    async with (
        running_simulator(sim) as server,
        httpx.AsyncClient(base_url=server.base_url, headers=AUTH, timeout=5) as http,
    ):
        yield Sim(sim, server.base_url, http)


@pytest.fixture
async def demo() -> AsyncIterator[Sim]:
    sim = FlySimulator(seed=1, timing=SimulatorTiming.fast())
    sim.seed_demo()
    async with (
        running_simulator(sim) as server,
        httpx.AsyncClient(base_url=server.base_url, headers=AUTH, timeout=5) as http,
    ):
        yield Sim(sim, server.base_url, http)
