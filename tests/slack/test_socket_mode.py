"""The same story over Socket Mode (`SLACK_APP_TOKEN` set: no public URL), against the fake's
websocket: envelopes in, acks out; and the approval typed as a reply in the card's thread."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.slack_api import (
    BOT_ID,
    BOT_USER,
    event_callback,
    slash_command,
    thread_reply,
)
from tests.flyharness import NEW
from tests.slack.harness import BOB, CAROL, CHANNEL, slack_world
from tests.slack.test_story import card_of, check_every_call

pytestmark = pytest.mark.timeout(120)


async def test_the_story_over_socket_mode_approved_by_a_typed_thread_reply(
    tmp_path: Path,
) -> None:
    async with slack_world(tmp_path) as w:
        w.grant(BOB, "deployer")
        w.grant(CAROL, "approver")
        bot = await w.start(socket_mode=True)
        slack = w.slack
        assert slack.socket_connected
        assert [c.token for c in slack.calls_to("apps.connections.open")] == ["xapp-fake-app-token"]
        command = slash_command(slack, f"deploy shop prod {NEW}", BOB, "bob")
        ack = await slack.deliver("slash_commands", command)
        assert set(ack) == {"envelope_id"}  # acknowledged, nothing to show
        again = await slack.deliver("slash_commands", command, retry_attempt=1)
        assert set(again) == {"envelope_id"}  # a redelivery is acknowledged too …
        await slack.wait_for(lambda: any(m.buttons for m in slack.channel(CHANNEL)))
        card = card_of(slack)
        # … and runs nothing twice
        chatter = event_callback(thread_reply(CHANNEL, card.ts, BOB, "looks good to me"))
        await slack.deliver("events_api", chatter)
        own = thread_reply(CHANNEL, card.ts, BOT_USER, "approve")  # the bot's own message
        await slack.deliver("events_api", event_callback({**own, "bot_id": BOT_ID}))
        typed = event_callback(thread_reply(CHANNEL, card.ts, CAROL, "approve"))
        await slack.deliver("events_api", typed)
        await slack.deliver("events_api", typed, retry_attempt=1)
        await slack.wait_for(
            lambda: "succeeded" in slack.message(CHANNEL, card.ts).all_text(), timeout=60
        )
        parent = slack.message(CHANNEL, card.ts)
        assert parent.buttons == []
        assert "approved by carol" in parent.all_text()
        thread = "\n".join(m.all_text() for m in slack.thread(CHANNEL, card.ts))
        assert thread.count("carol approved (1/1): running it") == 1
        assert "looks good to me" not in thread  # plain chat in the thread is left alone
        assert len([m for m in slack.channel(CHANNEL) if m.thread_ts is None]) == 1
        assert slack.calls_to("users.info")  # a typed reply names its author by lookup
        assert slack.calls_to("chat.postEphemeral") == []  # nobody was refused: the bot's
        # own "approve" never reached the pipeline
        check_every_call(slack)
        assert await bot.stop() == 0
        assert not slack.socket_connected
