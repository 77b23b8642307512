"""Benchmark: peak memory (RSS) of `flybot run` with Slack (HTTP mode, against the fake
Slack), Discord (connected to the fake Discord's gateway, its /fly command put to the guild)
and the scheduler running, idle and then after a Discord `/fly status` and a 12-machine
rolling deploy through a Slack command against the Fly simulator, beside the floor in the
same run. The fakes run in this process; flybot is `python -m bot.cli run`, with the
environment every bench gives it (bench/_world.py).

The floor (bench/_floor.py, its own process): the libraries Slack HTTP mode needs (FLOOR in
bench/cold_start.py) and discord.py imported, and a discord.Client with flybot's intents
logged in and connected to a fake Discord gateway. Connected, because a gateway connection
is discord.py's own memory (its websocket, the zlib stream, the READY and guild caches) that
any bot serving Discord holds; counting it against flybot would not be fair. What it costs
is printed beside it: the floor with the client built and not connected.

The database is a SQLite file at the newest migration (as on a Fly volume from the second
start on); `--fresh-database` starts on an empty one instead, which that start migrates.
`--deploys N` deploys N times in a row (the image back and forth), printing after each.

Both processes run with the environment the image ships (SHIPPED_ENV: glibc's malloc arenas
as the Dockerfile and fly.toml set them), so the figures are those of what ships.

Read from /proc/<pid>/status: VmRSS (now) and VmHWM (the peak so far). Target: flybot's
peak ≤ 1.25× the floor's.

    python bench/memory.py [--fresh-database] [--deploys 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _world import DiscordFake, flybot_env, free_port  # noqa: E402
from cold_start import FLOOR, FLY_TRANSPORT  # noqa: E402

from tests.fakes import discord_api  # noqa: E402
from tests.fakes.discord_api import FakeDiscord, Interaction, running_fake_discord  # noqa: E402
from tests.fakes.slack_api import TEAM, slash_command  # noqa: E402
from tests.flyharness import NEW, OLD, fly_client, seed_stage  # noqa: E402
from tests.slack.harness import (  # noqa: E402
    ALICE,
    CHANNEL,
    FlybotProcess,
    SlackWorld,
    slack_world,
)

MACHINES = 12
FLOOR_IMPORTS = (*FLOOR, *FLY_TRANSPORT, "discord")
DISCORD_ALICE = "1500000000000000001"
# The allocator settings the Dockerfile's final stage and fly.toml's [env] give flybot
# (tests/runtime/test_image.py checks the three agree).
SHIPPED_ENV = {"MALLOC_ARENA_MAX": "1"}


def memory_kb(pid: int) -> dict[str, int]:
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


async def floor_kb(discord: DiscordFake | None) -> dict[str, int]:
    args = [sys.executable, str(REPO / "bench" / "_floor.py"), "--token", discord_api.BOT_TOKEN]
    if discord is not None:
        args += ["--discord", discord.api_url, discord.gateway_url]
    process = await asyncio.create_subprocess_exec(
        *args, *FLOOR_IMPORTS, stdout=subprocess.PIPE, cwd=REPO, env={**os.environ, **SHIPPED_ENV}
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"the floor exited {process.returncode}")
    found: dict[str, int] = json.loads(out.decode().strip().splitlines()[-1])
    return found


def answered(d: FakeDiscord, interaction: Interaction) -> bool:
    shown = d.messages.get(interaction.original or "")
    return shown is not None and not shown.loading


Phase = Callable[[str, int], Awaitable[None]]


async def deploy(w: SlackWorld, bot: FlybotProcess, image: str, n: int) -> None:
    """The n-th deploy of the run: `/fly deploy shop dev <image>` through Slack, until the
    channel says it succeeded and every machine has been updated once more."""
    before = len(w.sim.calls_for("Machines_update"))
    form = slash_command(w.slack, f"deploy shop dev {image}", ALICE, "alice")
    async with bot.sender() as send:
        assert await send.command(form) == (200, "")

    def succeeded() -> int:
        top = [m for m in w.slack.channel(CHANNEL) if m.thread_ts is None]
        return sum("succeeded" in m.all_text() for m in top)

    try:
        await w.slack.wait_for(lambda: succeeded() >= n, 120)
    except AssertionError:
        said = [m.all_text() for m in w.slack.channel(CHANNEL)]
        raise SystemExit(f"deploy {n} did not succeed: {said}\n{bot.log}") from None
    updates = len(w.sim.calls_for("Machines_update")) - before
    if updates != MACHINES:
        raise SystemExit(f"deploy {n}: {updates} machines updated, not {MACHINES}:\n{bot.log}")


async def scenario(
    at: Phase,
    entry: str = "bot.cli",
    fresh_database: bool = False,
    deploys: int = 1,
    **extra: str,
) -> None:
    """The world, `flybot run` (`python -m <entry> run`) in it, and `at(phase, pid)` awaited
    at "idle" (healthy, Slack and Discord connected, the scheduler's first asks done) and at
    "deployed" (after a Discord /fly status and the 12-machine deploy through Slack), and
    at "deployed <n>" after each further deploy (the image back and forth). The
    database is at the newest migration before the start, unless `fresh_database`."""
    with tempfile.TemporaryDirectory(prefix="flybot-bench-memory-") as scratch:
        root = Path(scratch)
        async with slack_world(root) as w, running_fake_discord() as d:
            fake = DiscordFake(d.api_url, d.gateway_url)
            fly = fly_client(w.fly_url)  # dev has 3 machines (2 web, 1 worker): 9 more web
            await seed_stage(fly, w.fly_url, root / "shop" / "fly.toml", OLD, 9, 0, False)
            await fly.aclose()
            port = free_port()
            env = flybot_env(
                database_url=w.database_url,
                config=w.config,
                fly_url=w.fly_url,
                slack_api_url=w.slack.api_url,
                port=port,
                discord=fake,
                admins=(f"slack:{TEAM}:{ALICE}", f"discord:{discord_api.GUILD}:{DISCORD_ALICE}"),
                HOME=str(root),
                **{**SHIPPED_ENV, **extra},
            )
            if not fresh_database:  # at the newest migration, as a volume after a first start
                upgraded = await asyncio.create_subprocess_exec(
                    *(sys.executable, "-m", "bot.cli", "db", "upgrade"),
                    env=env,
                    cwd=root,
                    stdout=subprocess.DEVNULL,
                )
                if await upgraded.wait() != 0:
                    raise SystemExit("flybot db upgrade failed")
            bot = FlybotProcess(root, port, env, entry=entry)
            w.processes.append(bot)
            await bot.start()
            await bot.wait_healthy(180)  # healthy: Slack and Discord both connected
            assert bot.process is not None and d.connected()
            pid = bot.process.pid
            await asyncio.sleep(3)  # idle: the scheduler's first asks have run
            await at("idle", pid)
            status = await d.slash(DISCORD_ALICE, "status", project="shop", stage="dev")
            await d.wait_for(lambda: answered(d, status), 60)
            for n in range(1, deploys + 1):
                await deploy(w, bot, NEW if n % 2 else OLD, n)
                await at("deployed" if n == 1 else f"deployed {n}", pid)
            assert await bot.stop() == 0


async def bench(fresh_database: bool, deploys: int) -> None:
    seen: dict[str, dict[str, int]] = {}

    async def at(phase: str, pid: int) -> None:
        seen[phase] = memory_kb(pid)

    await scenario(at, fresh_database=fresh_database, deploys=deploys)
    async with running_fake_discord() as d:
        floor = await floor_kb(DiscordFake(d.api_url, d.gateway_url))
    unconnected = await floor_kb(None)
    load = os.getloadavg()[0]
    print(f"peak RSS, Slack HTTP mode + Discord (connected) + scheduler (load average {load:.2f})")
    database = "empty at the start" if fresh_database else "at the newest migration"
    print(f"  database: SQLite, {database}")
    shipped = " ".join(f"{k}={v}" for k, v in SHIPPED_ENV.items())
    print(f"  environment as the image ships it, for flybot and the floor: {shipped}")
    print(f"  floor: import {', '.join(FLOOR_IMPORTS)}")
    print("         + a discord.Client logged in and connected to a fake Discord gateway")
    print(f"         RSS {floor['VmRSS'] / 1024:6.1f} MB   peak {floor['VmHWM'] / 1024:6.1f} MB")
    print(
        f"         (not connected: peak {unconnected['VmHWM'] / 1024:6.1f} MB; connecting adds"
        f" {(floor['VmHWM'] - unconnected['VmHWM']) / 1024:.1f} MB)"
    )
    for phase, figures in seen.items():
        name = {"idle": "idle", "deployed": "deployed"}.get(
            phase, phase.replace("deployed ", "deploy #")
        )
        print(
            f"  flybot {name:<10} RSS {figures['VmRSS'] / 1024:6.1f} MB   peak "
            f"{figures['VmHWM'] / 1024:6.1f} MB   ratio {figures['VmHWM'] / floor['VmHWM']:.2f}×"
        )
    print(
        f"  (each deploy: {MACHINES} machines updated; a Discord /fly status before the first)"
        "   (target ≤ 1.25×)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fresh-database",
        action="store_true",
        help="start on an empty database (this start migrates it) instead of one at head",
    )
    parser.add_argument(
        "--deploys", type=int, default=1, help="deploys in a row (the image back and forth)"
    )
    options = parser.parse_args()
    asyncio.run(bench(options.fresh_database, options.deploys))
