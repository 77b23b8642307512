"""The whole story through `flybot run` as a process: `/fly deploy shop prod` → ack →
approval card in a new thread → a second person clicks Approve → progress in the same
thread → the parent edited to succeeded, its buttons gone — each step read from the calls
the fake Slack recorded, and the result read from the Fly simulator."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.adapters.limits_check import check_slack
from tests.fakes.slack_api import FakeSlack, Message, button_click, slash_command
from tests.flyharness import NEW
from tests.slack.harness import BOB, CAROL, CHANNEL, VIC, slack_world

pytestmark = pytest.mark.timeout(120)


def card_of(slack: FakeSlack) -> Message:
    return next(m for m in slack.channel(CHANNEL) if m.thread_ts is None and m.buttons)


def check_every_call(slack: FakeSlack) -> None:
    for call in slack.calls:
        if call.method in ("chat.postMessage", "chat.update", "chat.postEphemeral", "response_url"):
            check_slack(call.payload)
        assert call.answer.get("ok", True), (call.method, call.answer)


async def test_deploy_approve_progress_succeeded_buttons_gone(tmp_path: Path) -> None:
    async with slack_world(tmp_path) as w:
        w.grant(BOB, "deployer")
        w.grant(CAROL, "approver")
        bot = await w.start()
        slack = w.slack
        async with bot.sender() as send:
            status, body = await send.command(
                slash_command(slack, f"deploy shop prod {NEW}", BOB, "bob")
            )
            assert (status, body) == (200, "")  # acknowledged, nothing shown yet
            await slack.wait_for(lambda: any(m.buttons for m in slack.channel(CHANNEL)))
            card = card_of(slack)
            assert "#1 deploy shop/prod requested by bob" in card.all_text()
            assert [b["text"]["text"] for b in card.buttons] == ["Approve", "Reject"]
            assert [b["value"] for b in card.buttons] == ["1", "1"]

            status, _ = await send.interactive(
                button_click(slack, card, "approval.approve", CAROL, "carol")
            )
            assert status == 200

            def finished() -> bool:
                parent = slack.message(CHANNEL, card.ts)
                return "succeeded" in parent.all_text()

            await slack.wait_for(finished, timeout=60)

        parent = slack.message(CHANNEL, card.ts)
        assert parent.buttons == []  # resolved: no buttons left
        assert "shop/prod v1 by bob, approved by carol" in parent.all_text()
        # the parent: machines done of all (2 web + 1 worker) while it runs, elapsed at the end
        edits = [str(u.params) for u in slack.calls_to("chat.update")]
        assert any("deploying 3/3" in e for e in edits), "\n".join(e[:300] for e in edits)
        assert re.search(r"succeeded in \d+(\.\d)?s", parent.all_text()), parent.all_text()
        thread = "\n".join(m.all_text() for m in slack.thread(CHANNEL, card.ts))
        assert "carol approved (1/1): running it" in thread
        assert "shop-prod" in thread or "web" in thread  # the engine's steps, in the thread
        # every post after the card sits in the card's thread; every edit is of the card
        posts = slack.calls_to("chat.postMessage")
        assert posts[0].params.get("thread_ts") is None
        assert {p.params.get("thread_ts") for p in posts[1:]} == {card.ts}
        assert {u.params["ts"] for u in slack.calls_to("chat.update")} == {card.ts}
        assert all(c.token == "xoxb-fake-bot-token" for c in posts)
        check_every_call(slack)
        images = {m["config"]["image"].split("@")[0] for m in w.sim.machines("shop-prod")}
        assert images == {NEW}  # deployed by digest: `NEW@sha256:…`
        assert await bot.stop() == 0


async def test_the_requester_is_refused_privately_and_a_viewers_click_is_audited(
    tmp_path: Path,
) -> None:
    async with slack_world(tmp_path) as w:
        w.grant(BOB, "deployer")
        w.grant(VIC, "viewer")
        bot = await w.start()
        slack = w.slack
        async with bot.sender() as send:
            await send.command(slash_command(slack, f"deploy shop prod {NEW}", BOB, "bob"))
            await slack.wait_for(lambda: any(m.buttons for m in slack.channel(CHANNEL)))
            card = card_of(slack)
            await send.interactive(button_click(slack, card, "approval.approve", BOB, "bob"))
            await slack.wait_for(lambda: slack.private_to(BOB))
            [refusal] = slack.private_to(BOB)
            assert "You asked for #1; someone else has to approve it." in refusal
            await send.interactive(button_click(slack, card, "approval.approve", VIC, "vic"))
            await slack.wait_for(lambda: slack.private_to(VIC))
            [denied] = slack.private_to(VIC)
            assert "Not allowed to approve #1" in denied
        # both refusals went to the clicker alone (the click's response_url, ephemeral)
        hooks = slack.calls_to("response_url")
        assert [h.params["response_type"] for h in hooks] == ["ephemeral", "ephemeral"]
        assert card_of(slack).buttons  # still pending, still live
        assert await bot.stop() == 0
        from bot.store import make_engine
        from bot.store.audit import recent

        engine = make_engine(w.database_url)
        entries = [(e.user_id, e.action, e.outcome) for e in recent(engine, limit=20)]
        engine.dispose()
        assert (VIC, "approve", "denied") in entries
        assert (BOB, "approve", "denied") in entries
