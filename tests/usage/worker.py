"""One bot process for the two-process tests: `python -m tests.usage.worker '<json>'`.

It builds the services as `flybot run` does (its own engine, migrations, flybot.toml), talks
to the test's Fly simulator and fake Slack over 127.0.0.1 with a real SlackOutbox, freezes
its clock at `now`, waits at a barrier until every process is ready (so they race), runs one
scheduled job
(`reports` or `alerts`) and prints what it did as JSON."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from adapters.slack.conversation import SlackOutbox, web_client
from bot.clock import FrozenClock, set_clock
from bot.runtime import build_services
from bot.settings import Settings
from commands.usage import check_alerts, send_due_reports


async def main(args: dict[str, Any]) -> dict[str, Any]:
    set_clock(FrozenClock(datetime.fromisoformat(args["now"])))
    settings = Settings(
        database_url=args["database_url"],
        config_path=Path(args["config"]),
        fly_org=args["org"],
        fly_flaps_base_url=args["fly_url"],
        fly_api_base_url=args["fly_url"],
        fly_api_token="test-token",
    )
    services = build_services(settings)
    slack = web_client("xoxb-fake-bot-token", args["slack_url"])
    services.router.register("slack", SlackOutbox(slack, args["team"]))
    # A barrier: every process set up (imports, migrations), then all go at once.
    ready = Path(args["barrier"])
    (ready / f"ready-{os.getpid()}").touch()
    deadline = time.time() + 60
    while len(list(ready.glob("ready-*"))) < int(args["processes"]) and time.time() < deadline:
        await asyncio.sleep(0.005)
    try:
        if args["job"] == "reports":
            return {"sent": await send_due_reports(services)}
        return {"sent": await check_alerts(services)}
    finally:
        if services.fly is not None:
            await services.fly.aclose()
        services.engine.dispose()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))))
