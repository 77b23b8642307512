"""bench/memory.py's floor, as its own process: import the modules named on the command line
(and nothing of flybot's), build a discord.Client with flybot's intents, and, given
`--discord API_URL GATEWAY_URL`, log it in and connect it to that gateway until READY and
the guild have come; then print VmRSS and VmHWM (kB) as one JSON object.

    python bench/_floor.py [--discord API GATEWAY] module [module …]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
from pathlib import Path


def status_kb() -> dict[str, int]:
    found: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


async def connected(client: object, token: str, api_url: str, gateway_url: str) -> None:
    import discord
    import yarl
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

    assert isinstance(client, discord.Client)
    Route.BASE = api_url
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)
    ready = asyncio.Event()
    client.event(_setter(ready))
    await client.login(token)
    gateway = asyncio.create_task(client.connect(reconnect=False))
    await asyncio.wait_for(ready.wait(), 30)
    await asyncio.sleep(1)  # as flybot's idle figure: the connection settled
    print(json.dumps(status_kb()), flush=True)
    await client.close()
    gateway.cancel()


def _setter(ready: asyncio.Event) -> object:
    async def on_ready() -> None:
        ready.set()

    return on_ready


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--discord", nargs=2, metavar=("API_URL", "GATEWAY_URL"))
    parser.add_argument("--token", default="")
    parser.add_argument("modules", nargs="+")
    args = parser.parse_args()
    for name in args.modules:
        importlib.import_module(name)
    import discord

    client = discord.Client(intents=discord.Intents(guilds=True), guild_ready_timeout=0.1)
    if args.discord is None:
        print(json.dumps(status_kb()), flush=True)
        return
    asyncio.run(connected(client, args.token, *args.discord))


if __name__ == "__main__":
    main()
