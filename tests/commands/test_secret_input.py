"""Secret input is declared up front: the adapter learns from the line alone which values to
ask for privately, the values travel beside the invocation (never in its text), and only the
handler sees them — not the audit log, an approval request, a reply, the log or the shell's
screen."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from rich.console import Console

from adapters.shell.session import ShellSession
from bot.projects import load_catalog
from bot.runtime import build_services
from bot.settings import Settings
from commands import approvals
from commands.context import CommandContext, Services
from commands.dispatch import Dispatcher
from commands.kinds import PROJECT, SECRET_NAME, STAGE
from commands.port import Invocation
from commands.registry import Param, Registry, command
from commands.roles import Role
from tests.support import Bot, snapshot, write_projects

VALUE = "hunter2-Zq9xV7"  # the secret: found nowhere but in the handler
received: list[dict[str, str]] = []


@command(
    "secrets",
    "toy",
    summary="A toy verb with secret input.",
    params=(
        Param("project", PROJECT),
        Param("stage", STAGE),
        Param("names", SECRET_NAME, many=True, asks_value=True),
    ),
    role=Role.deployer,
    guardable=True,
)
async def set_secrets(ctx: CommandContext) -> None:
    received.append(dict(ctx.secrets))
    await ctx.say(f"set {', '.join(ctx.secrets)} on {ctx.args['project']}/{ctx.args['stage']}")


def registry() -> Registry:
    found = Registry()
    found.add_all([set_secrets, approvals.approve])
    return found


def toy_bot(tmp_path: Path) -> Bot:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'db'}",
        config_path=write_projects(tmp_path),
        admins=("shell:local:alice", "shell:local:carol"),
    )
    bot = Bot(build_services(settings))
    bot.services.registry = registry()
    received.clear()
    return bot


def everything(bot: Bot, *more: str) -> str:
    return repr(snapshot(bot.engine)) + "\n".join(more)


def test_the_adapter_learns_the_secret_names_from_the_line_alone(tmp_path: Path) -> None:
    services = Services(
        engine=None,  # type: ignore[arg-type]  # asking touches no database and no Fly
        catalog=load_catalog(write_projects(tmp_path)),
        settings=Settings(),
        registry=registry(),
    )
    dispatcher = Dispatcher(services)
    line = Invocation("slack", "T1", "C1", "U1", "ann", "secrets toy ping-go prod API_TOKEN DB_URL")
    asked = dispatcher.secret_request(line)
    assert asked is not None and asked.names == ("API_TOKEN", "DB_URL")
    assert asked.title == "secrets toy ping-go/prod"
    assert dispatcher.secret_request(Invocation("slack", "T1", "C1", "U1", "a", "help")) is None


async def test_values_reach_only_the_handler(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bot = toy_bot(tmp_path)
    with caplog.at_level(logging.DEBUG):
        outcome, conversation = await bot.run(
            "alice", "secrets toy ping-go dev API_TOKEN", secrets={"API_TOKEN": VALUE}
        )
    assert outcome.status == "ok", conversation.all_text()
    assert received == [{"API_TOKEN": VALUE}]
    assert VALUE not in everything(bot, conversation.all_text(), caplog.text)
    assert "API_TOKEN" in conversation.all_text()


async def test_a_value_in_the_text_is_refused_before_anything_is_stored(tmp_path: Path) -> None:
    bot = toy_bot(tmp_path)
    await bot.run("alice", "whoami")  # alice's identity exists before the snapshot
    before = snapshot(bot.engine)
    outcome, conversation = await bot.run("alice", f"secrets toy ping-go dev API_TOKEN={VALUE}")
    assert outcome.status == "usage" and received == []
    assert "puts a secret's value in the command text" in conversation.all_text()
    assert "`/fly secrets toy ping-go dev API_TOKEN`" in conversation.all_text()
    assert VALUE not in conversation.all_text()
    after = snapshot(bot.engine)
    [entry] = after.pop("audit_entry")  # the attempt, audited with the name only
    assert "secrets toy ping-go dev API_TOKEN" in entry and "refused" in entry
    before.pop("audit_entry")
    assert after == before and VALUE not in repr(entry)


async def test_missing_or_unasked_values_are_usage_errors(tmp_path: Path) -> None:
    bot = toy_bot(tmp_path)
    missing, conversation = await bot.run(
        "alice", "secrets toy ping-go dev A B", secrets={"A": "1"}
    )
    assert missing.status == "usage" and "No value was given for B" in conversation.all_text()
    extra, conversation = await bot.run("alice", "approve 1", secrets={"A": "1"})
    assert extra.status == "usage" and "takes no secret values" in conversation.all_text()
    assert received == []


async def test_a_guarded_request_holds_the_values_in_memory_only(tmp_path: Path) -> None:
    bot = toy_bot(tmp_path)
    asked, card = await bot.run(
        "alice", "secrets toy ping-go prod API_TOKEN", secrets={"API_TOKEN": VALUE}
    )
    assert asked.status == "awaiting" and received == []
    assert "a restart of flybot drops them" in card.all_text()
    assert VALUE not in everything(bot, card.all_text())
    done, conversation = await bot.run("carol", "approve 1")
    assert done.status == "ok", conversation.all_text()
    assert received == [{"API_TOKEN": VALUE}] and bot.services.held_secrets == {}
    assert VALUE not in everything(bot, conversation.all_text())


async def test_a_restart_drops_held_values_and_the_request_fails(tmp_path: Path) -> None:
    bot = toy_bot(tmp_path)
    await bot.run("alice", "secrets toy ping-go prod API_TOKEN", secrets={"API_TOKEN": VALUE})
    restarted = Bot(build_services(bot.services.settings))
    restarted.services.registry = registry()
    _, conversation = await restarted.run("carol", "approve 1")
    assert received == []
    assert "its secret values are gone" in conversation.all_text()


async def test_the_shell_asks_without_echo_before_it_runs(tmp_path: Path) -> None:
    bot = toy_bot(tmp_path)
    screen = io.StringIO()
    session = ShellSession(Dispatcher(bot.services), "alice", Console(file=screen, width=200))
    await session.run_script(io.StringIO(f"secrets toy ping-go dev API_TOKEN\n{VALUE}\nwhoami\n"))
    assert received == [{"API_TOKEN": VALUE}]
    assert "value of API_TOKEN (hidden): ********" in screen.getvalue()
    assert VALUE not in screen.getvalue()
