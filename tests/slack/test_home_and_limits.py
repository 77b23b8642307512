"""App Home (pending approvals with their buttons, every stage's image and last release),
Block Kit limits on big answers, and Web API calls that survive 429s and 5xx."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.store import make_engine
from bot.store.engine import session_scope
from bot.store.models import Release
from tests.adapters.limits_check import check_slack
from tests.fakes.slack_api import (
    event_callback,
    home_click,
    home_opened,
    home_text,
    slash_command,
)
from tests.flyharness import NEW, OLD, fly_client, seed_stage
from tests.slack.harness import ALICE, BOB, CAROL, CHANNEL, slack_world
from tests.slack.test_story import card_of, check_every_call

pytestmark = pytest.mark.timeout(150)


async def test_app_home_lists_pending_approvals_with_buttons_and_every_stage(
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
            for user in (CAROL, BOB):
                await send.event(event_callback(home_opened(user)))
            await slack.wait_for(lambda: CAROL in slack.homes and BOB in slack.homes)
            carols, bobs = slack.homes[CAROL], slack.homes[BOB]
            assert carols["type"] == "home"
            text = home_text(carols)
            assert "#1 deploy shop/prod requested by bob" in text
            assert "waiting for your approval" in text
            for stage in ("dev", "staging", "prod"):
                assert f"*shop/{stage}* (shop-{stage}): `{OLD}" in text
            assert "last release no release yet" in text
            buttons = [
                e["action_id"]
                for b in carols["blocks"]
                if b["type"] == "actions"
                for e in b["elements"]
            ]
            assert buttons == ["approval.approve", "approval.reject"]
            # the requester sees the request, without buttons
            assert "You asked for #1" in home_text(bobs)
            assert not [b for b in bobs["blocks"] if b["type"] == "actions"]
            # approving from the Home tab runs it and shows the new state there
            publishes = len(slack.calls_to("views.publish"))
            status, _ = await send.interactive(home_click(slack, CAROL, "approval.approve", "1"))
            assert status == 200
            card = card_of(slack)
            await slack.wait_for(
                lambda: (
                    "succeeded" in slack.message(CHANNEL, card.ts).all_text()
                    and len(slack.calls_to("views.publish")) > publishes
                ),
                timeout=60,
            )
            await send.event(event_callback(home_opened(CAROL)))
            await slack.wait_for(lambda: "v1 succeeded by bob" in home_text(slack.homes[CAROL]))
        text = home_text(slack.homes[CAROL])
        assert "Nothing is waiting for approval." in text
        assert f"*shop/prod* (shop-prod): `{NEW}@sha256:" in text
        for call in slack.calls_to("views.publish"):
            assert len(call.params["view"]["blocks"]) <= 100
        check_every_call(slack)
        assert await bot.stop() == 0


async def test_a_sixty_machine_status_and_a_forty_release_list_fit_slacks_limits(
    tmp_path: Path,
) -> None:
    async with slack_world(tmp_path) as w:
        fly = fly_client(w.fly_url)
        await seed_stage(
            fly,
            w.fly_url,
            tmp_path / "shop" / "staging.fly.toml",
            OLD,
            web=45,
            worker=12,
            create_app=False,
        )
        await fly.aclose()
        engine = make_engine(w.database_url)
        from bot.store import upgrade

        upgrade(engine)
        with session_scope(engine) as session:
            for version in range(1, 41):
                session.add(
                    Release(
                        project="shop",
                        stage="dev",
                        app="shop-dev",
                        version=version,
                        image=f"registry.fly.io/shop:build-{version:04d}-" + "x" * 60,
                        state="succeeded",
                        requester_name="a" * 150,
                        approvers="b" * 150,
                    )
                )
        engine.dispose()
        bot = await w.start()
        slack = w.slack
        async with bot.sender() as send:
            await send.command(slash_command(slack, "status shop staging", ALICE, "alice"))
            await send.command(slash_command(slack, "releases shop dev --limit 40", ALICE))
            await slack.wait_for(lambda: len(slack.calls_to("chat.postMessage")) >= 2)
        posts = slack.calls_to("chat.postMessage")
        status = next(c for c in posts if c.params["text"].startswith("shop/staging"))
        releases = next(c for c in posts if c.params["text"].startswith("Releases of"))
        status_text = str(status.params["blocks"])
        assert "Machines*\\n60" in status_text  # all 60 counted …
        assert "… and " in status_text  # … the list cut, saying how many more
        assert "v40" in str(releases.params["blocks"]) and "… and 3" in str(releases.params)
        for call in (status, releases):
            check_slack(call.payload)
            assert call.answer["ok"] is True
        check_every_call(slack)
        assert await bot.stop() == 0


async def test_web_api_calls_survive_429_with_retry_after_and_5xx(tmp_path: Path) -> None:
    async with slack_world(tmp_path) as w:
        bot = await w.start()
        slack = w.slack
        slack.fail_next("chat.postMessage", status=429, retry_after=1)
        slack.fail_next("chat.postMessage", status=503, retry_after=None)
        slack.fail_next("response_url", status=500, retry_after=None)
        async with bot.sender() as send:
            await send.command(slash_command(slack, "status shop dev", ALICE, "alice"))
            await send.command(slash_command(slack, "statuz shop dev", ALICE, "alice"))
            await slack.wait_for(
                lambda: (
                    any(c.answer.get("ok") for c in slack.calls_to("chat.postMessage"))
                    and any(c.answer.get("ok") for c in slack.calls_to("response_url"))
                ),
                timeout=30,
            )
        posts = [c.status for c in slack.calls_to("chat.postMessage")]
        assert posts == [429, 503, 200]
        assert [c.status for c in slack.calls_to("response_url")] == [500, 200]
        assert "Unknown command 'statuz'" in slack.private_to(ALICE)[0]
        assert "shop/dev" in slack.channel(CHANNEL)[0].all_text()
        await asyncio.sleep(0)
        assert await bot.stop() == 0
