"""Scheduled reports and threshold alerts, posted through a real SlackOutbox to the fake
Slack on 127.0.0.1 by two bot processes at once (tests/usage/worker.py), on SQLite and on
PostgreSQL: each report once, each threshold once a month, not again after a restart."""

from __future__ import annotations

import asyncio
import io
import json
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from PIL import Image
from sqlmodel import select

from bot.store.engine import session_scope
from bot.store.models import AuditEntry, UsageAlert, UsageSubscription
from commands.usage import check_alerts, send_due_reports
from tests.fakes.slack_api import TEAM, FakeSlack, running_fake_slack
from tests.support import REPO
from tests.usage.conftest import ORG, START, UsageWorld, grant, november, usage_world


async def workers(
    world: UsageWorld, slack: FakeSlack, job: str, now: datetime, count: int = 2
) -> list[dict[str, Any]]:
    """`count` bot processes run `job` at the same moment (each imports and migrates first,
    then waits at a barrier for the others)."""
    barrier = Path(tempfile.mkdtemp(dir=world.tmp_path, prefix="barrier-"))
    args = {
        "now": now.isoformat(),
        "database_url": world.database_url,
        "config": str(world.config),
        "org": ORG,
        "fly_url": world.base_url,
        "slack_url": slack.api_url,
        "team": TEAM,
        "job": job,
        "barrier": str(barrier),
        "processes": count,
    }
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.usage.worker",
            json.dumps(args),
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(count)
    ]
    results = []
    for proc in procs:
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err.decode()[-3000:]
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    return results


def posts(slack: FakeSlack, channel: str = "c") -> list[str]:
    return [m.all_text() for m in slack.channel(channel)]


async def subscribe(world: UsageWorld, line: str = "usage subscribe daily") -> int:
    """bob subscribes on Slack, in channel `c`."""
    grant(world.bot, "bob", "deployer", platform="slack", workspace=TEAM)
    outcome, conversation = await world.bot.run("bob", line, platform="slack", workspace=TEAM)
    assert outcome.status == "ok", conversation.all_text()
    with session_scope(world.bot.engine) as session:
        return max(r.id or 0 for r in session.exec(select(UsageSubscription)))


async def days_collected(world: UsageWorld, through: int) -> None:
    for day in range(1, through + 1):
        world.at(START + timedelta(hours=1, days=day, minutes=10))
        await world.collect()


async def test_two_processes_post_one_scheduled_report_with_its_chart(
    tmp_path: Path, database_url: str
) -> None:
    """Must show: two processes on one database and one scheduled report: exactly one
    message, its chart a valid PNG of sensible size, uploaded beside it on Slack."""
    async with usage_world(tmp_path, database_url) as world, running_fake_slack() as slack:
        await november(world)
        await days_collected(world, 4)  # Nov 5, 00:10
        await subscribe(world)  # daily: next at Nov 5, 09:00
        due = datetime.fromisoformat("2026-11-05T09:00:30+00:00")
        world.at(due)
        results = await workers(world, slack, "reports", due)
        assert sorted(r["sent"] for r in results) == [0, 1]
        [report] = posts(slack)
        assert "Usage of the demo org, November 2026" in report, report
        assert "Days sampled: 4 of 4 so far" in report
        [upload] = slack.files.values()
        assert upload["channel"] == "c" and upload["filename"] == "usage-org-2026-11.png"
        image = Image.open(io.BytesIO(upload["data"]))
        assert image.format == "PNG"
        assert 600 <= image.width <= 1600 and 250 <= image.height <= 900, image.size
        image.verify()
        assert 10_000 < len(upload["data"]) < 500_000
        completes = slack.calls_to("files.completeUploadExternal")
        assert len(completes) == 1 and completes[0].params["channel_id"] == "c"

        # restarted (two new processes), a minute later: that report is sent already
        results = await workers(world, slack, "reports", due + timedelta(minutes=1))
        assert [r["sent"] for r in results] == [0, 0]
        assert len(posts(slack)) == 1 and len(slack.files) == 1
        with session_scope(world.bot.engine) as session:
            [row] = session.exec(select(UsageSubscription))
            assert row.next_at == datetime.fromisoformat("2026-11-06T09:00:00+00:00")


async def test_two_instances_racing_post_each_report_once(
    tmp_path: Path, database_url: str
) -> None:
    """Two instances in one process, their jobs interleaved on one event loop: both read the
    due subscription before either claims it; the compare-and-set on `next_at` lets one
    post."""
    async with usage_world(tmp_path, database_url) as world:
        await november(world)
        await days_collected(world, 2)
        for line in ("usage subscribe daily", "usage subscribe weekly"):
            outcome, _ = await world.bot.run("bob", line)
            assert outcome.status == "ok"
        other = world.instance()
        world.at(datetime.fromisoformat("2026-11-03T09:00:30+00:00"))  # only daily is due
        sent = await asyncio.gather(
            send_due_reports(world.bot.services), send_due_reports(other.services)
        )
        assert sorted(sent) == [0, 1]
        reports = [r for r in world.bot.outbox().public + other.outbox().public if r.files]
        assert len(reports) == 1 and reports[0].title == "📊 Usage of the demo org, November 2026"


async def test_an_alert_fires_once_at_80_and_once_at_100(tmp_path: Path, database_url: str) -> None:
    """Must show: with 1.2 GB of Asia-Pacific outbound (0.52 GB a day here), day 2 passes 80%
    and day 3 100%: one alert each, with the forecast, from two processes at once, and
    none again after a restart."""
    toml = "[usage]\noutbound_gb = { apac = 1.2 }"
    async with (
        usage_world(tmp_path, database_url, usage_toml=toml) as world,
        running_fake_slack() as slack,
    ):
        await november(world)
        await subscribe(world, "usage subscribe monthly")
        await days_collected(world, 1)
        assert await check_alerts(world.bot.services) == 0  # 43%
        told: list[list[int]] = []
        for day in (2, 3):  # 86%, then 130%
            await days_collected(world, day)
            results = await workers(world, slack, "alerts", world.clock.now)
            told.append(sorted(r["sent"] for r in results))
        assert told == [[0, 1], [0, 1]]
        first, second = posts(slack)
        assert "outbound Asia-Pacific is at 86% of its free 1.2 GB" in first, first
        assert "(80% threshold)" in first
        assert "at this rate outbound Asia-Pacific reaches 1.2 GB on the 3rd" in first
        assert "(100% threshold)" in second and "reached its 1.2 GB on the 3rd" in second

        await days_collected(world, 4)  # restarted: two new processes, a day later
        results = await workers(world, slack, "alerts", world.clock.now)
        assert [r["sent"] for r in results] == [0, 0]
        assert len(posts(slack)) == 2
        with session_scope(world.bot.engine) as session:
            sent = sorted((a.metric, a.threshold) for a in session.exec(select(UsageAlert)))
        assert sent == [("outbound_apac", 80), ("outbound_apac", 100)]


async def test_two_instances_racing_send_each_alert_once(tmp_path: Path, database_url: str) -> None:
    toml = "[usage]\noutbound_gb = { apac = 1.2 }"
    async with usage_world(tmp_path, database_url, usage_toml=toml) as world:
        await november(world)
        await world.bot.run("bob", "usage subscribe weekly")
        other = world.instance()
        await days_collected(world, 3)  # 130%: the 100% alert, the 80% one passed on the way
        sent = await asyncio.gather(check_alerts(world.bot.services), check_alerts(other.services))
        assert sorted(sent) == [0, 1]
        alerts = [
            r
            for r in world.bot.outbox().public + other.outbox().public
            if r.title == "Free allowance"
        ]
        assert len(alerts) == 1 and "(100% threshold)" in alerts[0].text, alerts


async def test_a_machine_hours_alert_suggests_scaling_a_stage_that_ran_all_month(
    tmp_path: Path,
) -> None:
    """The suggestion is a button carrying the command line; a click runs it as the person
    clicking, through the normal pipeline (`usage action <id>` → `scale count …`): refused
    for a viewer, carried out for a deployer."""
    toml = "[usage]\nmachine_hours = 100"
    async with usage_world(tmp_path, usage_toml=toml) as world:
        await november(world)
        await world.bot.run("bob", "usage subscribe weekly")
        await days_collected(world, 2)  # 2 x 24 h x 2 dev machines = 96 h: 96%
        assert await check_alerts(world.bot.services) == 1
        [alert] = world.bot.outbox().public[-1:]
        assert "machine-hours is at 96% of its free 100 h" in alert.text, alert.text
        assert "ping-go/dev has run 2 machines all month: scale dev to 0 at night?" in (
            alert.plain()
        )
        [button] = alert.buttons
        assert (button.action, button.command) == ("usage.action", f"usage action {button.value}")
        registry = world.bot.services.registry
        assert registry.click_line(button.action, button.value) == button.command
        with session_scope(world.bot.engine) as session:
            row = session.get(UsageAlert, int(button.value))
            assert row is not None and row.action_line == "scale count ping-go dev app=0"
        assert await check_alerts(world.bot.services) == 0  # once a month

        # the click, as a viewer: scale's own role is refused, nothing changes
        before = len(world.sim.machines("ping-go-dev"))
        outcome, conversation = await world.bot.run("vic", button.command)
        assert "`scale count` needs deployer on ping-go/dev" in conversation.all_text()
        with session_scope(world.bot.engine) as session:
            [denied] = session.exec(
                select(AuditEntry).where(
                    AuditEntry.user_id == "vic", AuditEntry.action == "scale count"
                )
            )
            assert denied.outcome == "denied"
        assert len(world.sim.machines("ping-go-dev")) == before == 2
        # as a deployer: the scale runs (dev is not guarded), planned and reported as usual
        outcome, conversation = await world.bot.run("bob", button.command)
        assert outcome.status == "ok", conversation.all_text()
        await world.bot.services.jobs.wait_all()
        gone = ("destroying", "destroyed")
        left = [m for m in world.sim.machines("ping-go-dev") if m["state"] not in gone]
        assert left == [], (left, conversation.all_text())


async def test_thresholds_are_configurable(tmp_path: Path) -> None:
    toml = "[usage]\noutbound_gb = { apac = 1.2 }\nthresholds = [40]"
    async with usage_world(tmp_path, usage_toml=toml) as world:
        await november(world)
        await world.bot.run("bob", "usage subscribe weekly")
        await days_collected(world, 1)  # 43%
        assert await check_alerts(world.bot.services) == 1
        [alert] = [r for r in world.bot.outbox().public if r.title == "Free allowance"]
        assert "is at 43% of its free 1.2 GB this month (40% threshold)" in alert.text, alert
        await days_collected(world, 3)  # 130%: no threshold above 40 to cross
        assert await check_alerts(world.bot.services) == 0
