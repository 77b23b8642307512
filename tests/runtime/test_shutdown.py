"""`flybot run` as a real process, stopped the way `fly deploy` stops a machine (SIGTERM,
then SIGKILL after kill_timeout), in the middle of a deploy against the Fly simulator: no new
command is taken, the deploy stops at its next safe point (or is cancelled when the budget
runs out), is marked interrupted with every lease released and its thread told, and the
process exits 0 well within kill_timeout. A second signal exits at once."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp
import pytest
from sqlmodel import select

from bot.deploy.flytoml import load_stage_config
from bot.store import make_engine
from bot.store.engine import session_scope
from bot.store.models import Release
from tests.fakes.slack_api import slash_command
from tests.flyharness import NEW, fly_client
from tests.slack.harness import BOB, CHANNEL, FlybotProcess, SlackWorld, slack_world
from tests.support import REPO

pytestmark = pytest.mark.timeout(120)

APP = "shop-dev"
KILL_TIMEOUT = load_stage_config(REPO / "fly.toml").kill_timeout


def releases(w: SlackWorld) -> list[Release]:
    engine = make_engine(w.database_url)
    try:
        with session_scope(engine) as session:
            return list(session.exec(select(Release)))
    finally:
        engine.dispose()


async def start_deploy(w: SlackWorld, update_latency: float, **env: str) -> FlybotProcess:
    w.grant(BOB, "deployer")
    bot = await w.start(**env)
    w.sim.inject("Machines_update", latency=update_latency)
    async with bot.sender() as send:
        assert await send.command(slash_command(w.slack, f"deploy shop dev {NEW}", BOB, "bob"))
    # The simulator logs a call once answered, so an update held for 30 s is not seen yet:
    # wait for the leases (taken just before the first update), then for the update to go.
    deadline = time.monotonic() + 30
    while not any(r.state == "running" and r.leases_json != "{}" for r in releases(w)):
        assert time.monotonic() < deadline, bot.log
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    return bot


async def leases_left(w: SlackWorld) -> list[str]:
    fly = fly_client(w.fly_url)
    try:
        machines = await fly.list_machines(APP)
        return [m.id for m in machines if await fly.get_lease(APP, m.id) is not None]
    finally:
        await fly.aclose()


async def post_status(bot: FlybotProcess, w: SlackWorld) -> int:
    try:
        async with bot.sender() as send:
            status, _ = await send.command(slash_command(w.slack, "status shop dev", BOB, "bob"))
            return status
    except aiohttp.ClientError:
        return 0  # already gone: not taken either


@pytest.mark.parametrize(
    ("case", "update_latency", "budget"),
    [
        ("the deploy reaches a safe point", 1.0, "20"),
        ("the budget runs out mid-step", 30.0, "1"),
    ],
)
async def test_sigterm_during_a_deploy_interrupts_it_cleanly_and_exits_0(
    tmp_path: Path, case: str, update_latency: float, budget: str
) -> None:
    assert KILL_TIMEOUT is not None
    async with slack_world(tmp_path) as w:
        bot = await start_deploy(w, update_latency, FLYBOT_SHUTDOWN_TIMEOUT=budget)
        assert bot.process is not None
        cards_before = [m.ts for m in w.slack.channel(CHANNEL) if m.thread_ts is None]
        started = time.monotonic()
        bot.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        assert await bot.health() in (503, 0)  # Fly's proxy stops sending traffic here
        assert await post_status(bot, w) in (503, 0)  # a new command is not taken
        code = await asyncio.wait_for(bot.process.wait(), KILL_TIMEOUT.total_seconds())
        elapsed = time.monotonic() - started
        assert code == 0, bot.log
        assert elapsed < KILL_TIMEOUT.total_seconds() - 5, elapsed
        [release] = releases(w)
        assert release.state == "interrupted", (release.state, release.error)
        assert release.leases_json == "{}"
        assert await leases_left(w) == []
        thread = w.slack.thread(CHANNEL, release.message_id)
        told = " ".join(m.all_text() for m in thread)
        assert "shutting down" in told and "interrupted" in told, told
        parent = w.slack.message(CHANNEL, release.message_id)
        assert "interrupted" in parent.all_text()
        # The status command sent while stopping was never run: its answer would be a new
        # message in the channel; the deploy only edits its card and replies in its thread.
        cards = [m.ts for m in w.slack.channel(CHANNEL) if m.thread_ts is None]
        assert cards == cards_before == [release.message_id]
    assert "Traceback" not in bot.log, bot.log


async def test_a_second_signal_exits_at_once(tmp_path: Path) -> None:
    async with slack_world(tmp_path) as w:
        bot = await start_deploy(w, 30.0, FLYBOT_SHUTDOWN_TIMEOUT="25")
        assert bot.process is not None
        bot.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        assert bot.process.returncode is None  # still draining: the update takes 30 s
        started = time.monotonic()
        bot.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(bot.process.wait(), 5)
        assert time.monotonic() - started < 2
        assert code == 128 + signal.SIGTERM
