"""What the benchmarks run `flybot run` in: the environment it gets (one builder for every
bench, so they measure the same process), a free loopback port, and the fakes' child process
(the Fly simulator seeded with the demo org, and the fake Slack) for the benches that keep
them out of their own interpreter.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from aiohttp import web  # noqa: E402

from bot.fly.simulator import FlySimulator, serve_in_thread  # noqa: E402
from tests.fakes import discord_api, slack_api  # noqa: E402

# Whatever the caller's shell has set for these would change what `flybot run` starts.
_NOT_INHERITED = (
    "SLACK_APP_TOKEN",
    "DISCORD_TOKEN",
    "DISCORD_GUILD_ID",
    "FLYBOT_DISCORD_API_URL",
    "FLYBOT_DISCORD_GATEWAY_URL",
    "FLYBOT_INSTANCE_ID",
    "PYTHONPROFILEIMPORTTIME",
)


@dataclass(frozen=True)
class DiscordFake:
    """Where the fake Discord (tests/fakes/discord_api.py) listens."""

    api_url: str
    gateway_url: str


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def flybot_env(
    *,
    database_url: str,
    config: Path,
    fly_url: str,
    slack_api_url: str,
    port: int | None = None,
    discord: DiscordFake | None = None,
    admins: tuple[str, ...] = (f"slack:{slack_api.TEAM}:UALICE",),
    **extra: str,
) -> dict[str, str]:
    """`flybot run` in Slack HTTP mode against the fake Slack and the Fly simulator, and
    connected to the fake Discord's gateway when `discord` is given; `admins` are the first
    admins' identity keys. `extra` adds or overrides variables; an empty value removes one."""
    env = {**os.environ}
    for variable in _NOT_INHERITED:
        env.pop(variable, None)
    env.update(
        {
            "FLYBOT_DATABASE_URL": database_url,
            "FLYBOT_CONFIG": str(config),
            "FLY_API_TOKEN": "sandbox-token",
            "FLY_ORG": "demo",
            "FLY_FLAPS_BASE_URL": fly_url,
            "FLY_API_BASE_URL": fly_url,
            "SLACK_BOT_TOKEN": slack_api.BOT_TOKEN,
            "SLACK_SIGNING_SECRET": slack_api.SIGNING_SECRET,
            "FLYBOT_SLACK_API_URL": slack_api_url,
            "FLYBOT_HTTP_HOST": "127.0.0.1",
            "PYTHONPATH": str(REPO),
        }
    )
    if port is not None:
        env["FLYBOT_HTTP_PORT"] = str(port)
    if discord is not None:
        env.update(
            {
                "DISCORD_TOKEN": discord_api.BOT_TOKEN,
                "DISCORD_GUILD_ID": discord_api.GUILD,
                "FLYBOT_DISCORD_API_URL": discord.api_url,
                "FLYBOT_DISCORD_GATEWAY_URL": discord.gateway_url,
                # The fake sends its one guild at once: discord.py need not wait for more.
                "FLYBOT_DISCORD_READY_TIMEOUT": "0.1",
            }
        )
    env["FLYBOT_ADMINS"] = ",".join(admins)
    env.update(extra)
    return {k: v for k, v in env.items() if v != ""}


def serve_fakes(pipe: Connection) -> None:
    """A child process: the Fly simulator (the demo org) and the fake Slack, each on its own
    port, so their work shares neither the bench's interpreter lock nor its event loop.
    Sends (fly_url, slack_url) on `pipe`, then serves until anything is sent back."""
    sim = FlySimulator(seed=0)
    sim.seed_demo()
    fly = serve_in_thread(sim, port=0)

    async def serve() -> None:
        fake = slack_api.FakeSlack()

        async def posted(request: web.Request) -> web.Response:
            return web.Response(text=str(len(fake.calls_to("chat.postMessage"))))

        app = fake.app()
        app.router.add_get("/__posted", posted)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        fake.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        pipe.send((fly.base_url, fake.base_url))
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # until told
        await runner.cleanup()

    asyncio.run(serve())
    fly.stop()
