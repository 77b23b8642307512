"""Benchmark: time to the HTTP answer for concurrent signed `/fly status` commands, `flybot
run` beside a bare bolt app that only acknowledges (bench/bare_bolt.py), in the same run.

Both are processes on 127.0.0.1; the Fly simulator (seeded with the demo org) and the fake
Slack Web API (tests/fakes/slack_api.py, where flybot posts each status) run in a third.
Each round sends N commands at once to one app, waits until flybot
has posted every answer (so rounds never overlap), then the other app; the rounds alternate.

Prints p50 and p99 of each and flybot's over the bare app's (target: p99 ≤ 1.5× and ≤ 100 ms).

    python bench/ack.py [--concurrent 50] [--rounds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from multiprocessing.connection import Connection
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from bot.fly.simulator import FlySimulator, serve_in_thread  # noqa: E402
from tests.fakes.slack_api import (  # noqa: E402
    BOT_TOKEN,
    SIGNING_SECRET,
    FakeSlack,
    SlackSender,
    slash_command,
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_fakes(pipe: Connection) -> None:
    """The child process: the Fly simulator and the fake Slack, each on its own port, so
    their work shares neither this process's interpreter lock nor its event loop."""
    sim = FlySimulator(seed=0)
    sim.seed_demo()
    fly = serve_in_thread(sim, port=0)

    async def serve() -> None:
        fake = FakeSlack()

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


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)


async def wait_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            if process.poll() is not None:
                raise SystemExit(f"{url} exited:\n{log.read_text()}")
            try:
                async with session.get(url) as response:
                    if response.status in (200, 405):
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"{url} never came up:\n{log.read_text()}")


async def round_of(sender: SlackSender, fake: FakeSlack, count: int, line: str) -> list[float]:
    forms = [slash_command(fake, line, "UALICE", "alice") for _ in range(count)]
    bodies = [urllib.parse.urlencode(form) for form in forms]

    async def one(body: str) -> float:
        began = time.perf_counter()
        status, _ = await sender.post(body, "application/x-www-form-urlencoded")
        took = time.perf_counter() - began
        if status != 200:
            raise SystemExit(f"answered {status}")
        return took

    return list(await asyncio.gather(*(one(body) for body in bodies)))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


async def bench(concurrent: int, rounds: int) -> None:
    ours, theirs = multiprocessing.Pipe()
    fakes = multiprocessing.Process(target=serve_fakes, args=(theirs,), daemon=True)
    fakes.start()
    fly_url, slack_url = ours.recv()
    fake = FakeSlack()  # only builds the slash commands' bodies here
    fake.base_url = slack_url
    scratch = Path(tempfile.mkdtemp(prefix="flybot-bench-ack-"))
    flybot_port, bare_port = free_port(), free_port()
    env = {
        **os.environ,
        "FLYBOT_DATABASE_URL": f"sqlite:///{scratch / 'flybot.db'}",
        "FLYBOT_CONFIG": str(REPO / "examples" / "flybot.toml"),
        "FLYBOT_ADMINS": "slack:T0FLY:UALICE",
        "FLY_API_TOKEN": "sandbox-token",
        "FLY_ORG": "demo",
        "FLY_FLAPS_BASE_URL": fly_url,
        "FLY_API_BASE_URL": fly_url,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "FLYBOT_SLACK_API_URL": fake.api_url,
        "FLYBOT_HTTP_HOST": "127.0.0.1",
        "FLYBOT_HTTP_PORT": str(flybot_port),
        "PYTHONPATH": str(REPO),
    }
    env.pop("SLACK_APP_TOKEN", None)
    flybot = start([sys.executable, "-m", "bot.cli", "run"], env, scratch / "flybot.log")
    bare = start(
        [sys.executable, str(REPO / "bench" / "bare_bolt.py"), str(bare_port)],
        env,
        scratch / "bare.log",
    )
    results: dict[str, list[float]] = {"flybot": [], "bare bolt": []}
    try:
        await wait_up(f"http://127.0.0.1:{flybot_port}/healthz", flybot, scratch / "flybot.log")
        await wait_up(f"http://127.0.0.1:{bare_port}/slack/events", bare, scratch / "bare.log")
        line = "status ping-go dev"
        async with (
            SlackSender(f"http://127.0.0.1:{flybot_port}/slack/events") as to_flybot,
            SlackSender(f"http://127.0.0.1:{bare_port}/slack/events") as to_bare,
        ):

            async def answered(expected: int) -> None:
                async with aiohttp.ClientSession() as session:
                    for _ in range(600):
                        async with session.get(f"{slack_url}/__posted") as response:
                            if int(await response.text()) >= expected:
                                return
                        await asyncio.sleep(0.05)
                raise SystemExit("flybot did not post every status")

            await round_of(to_flybot, fake, 5, line)  # warm-up: imports, caches, identities
            await round_of(to_bare, fake, 5, line)
            await answered(5)
            posted = 5
            for _ in range(rounds):
                results["flybot"] += await round_of(to_flybot, fake, concurrent, line)
                posted += concurrent
                await answered(posted)
                results["bare bolt"] += await round_of(to_bare, fake, concurrent, line)
    finally:
        for process in (flybot, bare):
            process.terminate()
            process.wait(10)
        ours.send("stop")
        fakes.join(10)
    report(results, concurrent, rounds)


def report(results: dict[str, list[float]], concurrent: int, rounds: int) -> None:
    print(f"{concurrent} concurrent signed `/fly status` commands × {rounds} rounds each")
    figures: dict[str, tuple[float, float]] = {}
    for name, values in results.items():
        p50, p99 = percentile(values, 50) * 1000, percentile(values, 99) * 1000
        figures[name] = (p50, p99)
        mean = statistics.mean(values) * 1000
        print(f"  {name:<10} p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   mean {mean:6.1f} ms")
    (f50, f99), (b50, b99) = figures["flybot"], figures["bare bolt"]
    print(
        f"  ratio      p50 {f50 / b50:.2f}×      p99 {f99 / b99:.2f}×"
        "   (target p99 ≤ 1.5× and ≤ 100 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    asyncio.run(bench(args.concurrent, args.rounds))


if __name__ == "__main__":
    main()
