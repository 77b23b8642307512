"""Discord while `flybot run` stops (SIGTERM during a deploy, as `fly deploy` stops a
machine): no new command runs, and no one is left with Discord's "The application did not
respond". Alone, the stopping instance leaves each interaction a moment for another one,
then answers it privately ("restarting, nothing was run"); beside a second instance, that
one acknowledges and runs it, and the stopping one's late answer is refused by Discord
(40060) and shown to no one. A modal lives in the process that opened it, so its submission
is answered at once."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from bot.store.models import Release
from commands.port import RESTARTING, RESTARTING_FORM
from tests.discord.harness import BOB, DiscordWorld, discord_world
from tests.discord.test_story import card_of
from tests.fakes.discord_api import CHANNEL, EPHEMERAL, FakeDiscord, Interaction
from tests.flyharness import NEW
from tests.slack.harness import FlybotProcess

pytestmark = pytest.mark.timeout(150)

APP = "shop-dev"


async def deploying(w: DiscordWorld, bot_index: int | None = None) -> Interaction:
    """A deploy of shop dev whose machine updates take 30 s, started on one instance."""
    d = w.discord
    w.sim.inject("Machines_update", latency=30.0)
    command = d.slash_of(BOB, "deploy", project="shop", stage="dev", image=NEW)
    await d.dispatch_interaction(command, only=bot_index)
    deadline = time.monotonic() + 30
    while not any(r.state == "running" and r.leases_json != "{}" for r in w.rows(Release)):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    return command


def restarting(d: FakeDiscord, interaction: Interaction, text: str = RESTARTING) -> bool:
    return any(
        a["type"] == 4 and int(a["data"].get("flags") or 0) & EPHEMERAL and text in str(a["data"])
        for a in interaction.answers
    )


async def sigterm(bot: FlybotProcess) -> None:
    assert bot.process is not None
    bot.process.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.3)
    assert bot.process.returncode is None  # draining: the deploy's update takes 30 s


async def test_alone_a_stopping_instance_says_so_privately_and_runs_nothing(
    tmp_path: Path,
) -> None:
    async with discord_world(tmp_path) as w:
        w.grant(BOB, "deployer")
        bot = await w.start(FLYBOT_SHUTDOWN_TIMEOUT="10")
        d = w.discord
        form = await d.slash(BOB, "secrets", "set", project="shop", stage="dev", names="API_TOKEN")
        await d.wait_for(lambda: d.modal_of(form))
        modal = d.modal_of(form)
        assert modal is not None
        await d.slash(BOB, "deploy", project="shop", stage="prod", image=NEW)  # guarded
        await d.wait_for(lambda: any(m.buttons for m in d.in_channel(CHANNEL)))
        card = card_of(d)
        await deploying(w)
        messages_before = set(d.messages)
        await sigterm(bot)

        command = await d.slash(BOB, "status", project="shop", stage="dev")
        click = await d.click(card, "approval.approve:1", BOB)
        submitted = await d.submit(modal, BOB, {"API_TOKEN": "v4lue-Never-Set"})
        await d.wait_for(lambda: restarting(d, command) and restarting(d, click), timeout=10)
        await d.wait_for(lambda: restarting(d, submitted, RESTARTING_FORM), timeout=10)
        for interaction in (command, click, submitted):
            assert len(interaction.answers) == 1, interaction.answers  # nothing deferred

        assert bot.process is not None
        assert await asyncio.wait_for(bot.process.wait(), 30) == 0
        assert "API_TOKEN" not in w.sim.state.apps[APP].secrets
        new = [d.messages[i] for i in set(d.messages) - messages_before]
        public = [m.all_text() for m in new if m.channel_id == CHANNEL and not m.ephemeral]
        assert public == []  # no status answer (the deploy's thread hears of its interruption)
    assert "Traceback" not in bot.log, bot.log


async def test_beside_a_second_instance_that_one_answers_and_runs_it(tmp_path: Path) -> None:
    async with discord_world(tmp_path) as w:
        w.grant(BOB, "deployer")
        stopping = await w.start(FLYBOT_SHUTDOWN_TIMEOUT="10")
        serving = await w.start()
        d = w.discord
        await deploying(w, bot_index=0)
        await sigterm(stopping)

        command = await d.slash(BOB, "status", project="shop", stage="dev")
        await d.wait_for(
            lambda: command.original is not None and not d.messages[command.original].loading,
            timeout=20,
        )
        assert stopping.process is not None
        assert await asyncio.wait_for(stopping.process.wait(), 30) == 0
        assert command.answers == [{"type": 5}]  # the serving instance's deferral, alone
        assert not any(RESTARTING in t for t in d.private_to(BOB))
        assert "answered by another instance" in stopping.log  # its late answer: 40060
        assert await serving.stop() == 0


async def test_a_refused_restarting_note_is_logged_not_raised(tmp_path: Path) -> None:
    async with discord_world(tmp_path) as w:
        w.grant(BOB, "deployer")
        bot = await w.start(FLYBOT_SHUTDOWN_TIMEOUT="6")
        d = w.discord
        await deploying(w)
        await sigterm(bot)
        d.fail_next("POST", "/interactions/{id}/{token}/callback", status=400)
        await d.slash(BOB, "status", project="shop", stage="dev")
        await d.wait_for(
            lambda: any(
                c.status == 400 for c in d.calls_to("POST", "/interactions/{id}/{token}/callback")
            )
        )
        assert bot.process is not None
        assert await asyncio.wait_for(bot.process.wait(), 30) == 0
    assert "not told flybot is restarting: 400" in bot.log
    assert "Traceback" not in bot.log and "Ignoring exception" not in bot.log, bot.log
