"""`flybot run` as a process, over HTTP: signatures, Slack's retries, two instances on one
database, /healthz, and bad tokens."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.parse
from pathlib import Path

import aiohttp
import pytest

from bot.store import make_engine
from bot.store.models import ApprovalRequest, ApprovalVote, Release
from tests.fakes.slack_api import SlackSender, button_click, slash_command
from tests.flyharness import NEW
from tests.slack.harness import BOB, CAROL, CHANNEL, slack_world
from tests.slack.test_story import card_of, check_every_call
from tests.support import snapshot

pytestmark = pytest.mark.timeout(150)


async def test_forged_stale_and_unsigned_requests_get_401_and_change_nothing(
    tmp_path: Path,
) -> None:
    async with slack_world(tmp_path) as w:
        w.grant(BOB, "deployer")
        bot = await w.start()
        engine = make_engine(w.database_url)
        before = snapshot(engine)
        calls_before = len(w.slack.calls)
        form = slash_command(w.slack, "deploy shop dev", BOB, "bob")
        body = urllib.parse.urlencode(form)
        kind = "application/x-www-form-urlencoded"
        async with SlackSender(bot.events_url, signing_secret="not-the-secret") as forger:
            assert (await forger.post(body, kind))[0] == 401
        async with bot.sender() as send:
            stale = int(time.time()) - 5 * 60 - 30  # Slack's window is five minutes
            assert (await send.post(body, kind, timestamp=stale))[0] == 401
            assert (await send.post(body, kind, headers={"X-Slack-Signature": ""}))[0] == 401
            tampered = body.replace("deploy+shop+dev", "deploy+shop+prod")
            signed = send.signed_headers(body, content_type=kind)
            assert (await send.post(tampered, kind, headers=signed))[0] == 401
            assert send.session is not None
            async with send.session.post(
                bot.events_url, data=body, headers={"Content-Type": kind}
            ) as unsigned:
                assert unsigned.status == 401
        await asyncio.sleep(0.5)  # give a wrongly accepted request the time to do harm
        assert len(w.slack.calls) == calls_before
        assert snapshot(engine) == before
        engine.dispose()
        assert await bot.stop() == 0


async def test_a_command_delivered_three_times_and_a_double_click_run_once(
    tmp_path: Path,
) -> None:
    async with slack_world(tmp_path) as w:
        w.grant(BOB, "deployer")
        w.grant(CAROL, "approver")
        bot = await w.start()
        slack = w.slack
        form = slash_command(slack, f"deploy shop prod {NEW}", BOB, "bob")
        async with bot.sender() as send:
            answers = [await send.command(form, retry=n) for n in range(3)]  # Slack's retries
            assert answers == [(200, "")] * 3
            await slack.wait_for(lambda: any(m.buttons for m in slack.channel(CHANNEL)))
            card = card_of(slack)
            click = button_click(slack, card, "approval.approve", CAROL, "carol")
            second = button_click(slack, card, "approval.approve", CAROL, "carol")
            results = await asyncio.gather(
                send.interactive(click),
                send.interactive(click, retry=1),  # the same click delivered again
                send.interactive(second),  # and clicked a second time
            )
            assert [status for status, _ in results] == [200, 200, 200]
            await slack.wait_for(
                lambda: "succeeded" in slack.message(CHANNEL, card.ts).all_text(), timeout=60
            )
        assert await bot.stop() == 0
        assert len(w.rows(ApprovalRequest)) == 1
        assert len(w.rows(ApprovalVote)) == 1
        assert [(r.stage, r.state) for r in w.rows(Release)] == [("prod", "succeeded")]
        cards = [m for m in slack.channel(CHANNEL) if m.thread_ts is None]
        assert len(cards) == 1
        refused = slack.private_to(CAROL)
        assert len(refused) == 1, refused  # the second click is told; the repeat is dropped
        assert "Request #1 is" in refused[0] or "already approved" in refused[0]
        check_every_call(slack)


async def test_two_instances_on_one_database_run_a_delivery_once(
    tmp_path: Path, postgres_url: str
) -> None:
    async with slack_world(tmp_path, database_url=postgres_url) as w:
        w.grant(BOB, "deployer")
        w.grant(CAROL, "approver")
        first, second = await w.start(), await w.start()
        slack = w.slack
        form = slash_command(slack, f"deploy shop prod {NEW}", BOB, "bob")
        async with first.sender() as one, second.sender() as two:
            await asyncio.gather(one.command(form), two.command(form), one.command(form, 1))
            await slack.wait_for(lambda: any(m.buttons for m in slack.channel(CHANNEL)))
            card = card_of(slack)
            click = button_click(slack, card, "approval.approve", CAROL, "carol")
            again = button_click(slack, card, "approval.approve", CAROL, "carol")
            await asyncio.gather(
                one.interactive(click), two.interactive(click), two.interactive(again)
            )
            await slack.wait_for(
                lambda: "succeeded" in slack.message(CHANNEL, card.ts).all_text(), timeout=60
            )

            # Late retries of the command and of the click, on both instances: dropped, so
            # nobody is told "Request #1 is executed" and no second request is made.
            def told() -> int:
                return len(slack.calls_to("response_url") + slack.calls_to("chat.postEphemeral"))

            before = told()
            assert await two.command(form, 2) == (200, "")
            assert (await one.interactive(click, retry=2))[0] == 200
            assert (await two.interactive(click, retry=3))[0] == 200
            await asyncio.sleep(1.0)  # the time a wrongly accepted retry needs to answer
            assert told() == before, slack.private_to(CAROL) + slack.private_to(BOB)
        assert await first.stop() == 0 and await second.stop() == 0
        assert len(w.rows(ApprovalRequest)) == 1
        assert len(w.rows(ApprovalVote)) == 1
        assert [r.state for r in w.rows(Release)] == ["succeeded"]
        assert len([m for m in slack.channel(CHANNEL) if m.thread_ts is None]) == 1
        check_every_call(slack)


async def test_healthz_is_503_until_slack_answers_then_200(tmp_path: Path) -> None:
    async with slack_world(tmp_path) as w:
        gate = w.slack.gate("auth.test")
        port_process = w.start()
        task = asyncio.ensure_future(port_process)
        await w.slack.wait_for(lambda: w.slack.calls_to("auth.test"))
        [process] = w.processes
        assert await process.health() == 503  # listening, not ready
        gate.set()
        await task
        assert await process.health() == 200
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{process.url}/healthz") as response:
                assert json.loads(await response.text()) == {
                    "database": "ok",
                    "slack": "connected",
                    "status": "ok",
                }
            async with session.get(f"{process.url}/metrics") as response:
                assert "flybot_ready 1" in await response.text()
        assert await process.stop() == 0


@pytest.mark.parametrize(
    ("setting", "value", "said"),
    [
        ("SLACK_BOT_TOKEN", "xoxb-wrong", "flybot: Slack refused SLACK_BOT_TOKEN (invalid_auth)"),
        ("SLACK_SIGNING_SECRET", "", "flybot: SLACK_SIGNING_SECRET is not set"),
        ("SLACK_APP_TOKEN", "xapp-wrong", "flybot: Slack refused SLACK_APP_TOKEN (invalid_auth)"),
    ],
)
async def test_bad_slack_settings_exit_with_one_clear_line(
    tmp_path: Path, setting: str, value: str, said: str
) -> None:
    async with slack_world(tmp_path) as w:
        env = w.env(0, **{setting: value})
        if setting == "SLACK_SIGNING_SECRET":
            env.pop("SLACK_SIGNING_SECRET", None)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            "run",
            env=env,
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(process.communicate(), 60)
        text = err.decode()
        assert process.returncode == 2, text
        lines = [line for line in text.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(said), text


async def test_every_command_is_acked_at_once_while_fly_takes_four_seconds(
    tmp_path: Path,
) -> None:
    """Bolt answers 404 when a listener has not acked within 3 s; flybot acks first and
    works after, so twenty commands whose Fly call takes 4 s are all answered 200."""
    async with slack_world(tmp_path) as w:
        bot = await w.start()
        w.sim.inject("*", latency=4.0)
        slack = w.slack
        forms = [slash_command(slack, "status shop dev", "UALICE", "alice") for _ in range(20)]
        async with bot.sender() as send:
            answers = await asyncio.gather(*(send.command(form) for form in forms))
            assert answers == [(200, "")] * 20
            assert slack.calls_to("chat.postMessage") == []  # Fly has not answered yet
            await slack.wait_for(lambda: len(slack.calls_to("chat.postMessage")) == 20, 60)
        assert await bot.stop() == 0
