"""A loopback proxy in front of the Fly simulator that lets a request through to it and then
lies about the outcome: the simulator applies the create, the client sees a 500, a 408 or no
answer in time. That is the ambiguous failure the launch-id check exists for."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from aiohttp import web

_HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection"}


@dataclass
class ApplyThenFail:
    method: str = "POST"
    path: str = r"^/v1/apps/[^/]+/machines$"
    status: int | None = 500  # None: answer nothing until the client gives up
    times: int = 1
    stall: float = 5.0
    # Instead of an error status: a 200 whose body claims gzip and is not (httpx raises
    # DecodingError, which is no transport or HTTP status error).
    corrupt: bool = False
    forwarded: int = 0
    failed: int = 0


@asynccontextmanager
async def apply_then_fail_proxy(upstream: str, rule: ApplyThenFail) -> AsyncIterator[str]:
    upstream_client = httpx.AsyncClient(base_url=upstream, timeout=10)

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        resp = await upstream_client.request(
            request.method, request.path_qs, content=body, headers=headers
        )
        rule.forwarded += 1
        if (
            request.method == rule.method
            and re.match(rule.path, request.path)
            and rule.failed < rule.times
        ):
            rule.failed += 1
            if rule.corrupt:
                return web.Response(
                    body=b"\x00 this is not gzip",
                    status=200,
                    headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
                )
            if rule.status is None:
                await asyncio.sleep(rule.stall)
                return web.Response(status=504)
            return web.json_response({"error": "proxy: applied, then failed"}, status=rule.status)
        out_headers = {
            k: v
            for k, v in resp.headers.items()
            if k.lower() not in _HOP_BY_HOP | {"content-encoding"}
        }
        return web.Response(body=resp.content, status=resp.status_code, headers=out_headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
        await upstream_client.aclose()
