"""The simulator's certificate lifecycle: a DNS flag (set by the control API, or by itself
after `cert_dns_after_s`), then a check issues it; `issued` ages or renews it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bot.clock import FrozenClock, set_clock, utcnow
from bot.fly.simulator import FlySimulator, SimulatorTiming, running_simulator
from commands.certs import recheck_pending, warn_expiring
from tests.certs.conftest import cert_world, watch_row

AUTH = {"Authorization": "Bearer t"}


@asynccontextmanager
async def sim_http(
    timing: SimulatorTiming,
) -> AsyncIterator[tuple[FlySimulator, httpx.AsyncClient]]:
    sim = FlySimulator(seed=1, timing=timing)
    async with (
        running_simulator(sim, port=0) as server,
        httpx.AsyncClient(base_url=server.base_url, headers=AUTH) as http,
    ):
        r = await http.post("/v1/apps", json={"app_name": "web", "org_slug": "personal"})
        assert r.status_code == 201
        yield sim, http


def expiry(cert: dict[str, object]) -> datetime:
    [first, *_] = cert["certificates"]  # type: ignore[misc]
    return datetime.fromisoformat(first["expires_at"].replace("Z", "+00:00"))


async def test_dns_appears_by_itself_after_cert_dns_after_s() -> None:
    async with sim_http(SimulatorTiming(cert_dns_after_s=30.0)) as (sim, http):
        r = await http.post("/v1/apps/web/certificates/acme", json={"hostname": "a.example.com"})
        assert r.status_code == 201
        checked = (await http.post("/v1/apps/web/certificates/a.example.com/check")).json()
        assert checked["status"] == "pending_validation" and checked["validation_errors"]
        sim.clock.advance(31)
        checked = (await http.post("/v1/apps/web/certificates/a.example.com/check")).json()
        assert checked["status"] == "active" and checked["validation_errors"] == []


async def test_the_issued_control_ages_and_renews_a_certificate() -> None:
    async with sim_http(SimulatorTiming.fast()) as (sim, http):
        await http.post("/v1/apps/web/certificates/acme", json={"hostname": "a.example.com"})
        r = await http.post("/__sim/certificates/web/a.example.com/issued", json={"days_ago": 80})
        assert r.status_code == 200, r.text
        aged = (await http.get("/v1/apps/web/certificates/a.example.com")).json()
        now = datetime.fromtimestamp(sim.clock.now(), UTC)
        assert aged["status"] == "active"
        assert timedelta(days=9) < expiry(aged) - now < timedelta(days=11)
        await http.post("/__sim/certificates/web/a.example.com/issued", json={"days_ago": 0})
        renewed = (await http.get("/v1/apps/web/certificates/a.example.com")).json()
        assert timedelta(days=89) < expiry(renewed) - now <= timedelta(days=90)
        bad = await http.post(
            "/__sim/certificates/web/a.example.com/issued", json={"days_ago": "x"}
        )
        assert bad.status_code == 400
        missing = await http.post("/__sim/certificates/web/zz.example.com/issued", json={})
        assert missing.status_code == 404


async def test_a_renewal_moves_the_expiry_and_the_warnings_start_over(tmp_path: Path) -> None:
    async with cert_world(tmp_path) as world:
        clock = FrozenClock(utcnow())
        set_clock(clock)
        await world.bot.run("bob", "certs add ping-go prod www.example.com")
        world.sim.set_certificate_issued("ping-go-prod", "www.example.com", days_ago=80)
        await recheck_pending(world.bot.services)  # active, 10 days to go
        assert await warn_expiring(world.bot.services) == 1
        world.sim.set_certificate_issued("ping-go-prod", "www.example.com", days_ago=0)
        clock.advance(timedelta(days=1))
        assert await warn_expiring(world.bot.services) == 0  # renewed: 89 days to go
        row = watch_row(world.bot, "www.example.com")
        assert row is not None and row.warned_days == "" and row.expires_at is not None
        clock.now = row.expires_at - timedelta(days=13)
        assert await warn_expiring(world.bot.services) == 1  # the new expiry's own warning
        told = world.thread_of(world.bot, "www.example.com")
        warnings = [t for t in told if "warning" in t]
        assert len(warnings) == 2 and all("(14-day warning)" in t for t in warnings)
        dates = {t.split(" expires ", 1)[1][:10] for t in warnings}
        assert len(dates) == 2  # one warning for each expiry date
