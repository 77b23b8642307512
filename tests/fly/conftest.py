"""The Fly simulator on 127.0.0.1 and a FlyClient pointed at it, with small budgets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from bot.fly import FlyClient, FlyConfig, RetryPolicy, Timeouts
from tests.contract.recording import RecordingTransport

TOKEN = "fm2_SECRET-token-value-do-not-leak"

FAST_TIMEOUTS = Timeouts(connect=1.0, read=2.0, write=2.0, pool=1.0, wait_margin=1.0)
FAST_RETRY = RetryPolicy(attempts=4, backoff_initial=0.02, backoff_max=0.1, budget=4.0)


@dataclass
class Fly:
    sim: object  # bot.fly.simulator.FlySimulator
    base_url: str
    client: FlyClient
    transport: RecordingTransport


def client_for(
    base_url: str,
    *,
    transport: RecordingTransport | None = None,
    retry: RetryPolicy = FAST_RETRY,
    timeouts: Timeouts = FAST_TIMEOUTS,
    org: str = "personal",
) -> FlyClient:
    config = FlyConfig(
        token=TOKEN,
        org=org,
        flaps_base_url=base_url,
        api_base_url=base_url,
        timeouts=timeouts,
        retry=retry,
        listing_lag=0.5,  # the simulator's listing lags only when a test says so
    )
    return FlyClient(config, transport=transport)


def simulator_module() -> Any:
    """bot.fly.simulator, or a skip naming what is missing (it is built alongside)."""
    module = pytest.importorskip(
        "bot.fly.simulator", reason="bot.fly.simulator (the Fly simulator) is not there yet"
    )
    for name in ("FlySimulator", "SimulatorTiming", "running_simulator"):
        if not hasattr(module, name):
            pytest.skip(f"bot.fly.simulator has no {name} yet")
    return module


@pytest.fixture
async def fly() -> AsyncIterator[Fly]:
    simulator = simulator_module()
    sim = simulator.FlySimulator(seed=0, timing=fast_timing())
    sim.seed_demo()
    async with simulator.running_simulator(sim, port=0) as server:
        transport = RecordingTransport()
        client = client_for(server.base_url, transport=transport)
        try:
            yield Fly(sim=sim, base_url=server.base_url, client=client, transport=transport)
        finally:
            await client.aclose()


def fast_timing() -> Any:
    timing = simulator_module().SimulatorTiming
    return timing.fast() if hasattr(timing, "fast") else timing()
