"""`/fly link`: a Slack and a Discord identity become one principal, confirmed from both sides."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from sqlmodel import select

from bot.clock import FrozenClock, set_clock
from bot.store.engine import session_scope
from bot.store.models import Identity, Principal
from tests.support import Bot, write_projects

SLACK = {"platform": "slack", "workspace": "T0001"}
DISCORD = {"platform": "discord", "workspace": "9001"}


def code_in(text: str) -> str:
    match = re.search(r"[A-Z2-9]{4}-[A-Z2-9]{4}", text)
    assert match, text
    return match.group(0)


async def start_link(bot: Bot) -> str:
    outcome, conversation = await bot.run("U777", "link", **SLACK)
    assert outcome.status == "ok"
    return code_in(conversation.private[0].text)


async def test_linking_joins_two_identities_and_their_roles(tmp_path: Path) -> None:
    bot = Bot.start(
        f"sqlite:///{tmp_path / 'db'}", write_projects(tmp_path), admins=("slack:T0001:UADMIN",)
    )
    await bot.run("UADMIN", "perms grant <@U777|ann> deployer ping-go", **SLACK)
    await bot.run("UADMIN", "perms grant discord:9001:4242 viewer hello", **SLACK)

    code = await start_link(bot)
    outcome, claimed = await bot.run("4242", f"link {code.lower()}", **DISCORD)
    assert outcome.status == "ok"
    assert f"/fly link confirm {code}" in claimed.private[0].text
    outcome, confirmed = await bot.run("U777", f"link confirm {code}", **SLACK)
    assert outcome.status == "ok", confirmed.all_text()
    assert "slack:T0001:U777 and discord:9001:4242 are now one person" in confirmed.private[0].text

    with session_scope(bot.engine) as session:
        identities = list(
            session.exec(select(Identity).where(Identity.user_id.in_(["U777", "4242"])))
        )  # type: ignore[attr-defined]
        assert len({i.principal_id for i in identities}) == 1
    # From Discord, the person now has the Slack identity's deployer role, and vice versa.
    outcome, _ = await bot.run("4242", "lock ping-go prod", **DISCORD)
    assert outcome.status == "ok"
    _, who = await bot.run("U777", "whoami", **SLACK)
    text = who.all_text()
    assert "Linked: discord:9001:4242" in text
    assert "deployer on ping-go/*" in text and "viewer on hello/*" in text


async def test_only_the_starting_side_can_confirm_and_only_once(tmp_path: Path) -> None:
    bot = Bot.start(f"sqlite:///{tmp_path / 'db'}", write_projects(tmp_path))
    code = await start_link(bot)
    _, same = await bot.run("U777", f"link {code}", **SLACK)
    assert "made by this same account" in same.private[0].text
    await bot.run("4242", f"link {code}", **DISCORD)
    _, stolen = await bot.run("666", f"link {code}", **DISCORD)
    assert "No pending link" in stolen.private[0].text
    _, wrong_side = await bot.run("4242", f"link confirm {code}", **DISCORD)
    assert "Only the account that started this link can confirm it." in wrong_side.private[0].text
    outcome, _ = await bot.run("U777", f"link confirm {code}", **SLACK)
    assert outcome.status == "ok"
    again, conversation = await bot.run("U777", f"link confirm {code}", **SLACK)
    assert again.status == "error"
    assert "No pending link" in conversation.private[0].text
    with session_scope(bot.engine) as session:
        assert len(list(session.exec(select(Principal)))) == 2  # U777+4242, and 666


async def test_a_link_code_expires(tmp_path: Path) -> None:
    clock = FrozenClock()
    set_clock(clock)
    bot = Bot.start(f"sqlite:///{tmp_path / 'db'}", write_projects(tmp_path))
    code = await start_link(bot)
    clock.advance(timedelta(minutes=11))
    outcome, conversation = await bot.run("4242", f"link {code}", **DISCORD)
    assert outcome.status == "error"
    assert f"The link code {code} has expired" in conversation.private[0].text
