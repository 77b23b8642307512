"""The Slack tests' world: the Fly simulator with the `shop` project seeded (tests/flyharness),
the fake Slack (tests/fakes/slack_api.py), and `flybot run` started as a real process, or
the same server in this process when a test needs a verb of its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bot.store import make_engine, upgrade
from bot.store.principals import IdentityKey, add_grant, ensure_identity
from tests.fakes.slack_api import (
    APP_TOKEN,
    BOT_TOKEN,
    SIGNING_SECRET,
    TEAM,
    FakeSlack,
    SlackSender,
    running_fake_slack,
)
from tests.flyharness import OLD, fly_client, seed_stage, simulator, write_project
from tests.support import REPO, M, table_rows

ALICE, BOB, CAROL, VIC = "UALICE", "UBOB", "UCAROL", "UVIC"  # admin, deployer, approver, viewer
NAMES = {ALICE: "alice", BOB: "bob", CAROL: "carol", VIC: "vic"}
CHANNEL = "C0DEPLOY"

FAST_ENV = {
    "FLYBOT_DEPLOY_HEARTBEAT": "0.3",
    "FLYBOT_DEPLOY_STALE_AFTER": "3",
    "FLYBOT_DEPLOY_SWEEP_EVERY": "1",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def key(user: str) -> str:
    return f"slack:{TEAM}:{user}"


@dataclass
class SlackWorld:
    root: Path
    slack: FakeSlack
    sim: Any
    fly_url: str
    config: Path
    database_url: str
    processes: list[FlybotProcess] = field(default_factory=list)

    def grant(self, user: str, role: str, project: str = "shop", stage: str = "*") -> None:
        engine = make_engine(self.database_url)
        try:
            upgrade(engine)
            identity = ensure_identity(engine, IdentityKey.parse(key(user)), NAMES[user])
            add_grant(engine, identity.principal_id, role, project, stage, granted_by=None)
        finally:
            engine.dispose()

    def rows(self, model: type[M]) -> list[M]:
        """The rows of `model`'s table in the database the processes share."""
        return table_rows(self.database_url, model)

    def env(self, port: int, **extra: str) -> dict[str, str]:
        env = {
            **os.environ,
            **FAST_ENV,
            "FLYBOT_DATABASE_URL": self.database_url,
            "FLYBOT_CONFIG": str(self.config),
            "FLYBOT_ADMINS": key(ALICE),
            "FLY_API_TOKEN": "test-token",
            "FLY_ORG": "demo",
            "FLY_FLAPS_BASE_URL": self.fly_url,
            "FLY_API_BASE_URL": self.fly_url,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "FLYBOT_SLACK_API_URL": self.slack.api_url,
            "FLYBOT_HTTP_HOST": "127.0.0.1",
            "FLYBOT_HTTP_PORT": str(port),
            "HOME": str(self.root),
            "PYTHONPATH": str(REPO),
        }
        env.pop("SLACK_APP_TOKEN", None)
        env.pop("FLYBOT_INSTANCE_ID", None)
        env.update(extra)
        return {k: v for k, v in env.items() if v != ""}

    async def start(
        self,
        *,
        socket_mode: bool = False,
        verbose: bool = False,
        entry: str = "bot.cli",
        **extra: str,
    ) -> FlybotProcess:
        port = free_port()
        if socket_mode:
            extra.setdefault("SLACK_APP_TOKEN", APP_TOKEN)
        process = FlybotProcess(self.root, port, self.env(port, **extra), verbose, entry)
        self.processes.append(process)
        await process.start()
        await process.wait_healthy()
        return process


@dataclass
class FlybotProcess:
    root: Path
    port: int
    env: dict[str, str]
    verbose: bool = False
    entry: str = "bot.cli"  # the module run with -m: the flybot command line
    process: asyncio.subprocess.Process | None = None
    stderr_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def events_url(self) -> str:
        return f"{self.url}/slack/events"

    def sender(self) -> SlackSender:
        return SlackSender(self.events_url)

    async def start(self) -> None:
        self.stderr_path = self.root / f"flybot-{self.port}.log"
        args = [sys.executable, "-m", self.entry, *(["-v"] if self.verbose else []), "run"]
        with self.stderr_path.open("wb") as stderr:
            self.process = await asyncio.create_subprocess_exec(
                *args,
                env=self.env,
                cwd=self.root,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
            )

    @property
    def log(self) -> str:
        assert self.stderr_path is not None
        return self.stderr_path.read_text(errors="replace")

    def records(self) -> list[dict[str, Any]]:
        """The log, one JSON object per line (stderr is no terminal here); a line still being
        written (no newline yet) is left for the next read."""
        complete = self.log.rsplit("\n", 1)[0] if not self.log.endswith("\n") else self.log
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    async def health(self) -> int:
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{self.url}/healthz") as response,
            ):
                return response.status
        except aiohttp.ClientError:
            return 0

    async def wait_healthy(self, timeout: float = 45.0) -> None:
        assert self.process is not None
        deadline = asyncio.get_running_loop().time() + timeout
        while await self.health() != 200:
            if self.process.returncode is not None:
                raise AssertionError(f"flybot run exited {self.process.returncode}:\n{self.log}")
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"flybot run never became healthy:\n{self.log}")
            await asyncio.sleep(0.1)

    async def stop(self) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        assert self.process.returncode is not None
        return self.process.returncode


@contextlib.asynccontextmanager
async def slack_world(
    tmp_path: Path, database_url: str | None = None, approvals: int = 1
) -> AsyncIterator[SlackWorld]:
    sim = simulator.FlySimulator(seed=11, timing=simulator.SimulatorTiming.fast())
    async with simulator.running_simulator(sim, port=0) as server, running_fake_slack() as slack:
        fly = fly_client(server.base_url)
        config = write_project(tmp_path, approvals)
        await asyncio.gather(
            *(
                seed_stage(fly, server.base_url, tmp_path / "shop" / name, OLD, web=2, worker=1)
                for name in ("fly.toml", "staging.fly.toml", "prod.fly.toml")
            )
        )
        await fly.aclose()
        sim.calls.clear()
        for user, name in NAMES.items():
            slack.users[user] = name
        world = SlackWorld(
            tmp_path,
            slack,
            sim,
            server.base_url,
            config,
            database_url or f"sqlite:///{tmp_path / 'flybot.db'}",
        )
        try:
            yield world
        finally:
            for process in world.processes:
                if process.process is not None:
                    await process.stop()
