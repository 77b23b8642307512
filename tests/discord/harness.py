"""The Discord tests' world: the Slack world (the Fly simulator with `shop` seeded, the fake
Slack) plus the fake Discord (tests/fakes/discord_api.py), and `flybot run` started as a
real process with DISCORD_TOKEN and FLYBOT_DISCORD_API_URL / FLYBOT_DISCORD_GATEWAY_URL
pointing at the fake; Slack too when a test asks for both."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.store import make_engine, upgrade
from bot.store.principals import IdentityKey, add_grant, ensure_identity
from tests.fakes.discord_api import BOT_TOKEN, GUILD, FakeDiscord, running_fake_discord
from tests.slack.harness import FlybotProcess, SlackWorld, free_port, slack_world
from tests.support import M

ALICE, BOB, CAROL, DAVE, VIC = (
    "1500000000000000001",  # admin
    "1500000000000000002",  # deployer
    "1500000000000000003",  # approver
    "1500000000000000004",  # approver
    "1500000000000000005",  # viewer
)
NAMES = {ALICE: "alice", BOB: "bob", CAROL: "carol", DAVE: "dave", VIC: "vic"}


def dkey(user: str) -> str:
    return f"discord:{GUILD}:{user}"


@dataclass
class DiscordWorld:
    slack_side: SlackWorld
    discord: FakeDiscord

    @property
    def root(self) -> Path:
        return self.slack_side.root

    @property
    def sim(self) -> Any:
        return self.slack_side.sim

    @property
    def database_url(self) -> str:
        return self.slack_side.database_url

    def rows(self, model: type[M]) -> list[M]:
        return self.slack_side.rows(model)

    def grant(self, user: str, role: str, project: str = "shop", stage: str = "*") -> None:
        engine = make_engine(self.database_url)
        try:
            upgrade(engine)
            identity = ensure_identity(engine, IdentityKey.parse(dkey(user)), NAMES[user])
            add_grant(engine, identity.principal_id, role, project, stage, granted_by=None)
        finally:
            engine.dispose()

    async def start(
        self, *, slack: bool = False, verbose: bool = False, entry: str = "bot.cli", **extra: str
    ) -> FlybotProcess:
        port = free_port()
        env = self.slack_side.env(port, **extra)
        if not slack:
            for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "FLYBOT_SLACK_API_URL"):
                env.pop(name, None)
        env.update(
            {
                "DISCORD_TOKEN": BOT_TOKEN,
                "DISCORD_GUILD_ID": GUILD,
                "FLYBOT_DISCORD_API_URL": self.discord.api_url,
                "FLYBOT_DISCORD_GATEWAY_URL": self.discord.gateway_url,
                "FLYBOT_DISCORD_READY_TIMEOUT": "0.1",
                "FLYBOT_ADMINS": dkey(ALICE),
            }
        )
        env.update(extra)
        env = {k: v for k, v in env.items() if v != ""}
        before = len(self.discord.sessions)
        process = FlybotProcess(self.root, port, env, verbose, entry)
        self.slack_side.processes.append(process)
        await process.start()
        await process.wait_healthy()
        await self.discord.wait_for(lambda: len(self.discord.sessions) > before)
        return process


@contextlib.asynccontextmanager
async def discord_world(
    tmp_path: Path, database_url: str | None = None, approvals: int = 1
) -> AsyncIterator[DiscordWorld]:
    async with (
        slack_world(tmp_path, database_url, approvals) as slack_side,
        running_fake_discord() as fake,
    ):
        fake.users.update(NAMES)
        try:
            yield DiscordWorld(slack_side, fake)
        finally:  # the bots stop while their Discord still answers
            for process in slack_side.processes:
                if process.process is not None:
                    await process.stop()
