"""The scheduler speaks on Discord through the bot's own messages, never an interaction's
webhook (whose token dies after 15 minutes): an approval request nobody answers expires at
the sweep, its card edited in place (buttons gone) and its thread told."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.discord.harness import BOB, discord_world
from tests.discord.test_story import card_of, check_every_call
from tests.fakes.discord_api import CHANNEL
from tests.flyharness import NEW

pytestmark = pytest.mark.timeout(120)


async def test_an_unanswered_request_expires_on_its_card_and_in_its_thread(
    tmp_path: Path,
) -> None:
    async with discord_world(tmp_path) as w:
        config = w.slack_side.config
        config.write_text(
            config.read_text().replace('approval_expires = "30m"', 'approval_expires = "1s"')
        )
        w.grant(BOB, "deployer")
        bot = await w.start()
        d = w.discord
        await d.slash(BOB, "deploy", project="shop", stage="prod", image=NEW)
        await d.wait_for(lambda: any(m.buttons for m in d.in_channel(CHANNEL)) and d.threads)
        card = card_of(d)
        hooks_before = len([c for c in d.calls if c.path.startswith("/webhooks/")])
        # the sweep runs every 30 s
        await d.wait_for(lambda: "expired" in d.messages[card.id].plain(), timeout=60)
        await d.wait_for(lambda: d.in_channel(card.id))
        assert d.messages[card.id].buttons == []
        assert "This request expired" in d.in_channel(card.id)[-1].plain()
        assert len([c for c in d.calls if c.path.startswith("/webhooks/")]) == hooks_before
        check_every_call(d)
        assert await bot.stop() == 0
