"""`flybot run` as a real process, stopped the way `fly deploy` stops a machine (SIGTERM,
then SIGKILL after kill_timeout), in the middle of a deploy against the Fly simulator: no new
command is taken, the deploy stops at its next safe point (or is cancelled when the budget
runs out), is marked interrupted with every lease released and its thread told, and the
process exits 0 well within kill_timeout. A second signal exits at once."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from bot.deploy.flytoml import load_stage_config
from bot.store.models import Release
from tests.fakes.fly_proxy import running_fly_proxy
from tests.fakes.slack_api import (
    Message,
    SlackSender,
    button_click,
    event_callback,
    slash_command,
    thread_reply,
)
from tests.flyharness import NEW, fly_client
from tests.slack.harness import BOB, CHANNEL, FlybotProcess, SlackWorld, slack_world
from tests.support import REPO

pytestmark = pytest.mark.timeout(120)

APP = "shop-dev"
KILL_TIMEOUT = load_stage_config(REPO / "fly.toml").kill_timeout


async def start_deploy(w: SlackWorld, update_latency: float, **env: str) -> FlybotProcess:
    w.grant(BOB, "deployer")
    bot = await w.start(**env)
    w.sim.inject("Machines_update", latency=update_latency)
    async with bot.sender() as send:
        assert await send.command(slash_command(w.slack, f"deploy shop dev {NEW}", BOB, "bob"))
    # The simulator logs a call once answered, so an update held for 30 s is not seen yet:
    # wait for the leases (taken just before the first update), then for the update to go.
    deadline = time.monotonic() + 30
    while not any(r.state == "running" and r.leases_json != "{}" for r in w.rows(Release)):
        assert time.monotonic() < deadline, bot.log
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    return bot


async def leases_left(w: SlackWorld) -> list[str]:
    fly = fly_client(w.fly_url)
    try:
        machines = await fly.list_machines(APP)
        return [m.id for m in machines if await fly.get_lease(APP, m.id) is not None]
    finally:
        await fly.aclose()


async def post_status(bot: FlybotProcess, w: SlackWorld) -> tuple[int, str]:
    try:
        async with bot.sender() as send:
            return await send.command(slash_command(w.slack, "status shop dev", BOB, "bob"))
    except aiohttp.ClientError:
        return 0, ""  # already gone: not taken either


RESTARTING = "flybot is restarting"


def told_restarting(status: int, body: str) -> bool:
    """Slack's own way for a slash command: a 200 whose body is an ephemeral message."""
    if status != 200:
        return False
    answer = json.loads(body)
    return answer.get("response_type") == "ephemeral" and RESTARTING in answer.get("text", "")


@pytest.mark.parametrize(
    ("case", "update_latency", "budget"),
    [
        ("the deploy reaches a safe point", 1.0, "20"),
        ("the budget runs out mid-step", 30.0, "1"),
    ],
)
async def test_sigterm_during_a_deploy_interrupts_it_cleanly_and_exits_0(
    tmp_path: Path, case: str, update_latency: float, budget: str
) -> None:
    assert KILL_TIMEOUT is not None
    async with slack_world(tmp_path) as w:
        bot = await start_deploy(w, update_latency, FLYBOT_SHUTDOWN_TIMEOUT=budget)
        assert bot.process is not None
        cards_before = [m.ts for m in w.slack.channel(CHANNEL) if m.thread_ts is None]
        started = time.monotonic()
        bot.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        assert await bot.health() in (503, 0)  # Fly's proxy stops sending traffic here
        status, body = await post_status(bot, w)  # a new command is not taken, and said so
        assert status == 0 or told_restarting(status, body), (status, body)
        code = await asyncio.wait_for(bot.process.wait(), KILL_TIMEOUT.total_seconds())
        elapsed = time.monotonic() - started
        assert code == 0, bot.log
        assert elapsed < KILL_TIMEOUT.total_seconds() - 5, elapsed
        [release] = w.rows(Release)
        assert release.state == "interrupted", (release.state, release.error)
        assert release.leases_json == "{}"
        assert await leases_left(w) == []
        thread = w.slack.thread(CHANNEL, release.message_id)
        told = " ".join(m.all_text() for m in thread)
        assert "shutting down" in told and "interrupted" in told, told
        parent = w.slack.message(CHANNEL, release.message_id)
        assert "interrupted" in parent.all_text()
        # The status command sent while stopping was never run: its answer would be a new
        # message in the channel; the deploy only edits its card and replies in its thread.
        cards = [m.ts for m in w.slack.channel(CHANNEL) if m.thread_ts is None]
        assert cards == cards_before == [release.message_id]
    assert "Traceback" not in bot.log, bot.log


async def test_a_second_signal_exits_at_once(tmp_path: Path) -> None:
    async with slack_world(tmp_path) as w:
        bot = await start_deploy(w, 30.0, FLYBOT_SHUTDOWN_TIMEOUT="25")
        assert bot.process is not None
        bot.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        assert bot.process.returncode is None  # still draining: the update takes 30 s
        started = time.monotonic()
        bot.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(bot.process.wait(), 5)
        assert time.monotonic() - started < 2
        assert code == 128 + signal.SIGTERM


async def test_what_arrives_while_stopping_is_answered_slacks_way_and_nothing_runs(
    tmp_path: Path,
) -> None:
    """One machine, stopping: Slack retries neither a slash command nor a click, so a 503
    would lose them with only Slack's generic error shown. Each is acknowledged with a
    private "restarting, nothing was run" instead; a modal keeps its values with the same
    words under its field, to be sent again; an event (which Slack does retry) still gets
    503. Nothing of it runs."""
    async with slack_world(tmp_path) as w:
        bot = await start_deploy(w, 30.0, FLYBOT_SHUTDOWN_TIMEOUT="8")
        assert bot.process is not None
        async with bot.sender() as send:
            status, _ = await send.command(
                slash_command(w.slack, "secrets set shop dev API_TOKEN", BOB, "bob")
            )
            assert status == 200
            await w.slack.wait_for(lambda: w.slack.calls_to("views.open"))
            [view_id] = [str(c.answer["view"]["id"]) for c in w.slack.calls_to("views.open")]
            cards_before = [m.ts for m in w.slack.channel(CHANNEL) if m.thread_ts is None]
            said_before = len(w.slack.private_to(BOB))
            bot.process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            assert bot.process.returncode is None  # draining: the deploy's update takes 30 s

            status, body = await send.command(slash_command(w.slack, "status shop dev", BOB))
            assert told_restarting(status, body), (status, body)

            card = Message(
                CHANNEL,
                cards_before[0],
                "a card",
                [
                    {
                        "type": "actions",
                        "elements": [
                            {
                                "type": "button",
                                "action_id": "approval.approve",
                                "value": "1",
                                "text": {"type": "plain_text", "text": "Approve"},
                            }
                        ],
                    }
                ],
            )
            status, body = await send.interactive(
                button_click(w.slack, card, "approval.approve", BOB, "bob")
            )
            assert (status, body) == (200, "")  # a click's ack carries no message: Slack
            # shows the note sent to the click's response_url, to the clicker only
            await w.slack.wait_for(lambda: len(w.slack.private_to(BOB)) > said_before, 5)
            [note] = w.slack.private_to(BOB)[said_before:]
            assert RESTARTING in note and "nothing was run" in note
            [posted] = [c for c in w.slack.calls_to("response_url") if RESTARTING in c.dump()]
            assert posted.params.get("replace_original") is False  # the card stays

            submission = w.slack.submission(view_id, BOB, {"API_TOKEN": "v4lue-Kept"}, "bob")
            status, body = await send.interactive(submission)
            assert status == 200
            answer = json.loads(body)
            assert answer["response_action"] == "errors"
            [(block, error)] = answer["errors"].items()
            assert block.startswith("secret:") and RESTARTING in error

            status, _ = await send.event(
                event_callback(thread_reply(CHANNEL, cards_before[0], BOB, "approve"))
            )
            assert status == 503  # Slack retries an event (after 1 and 5 minutes)

        assert await asyncio.wait_for(bot.process.wait(), 30) == 0
        cards = [m.ts for m in w.slack.channel(CHANNEL) if m.thread_ts is None]
        assert cards == cards_before  # no status answer, no approval card
        assert "API_TOKEN" not in w.sim.state.apps[APP].secrets
        assert not any(RESTARTING in m.all_text() for m in w.slack.channel(CHANNEL))
    assert "Traceback" not in bot.log, bot.log


async def test_on_fly_a_stopping_machine_hands_a_command_to_another_one(tmp_path: Path) -> None:
    """Behind Fly's proxy, a stopping machine answers with `fly-replay: elsewhere=true`: the
    proxy delivers the same signed request to the other machine, which runs it."""
    async with slack_world(tmp_path) as w, running_fly_proxy() as proxy:
        stopping = await start_deploy(
            w, 30.0, FLYBOT_SHUTDOWN_TIMEOUT="8", FLY_MACHINE_ID="m-stopping"
        )
        serving = await w.start(FLY_MACHINE_ID="m-serving")
        proxy.machines = [("m-stopping", stopping.url), ("m-serving", serving.url)]
        assert stopping.process is not None
        posts = len(w.slack.calls_to("chat.postMessage"))
        stopping.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        async with SlackSender(proxy.url + "/slack/events") as send:
            status, body = await send.command(slash_command(w.slack, "status shop dev", BOB))
        assert (status, body) == (200, "")  # acknowledged by the serving machine
        assert proxy.hops == [("m-stopping", 503), ("m-serving", 200)]
        await w.slack.wait_for(lambda: len(w.slack.calls_to("chat.postMessage")) > posts)
        [answer] = w.slack.calls_to("chat.postMessage")[posts:]
        assert "shop" in answer.dump() and RESTARTING not in answer.dump()
        assert not any(RESTARTING in t for t in w.slack.private_to(BOB))
        assert await asyncio.wait_for(stopping.process.wait(), 30) == 0
        assert await serving.stop() == 0


async def test_on_fly_alone_the_replay_comes_back_and_is_answered(tmp_path: Path) -> None:
    """No other machine: the proxy sends the request back (`fallback=force_self`, marked
    `fly-replay-failed`) and the stopping machine answers it as stopping."""
    async with slack_world(tmp_path) as w, running_fly_proxy() as proxy:
        bot = await start_deploy(w, 30.0, FLYBOT_SHUTDOWN_TIMEOUT="8", FLY_MACHINE_ID="m-only")
        proxy.machines = [("m-only", bot.url)]
        assert bot.process is not None
        bot.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        async with SlackSender(proxy.url + "/slack/events") as send:
            status, body = await send.command(slash_command(w.slack, "status shop dev", BOB))
            assert told_restarting(status, body), (status, body)
            assert proxy.hops == [("m-only", 503), ("m-only", 200)]
            status, _ = await send.event(
                event_callback(thread_reply(CHANNEL, "1.000", BOB, "approve"))
            )
            assert status == 503  # an event: Slack delivers it again later
        assert await asyncio.wait_for(bot.process.wait(), 30) == 0
