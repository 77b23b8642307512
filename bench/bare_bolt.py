"""A bare bolt app for bench/ack.py: the same AsyncApp, signature check and aiohttp serving as
`flybot run`, and a `/fly` listener that only acknowledges.

    SLACK_SIGNING_SECRET=… python bench/bare_bolt.py PORT
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult


async def main(port: int) -> None:
    async def authorize(**_: Any) -> AuthorizeResult:
        return AuthorizeResult(
            enterprise_id=None, team_id="T0FLY", bot_token="xoxb-x", bot_user_id="U", bot_id="B"
        )

    app = AsyncApp(signing_secret=os.environ["SLACK_SIGNING_SECRET"], authorize=authorize)

    @app.command("/fly")
    async def fly(ack: Any) -> None:
        await ack()

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await app.async_dispatch(await to_bolt_request(request)))

    server = web.Application()
    server.router.add_post("/slack/events", events)
    runner = web.AppRunner(server, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
