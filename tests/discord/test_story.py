"""The whole story through `flybot run` as a process, with a real discord.py client inside it
against the fake Discord: `/fly deploy shop prod` → deferred → the approval card replaces the
"thinking…" response and a thread starts from it → another person clicks Approve → progress
in that thread → the card edited in place to succeeded, its buttons gone. Each step is read
from the calls the fake recorded; the result from the Fly simulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.discord.tree import tree
from commands import build_registry
from tests.adapters.limits_check import check_discord
from tests.discord.harness import BOB, CAROL, VIC, discord_world
from tests.fakes.discord_api import (
    CHANNEL,
    EPHEMERAL,
    PRIVILEGED_INTENTS,
    FakeDiscord,
    Message,
    sent,
)
from tests.flyharness import NEW

pytestmark = pytest.mark.timeout(120)

MESSAGE_ROUTES = {
    ("POST", "/channels/{id}/messages"),
    ("PATCH", "/channels/{id}/messages/{id}"),
    ("POST", "/webhooks/{app}/{token}"),
    ("PATCH", "/webhooks/{app}/{token}/messages/@original"),
}


def card_of(discord: FakeDiscord) -> Message:
    return next(m for m in discord.in_channel(CHANNEL) if m.buttons)


def check_every_call(discord: FakeDiscord) -> None:
    """Every message sent is within Discord's limits, and Discord accepted every call (but
    the acknowledgement of an instance that lost the race for an interaction)."""
    for call in discord.calls:
        if (call.method, call.route) in MESSAGE_ROUTES:
            check_discord(sent(call.body))
        if call.route.endswith("/callback") and call.body["type"] in (4, 7):
            check_discord(sent(call.body["data"]))
        lost_race = call.route.endswith("/callback") and (call.answer or {}).get("code") == 40060
        assert call.status < 300 or lost_race, (call.method, call.path, call.status, call.answer)


async def test_deploy_approve_progress_succeeded_buttons_gone(tmp_path: Path) -> None:
    async with discord_world(tmp_path) as w:
        w.grant(BOB, "deployer")
        w.grant(CAROL, "approver")
        bot = await w.start()
        d = w.discord
        [identify] = d.identifies
        assert int(identify["intents"]) & PRIVILEGED_INTENTS == 0
        [put] = d.calls_to("PUT", "/applications/{id}/guilds/{id}/commands")
        assert put.body == tree(build_registry())  # the generated /fly, to DISCORD_GUILD_ID
        command = await d.slash(BOB, "deploy", project="shop", stage="prod", image=NEW)
        await d.wait_for(lambda: any(m.buttons for m in d.in_channel(CHANNEL)) and d.threads)
        assert command.answers == [{"type": 5}]  # deferred, public "thinking…"
        card = card_of(d)
        assert card.interaction_id == command.id  # the card is the command's response
        assert "#1 deploy shop/prod requested by bob" in card.plain()
        assert [b["label"] for b in card.buttons] == ["Approve", "Reject"]
        assert [b["custom_id"] for b in card.buttons] == ["approval.approve:1", "approval.reject:1"]
        assert card.id in d.threads  # the thread starts from the card

        click = await d.click(card, "approval.approve:1", CAROL)

        def finished() -> bool:
            return "succeeded" in d.messages[card.id].all_text()

        await d.wait_for(finished, timeout=60)
        assert click.answers == [{"type": 6}]  # a deferred update of the card
        parent = d.messages[card.id]
        assert parent.buttons == []  # resolved: no buttons left
        assert "shop/prod v1 by bob, approved by carol" in parent.plain()
        thread = "\n".join(m.plain() for m in d.in_channel(card.id))
        assert "carol approved (1/1): running it" in thread
        assert "web" in thread  # the engine's steps, in the thread
        # the card's edits are the bot's own message edits, never the interaction webhook
        edits = d.calls_to("PATCH", "/channels/{id}/messages/{id}")
        assert edits and {c.path.split("/")[-1] for c in edits} == {card.id}
        hooks = d.calls_to("PATCH", "/webhooks/{app}/{token}/messages/@original")
        assert len(hooks) == 1  # only the card itself replaced "thinking…"
        posts = d.calls_to("POST", "/channels/{id}/messages")
        assert posts and {c.path.split("/")[2] for c in posts} == {card.id}
        assert all(c.auth == "Bot " + d_token() for c in posts + edits)
        check_every_call(d)
        images = {m["config"]["image"].split("@")[0] for m in w.sim.machines("shop-prod")}
        assert images == {NEW}
        assert await bot.stop() == 0


def d_token() -> str:
    from tests.fakes.discord_api import BOT_TOKEN

    return BOT_TOKEN


async def test_the_requester_and_a_viewer_are_refused_privately(tmp_path: Path) -> None:
    async with discord_world(tmp_path) as w:
        w.grant(BOB, "deployer")
        w.grant(VIC, "viewer")
        bot = await w.start()
        d = w.discord
        await d.slash(BOB, "deploy", project="shop", stage="prod", image=NEW)
        await d.wait_for(lambda: any(m.buttons for m in d.in_channel(CHANNEL)))
        card = card_of(d)
        await d.click(card, "approval.approve:1", BOB)
        await d.wait_for(lambda: d.private_to(BOB))
        assert "You asked for #1; someone else has to approve it." in d.private_to(BOB)[0]
        await d.click(card, "approval.approve:1", VIC)
        await d.wait_for(lambda: d.private_to(VIC))
        assert "Not allowed to approve #1" in d.private_to(VIC)[0]
        followups = d.calls_to("POST", "/webhooks/{app}/{token}")
        assert [c.body["flags"] & EPHEMERAL for c in followups] == [EPHEMERAL, EPHEMERAL]
        assert card_of(d).buttons  # still pending, still live
        check_every_call(d)
        assert await bot.stop() == 0


async def test_approve_typed_in_the_cards_thread(tmp_path: Path) -> None:
    """`/fly approve` typed inside the card's thread (no message content needed: it is a slash
    command): its answer stays in that thread; the card is edited in its channel."""
    async with discord_world(tmp_path) as w:
        w.grant(BOB, "deployer")
        w.grant(CAROL, "approver")
        bot = await w.start()
        d = w.discord
        await d.slash(BOB, "deploy", project="shop", stage="prod", image=NEW)
        await d.wait_for(lambda: any(m.buttons for m in d.in_channel(CHANNEL)) and d.threads)
        card = card_of(d)
        typed = await d.slash(CAROL, "approve", id=1, channel=card.id)
        await d.wait_for(lambda: "succeeded" in d.messages[card.id].all_text(), timeout=60)
        assert typed.answers == [{"type": 5}]
        assert d.messages[card.id].channel_id == CHANNEL and not d.messages[card.id].buttons
        thread = d.in_channel(card.id)
        assert "carol approved (1/1): running it" in "\n".join(m.plain() for m in thread)
        assert not [m for m in d.in_channel(CHANNEL) if m.id != card.id]  # all in the thread
        check_every_call(d)
        assert await bot.stop() == 0
