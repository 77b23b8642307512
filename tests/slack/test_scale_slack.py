"""`/fly scale count` from Slack through `flybot run` as a process: acked at once, a thread
whose parent is edited to succeeded, the steps as replies, the machines in the simulator."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.fakes.slack_api import slash_command
from tests.slack.harness import BOB, CHANNEL, slack_world
from tests.slack.test_story import check_every_call

pytestmark = pytest.mark.timeout(120)


async def test_scale_count_from_slack_runs_in_a_thread(tmp_path: Path) -> None:
    async with slack_world(tmp_path) as w:
        w.grant(BOB, "deployer")
        bot = await w.start()
        slack = w.slack
        async with bot.sender() as send:
            status, body = await send.command(
                slash_command(slack, "scale count shop staging web=4", BOB, "bob")
            )
            assert (status, body) == (200, "")

            def finished() -> bool:
                return any(
                    "succeeded" in m.all_text() and "scale" in m.all_text()
                    for m in slack.channel(CHANNEL)
                    if m.thread_ts is None
                )

            await slack.wait_for(finished, timeout=60)
        [parent] = [m for m in slack.channel(CHANNEL) if m.thread_ts is None]
        assert "shop/staging scale v1 by bob" in parent.all_text()
        thread = "\n".join(m.all_text() for m in slack.thread(CHANNEL, parent.ts))
        assert thread.count("created for [web]") == 2
        check_every_call(slack)
        web = [
            m
            for m in w.sim.machines("shop-staging")
            if m["config"]["metadata"].get("fly_process_group") == "web"
            and m["state"] not in ("destroying", "destroyed")
        ]
        assert Counter(m["region"] for m in web) == {"nrt": 2, "sin": 2}
        assert await bot.stop() == 0
