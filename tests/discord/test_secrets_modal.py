"""Secrets from Discord: a verb with declared secret input answers its slash command with a
modal as the first response (no deferral before it); the submission runs the command with
the values beside it; and the values are found nowhere but at Fly — not in the process's
debug log (discord.py logs every gateway frame), the database, the audit log, any recorded
Discord call (`/fly secrets set`, commands/secrets.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.discord.harness import BOB, CAROL, discord_world
from tests.discord.test_story import check_every_call
from tests.fakes.discord_api import FakeDiscord
from tests.support import assert_found_nowhere

pytestmark = pytest.mark.timeout(120)

VALUES = {"API_TOKEN": "s3cr3t-Api-7Qx9", "DB_PASS": "pa$$\"w0rd'<&>-Zz"}


def said(d: FakeDiscord, text: str) -> bool:
    return any(text in m.plain() for m in d.messages.values() if not m.deleted)


async def test_more_values_than_a_modal_holds_is_refused_privately(tmp_path: Path) -> None:
    async with discord_world(tmp_path) as w:
        w.grant(BOB, "deployer")
        bot = await w.start()
        d = w.discord
        names = " ".join(f"K{i}" for i in range(6))
        command = await d.slash(BOB, "secrets", "set", project="shop", stage="dev", names=names)
        await d.wait_for(lambda: command.answers)
        [answer] = command.answers
        assert answer["type"] == 4 and answer["data"]["flags"] == 64
        assert "One form takes 5 values at most" in d.private_to(BOB)[0]
        assert w.sim.state.apps["shop-dev"].secrets.get("K0") is None
        assert await bot.stop() == 0


async def test_the_real_secrets_set_through_the_modal(tmp_path: Path) -> None:
    """`/fly secrets set` (commands/secrets.py): the modal first, the values at Fly, the
    machines restarted with them in the thread, and the values nowhere else."""
    async with discord_world(tmp_path) as w:
        w.grant(BOB, "deployer")
        bot = await w.start(verbose=True)
        d = w.discord
        command = await d.slash(
            BOB, "secrets", "set", project="shop", stage="dev", names="API_TOKEN DB_PASS"
        )
        await d.wait_for(lambda: d.modal_of(command))
        assert [a["type"] for a in command.answers] == [9]
        modal = d.modal_of(command)
        assert modal is not None
        # someone else submitting that form runs nothing
        other = await d.submit(modal, CAROL, {k: "other-" + v for k, v in VALUES.items()})
        await d.submit(modal, BOB, VALUES)
        kept = w.sim.state.apps["shop-dev"].secrets
        await d.wait_for(lambda: all(name in kept for name in VALUES), timeout=60)
        assert {name: kept[name].value for name in VALUES} == VALUES
        await d.wait_for(
            lambda: any("succeeded" in m.plain() for m in d.messages.values()), timeout=60
        )
        assert other.answers == []
        assert await bot.stop() == 0
        assert "discord.gateway" in bot.log  # discord.py's frame logging was on
        assert "a modal submission" in bot.log
        discord_calls = "\n".join(c.dump() for c in d.calls)
        for value in VALUES.values():
            assert_found_nowhere(
                value, w.database_url, tmp_path, log=bot.log, discord_calls=discord_calls
            )
        check_every_call(d)
