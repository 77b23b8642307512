"""A month of the simulator's series, sampled day by day by the collector, against a hand
calculation; two instances sampling each day once; a Prometheus outage; back-fill and gaps."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from bot.store.engine import session_scope
from bot.store.models import UsageDay, UsageSample
from bot.usage import collector
from commands.usage import month_figures
from tests.usage.conftest import START, UsageWorld, november, usage_world

DAY_S = 86_400
NOV = "2026-11"


async def a_month_day_by_day(world: UsageWorld) -> None:
    """The bot runs all November: each night just after midnight the collector samples the
    day that ended."""
    for day in range(1, 31):
        world.at(START + timedelta(hours=1, days=day, minutes=10))
        await world.collect()


async def test_a_month_of_figures_equals_the_hand_calculation(tmp_path: Path) -> None:
    """Must show: the figures from the simulator's series for a month equal this by hand."""
    async with usage_world(tmp_path) as world:
        await november(world)
        await a_month_day_by_day(world)
        figures = month_figures(world.bot.services, NOV)

        # by hand: November has 30 days = 720 hours
        assert figures.statuses == {f"2026-11-{d:02d}": "done" for d in range(1, 31)}
        assert figures.running_hours == pytest.approx(
            {"shared-cpu-1x 256 MB": 2 * 720.0, "shared-cpu-2x 1024 MB": 720.0}
        )
        assert figures.stopped_hours == pytest.approx(
            {"shared-cpu-1x 256 MB": 720.0, "shared-cpu-2x 1024 MB": 0.0}
        )
        assert figures.hours_by_app == pytest.approx({"ping-go-dev": 1440.0, "ping-go-prod": 720.0})
        assert figures.volume_gb_months == pytest.approx(2.0)  # 2 GB all month
        # outbound: bytes/s x 86 400 s x 30 days / 10^9 (the daily wave adds up to 0 a day)
        assert figures.outbound_gb == pytest.approx(
            {
                "na_eu": 20_000 * DAY_S * 30 / 1e9,  # fra: 51.84 GB
                "apac": (5_000 + 1_000) * DAY_S * 30 / 1e9,  # sin + nrt: 15.552 GB
                "africa_india": 500 * DAY_S * 30 / 1e9,  # jnb: 1.296 GB
            },
            rel=1e-6,
        )
        # the estimate: the 1440 free-size hours are inside the 2232 free; the 2x 1024 MB
        # machine pays 2 shared vCPUs ($1.94 each) + 512 MB above the 512 it includes
        # ($5/GB), per 730 h; the stopped machine pays 1 GB of rootfs at $0.15/GB-month;
        # 2 GB-months of volumes and all outbound are inside the allowances.
        machines = (2 * 1.94 + 0.5 * 5.00) / 730 * 720
        rootfs = 720 * 1.0 * 0.15 / 730
        costs = dict(figures.costs)
        assert costs["machines"] == pytest.approx(machines)
        assert costs["stopped machines' root filesystems"] == pytest.approx(rootfs)
        assert costs["volumes"] == 0
        assert figures.total == pytest.approx(machines + rootfs)  # $6.44
        assert figures.trend("machine_hours").percent == pytest.approx(100 * 1440 / 2232)

        outcome, conversation = await world.bot.run("vic", f"usage --month {NOV}")
        assert outcome.status == "ok", conversation.all_text()
        text = conversation.all_text()
        assert "Estimated bill: $6.44" in text, text
        assert "1,440.0 h of 2,232 h free (65%)" in text, text
        assert "Asia-Pacific 15.55 GB of 30 (52%)" in text, text
        assert "Days sampled: 30 of 30" in text


async def test_two_instances_sample_each_day_once(tmp_path: Path, database_url: str) -> None:
    async with usage_world(tmp_path, database_url) as world:
        await november(world)
        other = world.instance()
        world.at(START + timedelta(days=6, hours=1))  # Nov 7, 00:00: Oct 1 … Nov 6 are due
        world.sim.clear_calls()
        first, second = await asyncio.gather(world.collect(), world.collect(other))
        days = collector.candidate_days(world.clock.now)
        inside = [d for d in days if collector.in_window(d, world.clock.now)]
        done = sorted(first.done + second.done)
        assert done == [d.isoformat() for d in inside]
        assert sorted(first.gaps + second.gaps) == [d.isoformat() for d in days if d not in inside]
        assert not set(first.done) & set(second.done)
        # each day's Prometheus questions were asked once: two range queries and one instant
        assert len(world.sim.calls_for("Prometheus_query_range")) == 2 * len(inside)
        assert len(world.sim.calls_for("Prometheus_query")) == len(inside)
        with session_scope(world.bot.engine) as session:
            rows = list(session.exec(collector.select(UsageSample)))
            nov5 = [r for r in rows if r.day == "2026-11-05" and r.kind == "machine"]
        assert len(nov5) == 4
        # and again: nothing is due, nobody samples
        world.sim.clear_calls()
        again = await asyncio.gather(world.collect(), world.collect(other))
        assert all(not c.done for c in again)
        assert world.sim.calls_for("Prometheus_query_range") == []


async def test_back_fill_inside_the_window_and_gaps_outside(tmp_path: Path) -> None:
    """The bot starts on Nov 20 at 00:30: Prometheus still holds all of Nov 6–19 (15 days
    back reaches into Nov 5), so those are back-filled; Nov 1–5 are gaps."""
    async with usage_world(tmp_path) as world:
        await november(world)
        world.at(START + timedelta(days=19, hours=1, minutes=30))  # Nov 20, 00:30
        await world.collect()
        figures = month_figures(world.bot.services, NOV)
        assert figures.days("gap") == [f"2026-11-0{d}" for d in range(1, 6)]
        assert figures.days("done") == [f"2026-11-{d:02d}" for d in range(6, 20)]
        assert figures.running_hours["shared-cpu-1x 256 MB"] == pytest.approx(2 * 24 * 14)
        outcome, conversation = await world.bot.run("vic", "usage")
        assert outcome.status == "ok"
        assert "No data: Nov 1–5" in conversation.all_text(), conversation.all_text()


async def test_a_day_of_prometheus_outage_is_estimated_then_sampled(tmp_path: Path) -> None:
    """Must show: the collector retries, the report says which days are estimated, nothing
    crashes; once Prometheus is back (inside its window) the day is sampled for real."""
    async with usage_world(tmp_path) as world:
        await november(world)
        for day in range(1, 3):
            world.at(START + timedelta(hours=1, days=day, minutes=10))
            await world.collect()
        async with httpx.AsyncClient(base_url=world.base_url) as http:
            for operation in ("Prometheus_query_range", "Prometheus_query"):
                r = await http.post("/__sim/faults", json={"operation": operation, "status": 503})
                assert r.status_code == 201, r.text
        world.at(START + timedelta(hours=1, days=3, minutes=10))  # Nov 3 ended
        world.sim.clear_calls()
        result = await world.collect()
        assert result.estimated == ["2026-11-03"]
        assert len(world.sim.calls_for("Prometheus_query_range")) > 1  # the client retried
        outcome, conversation = await world.bot.run("vic", "usage")
        assert outcome.status == "ok", conversation.all_text()
        text = conversation.all_text()
        assert "Estimated (Prometheus did not answer): Nov 3" in text, text
        figures = month_figures(world.bot.services, NOV)
        # estimated: machines as listed now (started all day), outbound as the days before
        assert figures.running_hours["shared-cpu-1x 256 MB"] == pytest.approx(2 * 24 * 3)
        assert figures.outbound_gb["na_eu"] == pytest.approx(3 * 20_000 * DAY_S / 1e9, rel=1e-6)

        async with httpx.AsyncClient(base_url=world.base_url) as http:
            await http.delete("/__sim/faults")
        world.at(world.clock.now + collector.RETRY_EVERY)
        result = await world.collect()
        assert result.done == ["2026-11-03"]
        with session_scope(world.bot.engine) as session:
            row = session.get(UsageDay, "2026-11-03")
            assert row is not None and row.status == "done" and row.attempts == 2
        _, conversation = await world.bot.run("vic", "usage")
        assert "Prometheus did not answer" not in conversation.all_text()


def test_candidate_days_start_at_the_month_the_window_starts_in() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 11, 20, 0, 30, tzinfo=UTC)
    days = collector.candidate_days(now)
    assert days[0] == date(2026, 11, 1) and days[-1] == date(2026, 11, 19)
    assert not collector.in_window(date(2026, 11, 5), now)  # Prometheus lost its first 30 min
    assert collector.in_window(date(2026, 11, 6), now)
