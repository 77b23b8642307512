"""Approving by a reply in the card's thread over HTTP, addressed to the bot: Slack sends
`@flybot approve` as `<@UFLYBOT> approve` in a message event, and it approves; a reply that
mentions someone else first (`@dave approve?`) asks dave, and approves nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlmodel import select

from bot.store import make_engine
from bot.store.engine import session_scope
from bot.store.models import ApprovalVote
from tests.fakes.slack_api import BOT_USER, event_callback, slash_command, thread_reply
from tests.flyharness import NEW
from tests.slack.harness import BOB, CAROL, CHANNEL, slack_world
from tests.slack.test_story import card_of, check_every_call

pytestmark = pytest.mark.timeout(120)


def votes(database_url: str) -> int:
    engine = make_engine(database_url)
    try:
        with session_scope(engine) as session:
            return len(session.exec(select(ApprovalVote)).all())
    finally:
        engine.dispose()


async def test_a_thread_reply_addressed_to_the_bot_approves_and_one_to_someone_else_does_not(
    tmp_path: Path,
) -> None:
    async with slack_world(tmp_path) as w:
        w.grant(BOB, "deployer")
        w.grant(CAROL, "approver")
        bot = await w.start()
        slack = w.slack
        async with bot.sender() as send:
            await send.command(slash_command(slack, f"deploy shop prod {NEW}", BOB, "bob"))
            await slack.wait_for(lambda: any(m.buttons for m in slack.channel(CHANNEL)))
            card = card_of(slack)
            aside = thread_reply(CHANNEL, card.ts, CAROL, "<@UDAVE> approve? it looks fine")
            assert (await send.event(event_callback(aside)))[0] == 200
            await asyncio.sleep(1.0)  # the time a wrongly accepted reply needs to vote
            assert votes(w.database_url) == 0
            assert "running it" not in slack.message(CHANNEL, card.ts).all_text()
            addressed = thread_reply(CHANNEL, card.ts, CAROL, f"<@{BOT_USER}>  approve")
            assert (await send.event(event_callback(addressed)))[0] == 200
            await slack.wait_for(
                lambda: "succeeded" in slack.message(CHANNEL, card.ts).all_text(), timeout=60
            )
        assert "approved by carol" in slack.message(CHANNEL, card.ts).all_text()
        assert votes(w.database_url) == 1
        assert slack.calls_to("chat.postEphemeral") == []
        check_every_call(slack)
        assert await bot.stop() == 0
