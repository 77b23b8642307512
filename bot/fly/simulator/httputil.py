"""Small helpers shared by the simulator's HTTP handlers."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bot.fly.simulator.sim import FlySimulator
from bot.fly.simulator.state import invalid

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SIM_KEY = web.AppKey("sim", FlySimulator)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d))


def error_response(status: int, message: str, code: str = "unknown") -> web.Response:
    return json_response({"error": message, "status": code}, status)


def flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


async def read_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise invalid("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise invalid("the request body must be a JSON object")
    return data


def sim_of(request: web.Request) -> FlySimulator:
    return request.app[SIM_KEY]
