"""Secrets from Slack: a verb with declared secret input opens a modal straight from the
trigger_id; its submission runs the command with the values beside it; a closed modal
cancels; and the values are found nowhere but at Fly — not in the process's debug log, the
database, the audit log, any recorded Slack call, or the text of an exception."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.store import make_engine
from bot.store.audit import recent
from tests.fakes.slack_api import FakeSlack, SlackSender, slash_command
from tests.slack.harness import BOB, CHANNEL, FlybotProcess, slack_world
from tests.slack.test_story import check_every_call
from tests.support import snapshot

pytestmark = pytest.mark.timeout(120)

VALUES = {"API_TOKEN": "s3cr3t-Api-7Qx9", "DB_PASS": "pa$$\"w0rd'<&>-Zz"}
TOY = "tests.slack.toy_secrets"


async def send(
    bot: FlybotProcess, slack: FakeSlack, kind: str, payload: dict[str, Any], socket: bool
) -> None:
    if socket:
        await slack.deliver(kind, payload)
        return
    async with bot.sender() as sender:
        if kind == "slash_commands":
            status, body = await sender.command(payload)
        else:
            status, body = await sender.interactive(payload)
        assert (status, body) == (200, "")


def opened(slack: FakeSlack) -> list[str]:
    return [str(c.answer["view"]["id"]) for c in slack.calls_to("views.open") if c.answer["ok"]]


def found_anywhere(
    value: str, world_root: Path, bot: FlybotProcess, slack: FakeSlack, database_url: str
) -> list[str]:
    places = []
    forms = {value, json.dumps(value)[1:-1], repr(value)[1:-1]}
    if any(f in bot.log for f in forms):
        places.append("log")
    for path in world_root.glob("flybot.db*"):
        if value.encode() in path.read_bytes():
            places.append(path.name)
    engine = make_engine(database_url)
    try:
        if value in repr(snapshot(engine)):
            places.append("database rows")
        if any(value in repr(e) for e in recent(engine, limit=100)):
            places.append("audit")
    finally:
        engine.dispose()
    for call in slack.calls:
        if any(f in call.dump() or f in json.dumps(call.answer) for f in forms):
            places.append(f"slack call {call.method}")
    return places


@pytest.mark.parametrize("socket", [False, True], ids=["http", "socket_mode"])
async def test_a_secret_set_through_the_modal_is_found_only_at_fly(
    tmp_path: Path, socket: bool
) -> None:
    async with slack_world(tmp_path) as w:
        w.grant(BOB, "deployer")
        bot = await w.start(socket_mode=socket, verbose=True, entry=TOY)
        slack = w.slack
        line = "vault put shop dev API_TOKEN DB_PASS"
        command = slash_command(slack, line, BOB, "bob")
        await send(bot, slack, "slash_commands", command, socket)
        await slack.wait_for(lambda: opened(slack))
        [view_id] = opened(slack)
        [open_call] = slack.calls_to("views.open")
        assert open_call.params["trigger_id"] == command["trigger_id"]
        labels = [
            b["label"]["text"] for b in slack.views[view_id]["blocks"] if b["type"] == "input"
        ]
        assert labels == ["API_TOKEN", "DB_PASS"]
        # the same command delivered again opens no second form
        if socket:
            await slack.deliver("slash_commands", command, retry_attempt=1)
        else:
            async with bot.sender() as sender:
                assert (await sender.command(command, retry=1))[0] == 200
        await send(
            bot, slack, "view_submission", slack.submission(view_id, BOB, VALUES, "bob"), socket
        )
        await slack.wait_for(
            lambda: any(
                "set API_TOKEN, DB_PASS on shop-dev" in m.all_text() for m in slack.channel(CHANNEL)
            )
        )
        assert len(slack.calls_to("views.open")) == 1
        kept = w.sim.state.apps["shop-dev"].secrets
        assert {name: kept[name].value for name in VALUES} == VALUES  # at Fly, and only there

        # one that fails with the values in its exception text
        boom = slash_command(slack, f"{line} --explode", BOB, "bob")
        await send(bot, slack, "slash_commands", boom, socket)
        await slack.wait_for(lambda: len(opened(slack)) == 2)
        await send(
            bot,
            slack,
            "view_submission",
            slack.submission(opened(slack)[1], BOB, VALUES, "bob"),
            socket,
        )
        await slack.wait_for(
            lambda: any("Something went wrong" in t for t in slack.private_to(BOB))
        )
        assert await bot.stop() == 0
        assert "the toy exploded holding" in bot.log  # the exception was logged …
        # … at debug level: bolt's and slack_sdk's payload logging was on
        assert "DEBUG slack_sdk.web.async_base_client: Sending a request" in bot.log
        assert "DEBUG adapters.slack.bolt" in bot.log
        if socket:  # the Socket Mode client logs every frame it receives, raw
            assert "Received message" in bot.log and "a modal submission" in bot.log
        for value in VALUES.values():
            assert found_anywhere(value, tmp_path, bot, slack, w.database_url) == []
        check_every_call(slack)


async def test_a_closed_modal_cancels_with_a_private_note(tmp_path: Path) -> None:
    async with slack_world(tmp_path) as w:
        w.grant(BOB, "deployer")
        bot = await w.start(entry=TOY)
        slack = w.slack
        async with bot.sender() as sender:
            await sender.command(slash_command(slack, "vault put shop dev API_TOKEN", BOB, "bob"))
            await slack.wait_for(lambda: opened(slack))
            [view_id] = opened(slack)
            assert slack.views[view_id]["notify_on_close"] is True
            assert (await sender.interactive(slack.closing(view_id, BOB)))[0] == 200
            await slack.wait_for(lambda: slack.private_to(BOB))
        [note] = slack.private_to(BOB)
        assert "Cancelled `/fly vault put shop dev API_TOKEN" in note
        assert "nothing was changed" in note
        assert [c.params["user"] for c in slack.calls_to("chat.postEphemeral")] == [BOB]
        assert not any("set API_TOKEN" in m.all_text() for m in slack.channel(CHANNEL))
        assert await bot.stop() == 0


async def test_a_stale_trigger_is_said_privately(tmp_path: Path) -> None:
    """Slack refuses a trigger_id older than 3 s: the person is told, nothing runs."""
    async with slack_world(tmp_path) as w:
        w.grant(BOB, "deployer")
        bot = await w.start(entry=TOY)
        slack = w.slack
        command = slash_command(
            slack, "vault put shop dev API_TOKEN", BOB, "bob", trigger_id="never-issued"
        )
        async with SlackSender(bot.events_url) as sender:
            assert (await sender.command(command))[0] == 200
        await slack.wait_for(lambda: slack.private_to(BOB))
        assert "did not open the form" in slack.private_to(BOB)[0]
        assert await bot.stop() == 0
