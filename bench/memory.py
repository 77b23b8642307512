"""Benchmark: peak memory (RSS) of `flybot run` with Slack (HTTP mode, against the fake Slack),
discord.py loaded (bench/discord_loaded.py: `run` serves no Discord yet) and the scheduler
running, idle and then through a 12-machine rolling deploy against the Fly simulator, beside
the floor: a process importing the same libraries and nothing else, in the same run.

Read from /proc/<pid>/status: VmRSS (now) and VmHWM (the peak so far). Target: flybot's
peak ≤ 1.25× the floor's.

    python bench/memory.py
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from cold_start import FLOOR  # noqa: E402

from tests.fakes.slack_api import slash_command  # noqa: E402
from tests.flyharness import NEW, OLD, fly_client, seed_stage  # noqa: E402
from tests.slack.harness import ALICE, CHANNEL, FlybotProcess, free_port, slack_world  # noqa: E402

MACHINES = 12
FLOOR_IMPORTS = (*FLOOR, "discord")


def memory_kb(pid: int) -> dict[str, int]:
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


def floor_kb() -> dict[str, int]:
    code = (
        f"import {', '.join(FLOOR_IMPORTS)}; import discord as d; "
        "d.Client(intents=d.Intents.default()); "
        "print(open('/proc/self/status').read())"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    found: dict[str, int] = {}
    for line in out.stdout.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


async def bench() -> None:
    with tempfile.TemporaryDirectory(prefix="flybot-bench-memory-") as scratch:
        root = Path(scratch)
        async with slack_world(root) as w:
            fly = fly_client(w.fly_url)  # dev has 3 machines (2 web, 1 worker): 9 more web
            await seed_stage(fly, w.fly_url, root / "shop" / "fly.toml", OLD, 9, 0, False)
            await fly.aclose()
            port = free_port()
            bot = FlybotProcess(root, port, w.env(port), entry="bench.discord_loaded")
            w.processes.append(bot)
            await bot.start()
            await bot.wait_healthy()
            assert bot.process is not None
            pid = bot.process.pid
            await asyncio.sleep(3)  # idle: the scheduler's first asks have run
            idle = memory_kb(pid)
            form = slash_command(w.slack, f"deploy shop dev {NEW}", ALICE, "alice")
            async with bot.sender() as send:
                assert await send.command(form) == (200, "")
            try:
                await w.slack.wait_for(
                    lambda: any(
                        "succeeded" in m.all_text()
                        for m in w.slack.channel(CHANNEL)
                        if m.thread_ts is None
                    ),
                    120,
                )
            except AssertionError:
                said = [m.all_text() for m in w.slack.channel(CHANNEL)]
                raise SystemExit(f"the deploy did not succeed: {said}\n{bot.log}") from None
            updates = len(w.sim.calls_for("Machines_update"))
            deployed = memory_kb(pid)
            assert await bot.stop() == 0
    floor = floor_kb()
    load = os.getloadavg()[0]
    print(f"peak RSS, Slack HTTP mode + discord.py + scheduler (load average {load:.2f})")
    print(f"  floor: python -c 'import {', '.join(FLOOR_IMPORTS)}' + a discord.Client")
    print(f"         RSS {floor['VmRSS'] / 1024:6.1f} MB   peak {floor['VmHWM'] / 1024:6.1f} MB")
    print(
        f"  flybot idle      RSS {idle['VmRSS'] / 1024:6.1f} MB   peak {idle['VmHWM'] / 1024:6.1f}"
        f" MB   ratio {idle['VmHWM'] / floor['VmHWM']:.2f}×"
    )
    print(
        f"  flybot deployed  RSS {deployed['VmRSS'] / 1024:6.1f} MB   peak "
        f"{deployed['VmHWM'] / 1024:6.1f} MB   ratio {deployed['VmHWM'] / floor['VmHWM']:.2f}×"
        f"   ({MACHINES} machines, {updates} updates)   (target ≤ 1.25×)"
    )


if __name__ == "__main__":
    asyncio.run(bench())
