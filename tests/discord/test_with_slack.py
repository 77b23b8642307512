"""Slack and Discord in one `flybot run`: a person linked on both (`/fly link`, started on
Discord, claimed on Slack, confirmed on Discord) is one person — who cannot approve, from
Slack, the deploy they asked for on Discord — and a deploy requested on Discord and approved
on Slack reports in the Discord thread, its card edited there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.discord.harness import BOB, discord_world
from tests.discord.test_story import card_of, check_every_call
from tests.fakes.discord_api import CHANNEL
from tests.fakes.slack_api import slash_command
from tests.flyharness import NEW
from tests.slack.harness import BOB as SLACK_BOB
from tests.slack.harness import CAROL as SLACK_CAROL
from tests.slack.test_story import check_every_call as check_every_slack_call

pytestmark = pytest.mark.timeout(120)
CODE = re.compile(r"\b([A-Z2-9]{4}-[A-Z2-9]{4})\b")


async def test_linked_people_are_one_and_a_slack_approval_reports_on_discord(
    tmp_path: Path,
) -> None:
    async with discord_world(tmp_path) as w:
        w.grant(BOB, "deployer")
        w.slack_side.grant(SLACK_CAROL, "approver")
        bot = await w.start(slack=True)
        d, slack = w.discord, w.slack_side.slack
        assert (await bot.health()) == 200  # both adapters connected

        await d.slash(BOB, "link", "link")
        await d.wait_for(lambda: d.private_to(BOB))
        [started] = d.private_to(BOB)
        code = CODE.search(started.replace("\\", ""))
        assert code is not None, started
        async with bot.sender() as send:
            await send.command(slash_command(slack, f"link {code.group(1)}", SLACK_BOB, "bob"))
            await slack.wait_for(lambda: slack.private_to(SLACK_BOB))
            assert "Almost linked" in slack.private_to(SLACK_BOB)[0]
            await d.slash(BOB, "link", "confirm", code=code.group(1))
            await d.wait_for(lambda: len(d.private_to(BOB)) == 2)
            assert "Linked:" in d.private_to(BOB)[1]

            await d.slash(BOB, "deploy", project="shop", stage="prod", image=NEW)
            await d.wait_for(lambda: any(m.buttons for m in d.in_channel(CHANNEL)) and d.threads)
            card = card_of(d)
            fields = {f["name"]: f["value"] for e in card.embeds for f in e.get("fields", [])}
            assert "bob" not in fields["Can approve"]  # nor as his Slack self

            # bob on Slack is bob: his own request
            await send.command(slash_command(slack, "approve 1", SLACK_BOB, "bob"))
            await slack.wait_for(lambda: len(slack.private_to(SLACK_BOB)) == 2)
            assert "someone else has to approve it" in slack.private_to(SLACK_BOB)[1]
            assert d.messages[card.id].buttons  # still pending

            await send.command(slash_command(slack, "approve 1", SLACK_CAROL, "carol"))
            await d.wait_for(lambda: "succeeded" in d.messages[card.id].all_text(), timeout=60)
        thread = "\n".join(m.plain() for m in d.in_channel(card.id))
        assert "carol approved (1/1): running it" in thread
        assert "v1 succeeded" in thread
        assert d.messages[card.id].buttons == []
        # nothing of the deploy went to Slack's channels: the thread lives on Discord
        assert not any("succeeded" in m.all_text() for m in slack.channel("C0DEPLOY"))
        check_every_call(d)
        check_every_slack_call(slack)
        assert await bot.stop() == 0
