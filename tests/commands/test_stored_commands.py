"""The audit log and approval requests keep the command as flybot parsed it, with sensitive
values masked by their declared kind — never the raw line; the shell's history file never
keeps a line whose verb takes sensitive input."""

from __future__ import annotations

import re
from pathlib import Path

from sqlmodel import col, select

from bot.store.engine import session_scope
from bot.store.models import ApprovalRequest, AuditEntry
from tests.flyharness import NEW, world
from tests.support import Bot, write_projects

SLACK = {"platform": "slack", "workspace": "T0001"}
DISCORD = {"platform": "discord", "workspace": "9001"}


def audited(bot: Bot) -> list[AuditEntry]:
    with session_scope(bot.engine) as session:
        return list(session.exec(select(AuditEntry).order_by(col(AuditEntry.id))))


async def test_link_codes_are_masked_in_the_audit_log(tmp_path: Path) -> None:
    bot = Bot.start(f"sqlite:///{tmp_path / 'db'}", write_projects(tmp_path))
    _, started = await bot.run("U777", "link", **SLACK)
    match = re.search(r"[A-Z2-9]{4}-[A-Z2-9]{4}", started.private[0].text)
    assert match
    code = match.group(0)
    await bot.run("4242", f"link {code.lower()}", **DISCORD)
    await bot.run("U777", f"link confirm {code}", **SLACK)
    entries = audited(bot)
    assert [e.command for e in entries] == ["link", "link •••", "link confirm •••"]
    raw = code.replace("-", "")
    for entry in entries:
        assert code not in entry.command and raw not in entry.command.upper().replace("-", "")


async def test_the_audit_log_keeps_the_parsed_command_not_the_typed_line(tmp_path: Path) -> None:
    bot = Bot.start(
        f"sqlite:///{tmp_path / 'db'}", write_projects(tmp_path), admins=("shell:local:alice",)
    )
    await bot.run("alice", "/fly   lock ping-go prod “db  migration” --for=90m")
    await bot.run("alice", "perms grant <@U1|ann> Viewer ping-go", **SLACK)
    commands = [e.command for e in audited(bot)]
    assert commands[0] == "lock ping-go prod 'db  migration' --for 1h30m"
    assert commands[1] == "perms grant slack:T0001:U1 viewer ping-go"


async def test_an_approval_request_keeps_the_parsed_command(tmp_path: Path) -> None:
    async with world(tmp_path, admins=("shell:local:alice",)) as w:
        outcome, _ = await w.bot.run("alice", f"/fly  deploy   shop prod {NEW}  --strategy=Canary")
        assert outcome.status == "awaiting"
        with session_scope(w.services.engine) as session:
            [request] = session.exec(select(ApprovalRequest)).all()
        assert request.command == f"deploy shop prod {NEW} --strategy canary"


def test_a_guardable_verb_cannot_take_a_sensitive_parameter() -> None:
    """An approval request keeps the masked line, so a guarded verb with a sensitive
    parameter could only be stored with its value or run without it: it is refused when it
    is registered (secret values travel beside the invocation instead, `asks_value`)."""
    import pytest

    from commands.context import CommandContext
    from commands.kinds import LINK_CODE
    from commands.registry import Param, Registry, command

    async def handler(ctx: CommandContext) -> None:
        raise AssertionError("never run")

    guarded = command("toyguarded", summary="x", params=(Param("code", LINK_CODE),), guardable=True)
    with pytest.raises(ValueError, match="guardable with a sensitive parameter"):
        Registry().add(guarded(handler))
    plain = command("toyplain", summary="x", params=(Param("code", LINK_CODE),))
    registry = Registry()
    registry.add(plain(handler))
    assert ("toyplain",) in registry.commands
