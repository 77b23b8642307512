"""A stand-in for Fly's proxy in front of one app's machines, on 127.0.0.1: it forwards each
request to a machine and follows a `fly-replay` answer as Fly's proxy does (Dynamic Request
Routing): `elsewhere=true` replays the request, body and headers, to another machine with
`fly-replay-src: instance=<the responder>` added; when there is no other machine and the
answer says `fallback=force_self`, the request goes back to the responder with
`fly-replay-failed`; without a fallback the client gets the proxy's own 502.

    async with running_fly_proxy() as proxy:
        proxy.machines = [("m-one", bot_one.url), ("m-two", bot_two.url)]  # first: picked first
        url = proxy.url + "/slack/events"
        proxy.hops               # (machine id, status) of every request sent on, in order
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection"}


def replay_fields(value: str) -> dict[str, str]:
    fields = {}
    for part in value.split(";"):
        name, _, field = part.strip().partition("=")
        if name:
            fields[name.strip()] = field.strip().strip('"')
    return fields


class FakeFlyProxy:
    def __init__(self) -> None:
        self.machines: list[tuple[str, str]] = []  # (machine id, base URL), in pick order
        self.hops: list[tuple[str, int]] = []
        self.url = ""
        self.session: aiohttp.ClientSession | None = None

    async def _send(
        self, machine: tuple[str, str], request: web.Request, body: bytes, extra: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        assert self.session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers.update(extra)
        url = machine[1] + request.path_qs
        async with self.session.request(
            request.method, url, data=body, headers=headers
        ) as response:
            answer = await response.read()
            self.hops.append((machine[0], response.status))
            return response.status, dict(response.headers), answer

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        first = self.machines[0]
        status, headers, answer = await self._send(first, request, body, {})
        replay = headers.get("fly-replay") or headers.get("Fly-Replay")
        if replay:
            fields = replay_fields(replay)
            others = [m for m in self.machines if m != first] if fields.get("elsewhere") else []
            stamp = f"t={int(time.time() * 1_000_000)}"
            if others:
                src = f"instance={first[0]};region=nrt;{stamp}"
                status, headers, answer = await self._send(
                    others[0], request, body, {"fly-replay-src": src}
                )
            elif fields.get("fallback") in ("force_self", "prefer_self"):
                failed = f"reason=no_candidates;instance={first[0]};{stamp}"
                status, headers, answer = await self._send(
                    first, request, body, {"fly-replay-failed": failed}
                )
            else:
                return web.Response(status=502, text="fly-proxy: no machine to replay to")
        kept = {
            k: v
            for k, v in headers.items()
            if k.lower() not in HOP_BY_HOP and k.lower() != "fly-replay"
        }
        return web.Response(status=status, body=answer, headers=kept)


@contextlib.asynccontextmanager
async def running_fly_proxy(host: str = "127.0.0.1") -> AsyncIterator[FakeFlyProxy]:
    proxy = FakeFlyProxy()
    app = web.Application(client_max_size=1024 * 1024)  # Fly replays nothing larger
    app.router.add_route("*", "/{path:.*}", proxy.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    proxy.url = f"http://{host}:{runner.addresses[0][1]}"
    proxy.session = aiohttp.ClientSession(auto_decompress=False)
    try:
        yield proxy
    finally:
        await proxy.session.close()
        await runner.cleanup()
