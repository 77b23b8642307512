"""Two `flybot run` processes on one PostgreSQL database, as fly.postgres.toml runs them: a
deploy whose process was killed is closed by the scheduler's sweep of exactly one of them
(its thread told once, its leases freed), and a Slack command delivered to one and its retry
to the other is answered once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bot.store.models import Release
from tests.fakes.slack_api import Message, slash_command
from tests.flyharness import NEW, fly_client
from tests.slack.harness import BOB, CHANNEL, VIC, SlackWorld, slack_world

pytestmark = pytest.mark.timeout(150)

RESTARTED = "flybot restarted in the middle of this deploy"


async def test_two_instances_close_a_dead_deploy_once_and_answer_a_retried_command_once(
    tmp_path: Path, postgres_url: str
) -> None:
    async with slack_world(tmp_path, database_url=postgres_url) as w:
        w.grant(BOB, "deployer")
        w.grant(VIC, "viewer")
        slack = w.slack
        # A third process starts a deploy and dies in the middle of it (SIGKILL: no goodbye).
        doomed = await w.start()
        w.sim.inject("Machines_update", latency=30.0)
        async with doomed.sender() as send:
            await send.command(slash_command(slack, f"deploy shop dev {NEW}", BOB, "bob"))
        deadline = time.monotonic() + 30
        while not any(r.state == "running" and r.leases_json != "{}" for r in w.rows(Release)):
            assert time.monotonic() < deadline, doomed.log
            await asyncio.sleep(0.05)
        assert doomed.process is not None
        doomed.process.kill()
        await doomed.process.wait()
        [release] = w.rows(Release)
        assert release.state == "running"

        first, second = await w.start(), await w.start()
        # Both sweep every second (FLYBOT_DEPLOY_SWEEP_EVERY); the dead one's heartbeat is
        # judged stale after 3 s: one of them takes it over.
        deadline = time.monotonic() + 30
        while w.rows(Release)[0].state == "running":
            assert time.monotonic() < deadline, first.log + second.log
            await asyncio.sleep(0.1)
        await asyncio.sleep(3)  # several more sweeps on each: none may tell the thread again

        form = slash_command(slack, "status shop dev", VIC, "vic")
        async with first.sender() as one, second.sender() as two:
            assert await one.command(form) == (200, "")
            assert await two.command(form, retry=1) == (200, "")  # Slack's retry, elsewhere
        await slack.wait_for(lambda: any("shop/dev" in m.all_text() for m in status_answers(w)))
        await asyncio.sleep(1.5)  # time for a second answer to show up, if there were one
        assert await first.stop() == 0 and await second.stop() == 0
        fly = fly_client(w.fly_url)
        try:
            for machine in await fly.list_machines("shop-dev"):
                assert await fly.get_lease("shop-dev", machine.id) is None
        finally:
            await fly.aclose()

    [closed] = w.rows(Release)
    assert closed.state == "interrupted" and closed.leases_json == "{}"
    thread = slack.thread(CHANNEL, closed.message_id)
    told = [m for m in thread if RESTARTED in m.all_text()]
    assert len(told) == 1, [m.all_text() for m in thread]
    assert len(status_answers(w)) == 1


def status_answers(w: SlackWorld) -> list[Message]:
    """Top-level messages other than the deploy's card: the status command's answer."""
    cards = {r.message_id for r in w.rows(Release)}
    return [m for m in w.slack.channel(CHANNEL) if m.thread_ts is None and m.ts not in cards]
