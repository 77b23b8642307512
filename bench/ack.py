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
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import aiohttp  # noqa: E402
from _world import flybot_env, free_port, serve_fakes  # noqa: E402

from tests.fakes.slack_api import FakeSlack, SlackSender, slash_command  # noqa: E402


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
    env = flybot_env(
        database_url=f"sqlite:///{scratch / 'flybot.db'}",
        config=REPO / "examples" / "flybot.toml",
        fly_url=fly_url,
        slack_api_url=fake.api_url,
        port=flybot_port,
    )
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
