"""`flybot run` in Slack HTTP mode imports only what that mode uses: no discord.py (no
DISCORD_TOKEN), no matplotlib, no Socket Mode client (no SLACK_APP_TOKEN), and no alembic
when the database is already at the newest migration. What runs a command (the deploy
engine, Fly's client and models, the fly.toml reader, bot.ops, the usage collector) loads
on the first command that needs it, not at start; neither does SQLAlchemy's PostgreSQL
dialect on SQLite. Seen in the process's own `-X importtime` report
(PYTHONPROFILEIMPORTTIME), read from its stderr. How long the start takes is
bench/cold_start.py's to measure, never asserted here."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.slack_api import slash_command
from tests.flyharness import NEW
from tests.slack.harness import BOB, CHANNEL, slack_world

pytestmark = pytest.mark.timeout(120)

NOT_IN_HTTP_MODE = (
    "discord",
    "matplotlib",
    "slack_sdk.socket_mode",
    "slack_bolt.adapter.socket_mode",
    "psycopg",  # the database is SQLite here
)
MIGRATIONS = ("alembic", "mako")
# Loaded by the first command that uses them (bot/lazy.py, bot/fly/__init__.py, and
# commands/context.py's Services.fly and .deployer).
ON_FIRST_USE = (
    "sqlalchemy.dialects.postgresql",  # the database is SQLite here
    "bot.deploy.engine",
    "bot.deploy.flytoml",
    "bot.deploy.plan",
    "bot.fly.client",
    "bot.fly.models",
    "bot.ops",
    "bot.usage.alerts",
    "bot.usage.collector",
    "bot.usage.figures",
    "bot.usage.schedule",
    "httpcore",  # httpx's transport: made with Fly's client
)


def imported(log: str) -> set[str]:
    names = set()
    for line in log.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def under(names: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(n == p or n.startswith(p + ".") for p in prefixes))


async def test_slack_http_mode_at_head_imports_neither_discord_nor_alembic(tmp_path: Path) -> None:
    async with slack_world(tmp_path) as w:
        w.grant(BOB, "deployer")  # migrates the database to the newest revision
        bot = await w.start(PYTHONPROFILEIMPORTTIME="1", DISCORD_TOKEN="")
        assert await bot.stop() == 0
        names = imported(bot.log)
        # The report is read right: what the mode does use is in it.
        assert {"slack_bolt.async_app", "aiohttp.web", "sqlmodel", "bot.runtime.run"} <= names
        assert under(names, NOT_IN_HTTP_MODE + MIGRATIONS) == []


async def test_a_database_behind_the_newest_migration_is_migrated_with_alembic(
    tmp_path: Path,
) -> None:
    async with slack_world(tmp_path) as w:  # a new SQLite file: nothing migrated yet
        bot = await w.start(PYTHONPROFILEIMPORTTIME="1")
        assert await bot.stop() == 0
        names = imported(bot.log)
        assert "alembic" in names
        assert under(names, NOT_IN_HTTP_MODE) == []


async def test_at_healthz_what_runs_commands_is_not_loaded_and_the_first_deploy_loads_it(
    tmp_path: Path,
) -> None:
    async with slack_world(tmp_path) as w:
        w.grant(BOB, "deployer")
        bot = await w.start(PYTHONPROFILEIMPORTTIME="1")
        at_healthz = imported(bot.log)  # the report so far: what start-up imported
        assert {"slack_bolt.async_app", "bot.runtime.run", "commands.deploy"} <= at_healthz
        assert under(at_healthz, ON_FIRST_USE) == []
        slack = w.slack
        async with bot.sender() as send:
            await send.command(slash_command(slack, f"deploy shop staging {NEW}", BOB, "bob"))
            await slack.wait_for(
                lambda: any("succeeded" in m.all_text() for m in slack.channel(CHANNEL)),
                timeout=60,
            )
        assert await bot.stop() == 0
        after = imported(bot.log)
        assert {"bot.deploy.engine", "bot.fly.client", "bot.fly.models"} <= after
