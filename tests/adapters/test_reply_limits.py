"""A reply shrinks to the limits its adapter gives: a 60-machine status (a list: cut with
"… and N more") and a 200-line audit (a code block: split, continued in further messages)
render within Slack's and Discord's limits, losing no audit line."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.discord import render as discord
from adapters.slack import render as slack
from bot.store import audit
from bot.store.models import AuditEntry
from commands.reply import Reply
from tests.adapters.limits_check import check_discord, check_slack, discord_texts, slack_texts
from tests.flyharness import NEW, seed_stage, world
from tests.support import Bot, write_projects

RENDERERS = [
    pytest.param(slack.messages, check_slack, slack_texts, id="slack"),
    pytest.param(discord.messages, check_discord, discord_texts, id="discord"),
]


async def sixty_machine_status(tmp_path: Path) -> Reply:
    async with world(tmp_path) as w:
        staging = w.root / "shop" / "staging.fly.toml"
        await seed_stage(w.fly, w.base_url, staging, NEW, web=40, worker=14, create_app=False)
        outcome, conversation = await w.bot.run("alice", "status shop staging")
        assert outcome.status == "ok", conversation.all_text()
        [reply] = conversation.public
        return reply


@pytest.mark.parametrize(("messages", "check", "texts"), RENDERERS)
async def test_a_sixty_machine_status_fits(
    tmp_path: Path, messages: object, check: object, texts: object
) -> None:
    reply = await sixty_machine_status(tmp_path)
    assert ("Machines", "60") in reply.fields and len(reply.lines) == 62  # 2 groups + 60
    payloads = messages(reply)  # type: ignore[operator]
    assert len(payloads) == 1
    check(payloads[0])  # type: ignore[operator]
    shown = "\n".join(texts(payloads[0]))  # type: ignore[operator]
    assert "web (44)" in shown.replace("\\", "")  # 4 seeded with the stage, 40 more
    if len(shown) < sum(len(line) for line in reply.lines):
        assert " and " in shown and " more" in shown  # a cut list says how much is hidden


def many_entries(bot: Bot, count: int) -> None:
    for n in range(count):
        audit.record(
            bot.engine,
            AuditEntry(
                platform="slack",
                workspace_id="T1",
                user_id=f"U{n:04d}",
                display_name=f"<!channel> person {n} *bold* ```",
                action="deploy",
                project="ping-go",
                stage="prod",
                outcome="refused",
                reason=f"entry {n:03d}: " + "ping-go/prod is locked by someone & others " * 2,
            ),
        )


@pytest.mark.parametrize(("messages", "check", "texts"), RENDERERS)
async def test_a_two_hundred_line_audit_fits_and_loses_no_line(
    tmp_path: Path, messages: object, check: object, texts: object
) -> None:
    bot = Bot.start(
        f"sqlite:///{tmp_path / 'db'}", write_projects(tmp_path), admins=("shell:local:alice",)
    )
    many_entries(bot, 200)
    outcome, conversation = await bot.run("alice", "audit --limit 200")
    assert outcome.status == "ok"
    [reply] = conversation.private
    assert len(reply.code) == 200
    payloads = messages(reply)  # type: ignore[operator]
    assert len(payloads) > 1  # 200 long lines do not fit one message anywhere
    for payload in payloads:
        check(payload)  # type: ignore[operator]
    shown = "\n".join(t for p in payloads for t in texts(p))  # type: ignore[operator]
    found = [n for n in range(200) if f"entry {n:03d}:" in shown]
    assert found == list(range(200))
    assert shown.index("entry 199:") < shown.index("entry 000:")  # newest first, in order


@pytest.mark.parametrize(("messages", "check", "texts"), RENDERERS)
def test_any_reply_shrinks_long_titles_fields_buttons_and_one_huge_line(
    messages: object, check: object, texts: object
) -> None:
    from commands.reply import Button

    reply = Reply(
        text="<&>" * 2000,  # escaping makes it longer than it looks: measured after escaping
        title="T" * 1000,
        fields=tuple((f"field {n}", "v" * 3000) for n in range(30)),
        buttons=tuple(Button("B" * 200, f"a{n}", str(n), f"a {n}") for n in range(8)),
        code=("x" * 20_000,),
    )
    payloads = messages(reply)  # type: ignore[operator]
    for payload in payloads:
        check(payload)  # type: ignore[operator]
    shown = "".join(t for p in payloads for t in texts(p))  # type: ignore[operator]
    assert shown.count("x") >= 20_000  # the one long line is split, not cut
    assert "and 2" in shown  # "… and 21 more" (Slack) / "… and 6 more" (Discord) fields
