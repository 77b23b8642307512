"""Secrets from Slack: `/fly secrets set` opens a modal straight from the trigger_id; its
submission sets the values at Fly and restarts the stage's machines with them; a closed
modal cancels; a value typed in the command is refused; and the values are found nowhere
but at Fly — not in the process's debug log, the database, the audit log, any recorded
Slack call, or the text of an error Fly sent back quoting them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.slack_api import FakeSlack, SlackSender, slash_command
from tests.slack.harness import BOB, CHANNEL, FlybotProcess, slack_world
from tests.slack.test_story import check_every_call
from tests.support import assert_found_nowhere

pytestmark = pytest.mark.timeout(120)

VALUES = {"API_TOKEN": "s3cr3t-Api-7Qx9", "DB_PASS": "pa$$\"w0rd'<&>-Zz"}
TYPED = "typed-in-Cmd-4Rw"  # a value someone types in the command text


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


def recorded(slack: FakeSlack) -> str:
    """Every call the fake Slack recorded, with its answer."""
    return "\n".join(c.dump() + json.dumps(c.answer) for c in slack.calls)


@pytest.mark.parametrize("socket", [False, True], ids=["http", "socket_mode"])
async def test_a_secret_set_through_the_modal_is_found_only_at_fly(
    tmp_path: Path, socket: bool
) -> None:
    async with slack_world(tmp_path) as w:
        w.grant(BOB, "deployer")
        bot = await w.start(socket_mode=socket, verbose=True)
        slack = w.slack
        line = "secrets set shop dev API_TOKEN DB_PASS"
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

        def channel_text() -> str:
            return "\n".join(m.all_text() for m in slack.channel(CHANNEL))

        await slack.wait_for(lambda: "succeeded" in channel_text(), timeout=60)
        assert "Secrets set: API_TOKEN (new), DB_PASS (new)" in channel_text()
        assert "(secrets restart)" in channel_text()
        assert len(slack.calls_to("views.open")) == 1
        app = w.sim.state.apps["shop-dev"]
        assert {name: app.secrets[name].value for name in VALUES} == VALUES  # at Fly, only
        machines = [m for m in app.machines.values() if m.state == "started"]
        assert machines and all(m.secrets_version == app.secrets_version for m in machines)

        # Fly refuses one, quoting the request (values and all) in its error text
        w.sim.inject("Secrets_update", status=422, echo=True, count=1)
        refused = slash_command(slack, line, BOB, "bob")
        await send(bot, slack, "slash_commands", refused, socket)
        await slack.wait_for(lambda: len(opened(slack)) == 2)
        await send(
            bot,
            slack,
            "view_submission",
            slack.submission(opened(slack)[1], BOB, VALUES, "bob"),
            socket,
        )
        await slack.wait_for(
            lambda: any("Fly refused or failed" in t for t in slack.private_to(BOB))
        )
        [said] = [t for t in slack.private_to(BOB) if "Fly refused or failed" in t]
        assert "could not process request" in said and "•••" in said

        # a value typed in the command: refused, no form, nothing at Fly
        typed = slash_command(slack, f"secrets set shop dev LEAKED={TYPED}", BOB, "bob")
        await send(bot, slack, "slash_commands", typed, socket)
        await slack.wait_for(
            lambda: any("puts a secret's value in the command" in t for t in slack.private_to(BOB))
        )
        assert len(opened(slack)) == 2 and "LEAKED" not in app.secrets
        assert await bot.stop() == 0
        # the log is at debug level: bolt's and slack_sdk's payload logging was on
        debug = [(r["logger"], r["message"]) for r in bot.records() if r["level"] == "DEBUG"]
        assert any(
            name == "slack_sdk.web.async_base_client" and text.startswith("Sending a request")
            for name, text in debug
        )
        assert any(name.startswith("adapters.slack.bolt") for name, _ in debug)
        if socket:  # the Socket Mode client logs every frame it receives, raw
            assert "Received message" in bot.log and "a modal submission" in bot.log
        for value in (*VALUES.values(), TYPED):
            assert_found_nowhere(
                value, w.database_url, tmp_path, log=bot.log, slack_calls=recorded(slack)
            )
        check_every_call(slack)


async def test_a_closed_modal_cancels_with_a_private_note(tmp_path: Path) -> None:
    async with slack_world(tmp_path) as w:
        w.grant(BOB, "deployer")
        bot = await w.start()
        slack = w.slack
        async with bot.sender() as sender:
            await sender.command(slash_command(slack, "secrets set shop dev API_TOKEN", BOB, "bob"))
            await slack.wait_for(lambda: opened(slack))
            [view_id] = opened(slack)
            assert slack.views[view_id]["notify_on_close"] is True
            assert (await sender.interactive(slack.closing(view_id, BOB)))[0] == 200
            await slack.wait_for(lambda: slack.private_to(BOB))
        [note] = slack.private_to(BOB)
        assert "Cancelled `/fly secrets set shop dev API_TOKEN" in note
        assert "nothing was changed" in note
        assert [c.params["user"] for c in slack.calls_to("chat.postEphemeral")] == [BOB]
        assert not any("API_TOKEN" in m.all_text() for m in slack.channel(CHANNEL))
        assert w.sim.state.apps["shop-dev"].secrets == {}
        assert await bot.stop() == 0


async def test_a_stale_trigger_is_said_privately(tmp_path: Path) -> None:
    """Slack refuses a trigger_id older than 3 s: the person is told, nothing runs."""
    async with slack_world(tmp_path) as w:
        w.grant(BOB, "deployer")
        bot = await w.start()
        slack = w.slack
        command = slash_command(
            slack, "secrets set shop dev API_TOKEN", BOB, "bob", trigger_id="never-issued"
        )
        async with SlackSender(bot.events_url) as sender:
            assert (await sender.command(command))[0] == 200
        await slack.wait_for(lambda: slack.private_to(BOB))
        assert "did not open the form" in slack.private_to(BOB)[0]
        assert await bot.stop() == 0


def test_a_slash_command_payload_for_a_sensitive_verb_is_cut_in_every_encoding() -> None:
    from adapters.slack.redact import SecretScrubber

    scrubber = SecretScrubber()
    scrubber.guard_verbs(["secrets set", "link"])
    form = "body: token=x&command=%2Ffly&text=secrets+set+shop+dev+A%3Dtyped-1&user_id=U1"
    frame = 'Received (data: {"command": "/fly", "text": "secrets  set shop dev A=typed-2"})'
    for record in (form, frame):
        assert "typed-" not in scrubber.redact(record), record
    kept = 'Received message (data: {"command": "/fly", "text": "secretsset shop", "a": "deploy"})'
    assert scrubber.redact(kept) == kept  # another verb's payload stays as it was
    assert scrubber.redact("text=secrets+set+x") == "text=secrets+set+x"  # not a payload
