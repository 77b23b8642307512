"""`/fly logs` through `flybot run` (a real bolt app) and the fake Slack Web API: 500 long log
lines in the simulator become one chat.postMessage within Slack's limits, cut from the top
with a note, the newest line last."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.adapters.limits_check import check_slack
from tests.fakes.slack_api import slash_command
from tests.slack.harness import ALICE, slack_world
from tests.slack.test_story import check_every_call

pytestmark = pytest.mark.timeout(150)


async def test_500_lines_are_one_message_within_slacks_limits(tmp_path: Path) -> None:
    async with slack_world(tmp_path) as w:
        [machine, *_] = sorted(m["id"] for m in w.sim.machines("shop-staging"))
        w.sim.emit_logs("shop-staging", machine, [f"line {i:03d} " + "y" * 70 for i in range(500)])
        bot = await w.start()
        slack = w.slack
        async with bot.sender() as send:
            await send.command(
                slash_command(slack, f"logs shop staging --machine {machine} --lines 500", ALICE)
            )
            await slack.wait_for(
                lambda: any(
                    c.params["text"].startswith("Logs of")
                    for c in slack.calls_to("chat.postMessage")
                )
            )
        [post] = [
            c for c in slack.calls_to("chat.postMessage") if c.params["text"].startswith("Logs of")
        ]
        check_slack(post.payload)
        assert post.answer["ok"] is True
        blocks = str(post.params["blocks"])
        assert "earlier lines cut to fit]" in blocks
        assert "line 499 " in blocks and "line 000 " not in blocks
        assert blocks.index("line 498 ") < blocks.index("line 499 ")
        check_every_call(slack)
        assert await bot.stop() == 0
