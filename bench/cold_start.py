"""Benchmark: cold start of `flybot run` in Slack HTTP mode, from process start to the first
`/healthz` 200, beside the floor: `python -c 'import …'` of exactly the libraries that mode
needs (FLOOR below), in the same run, rounds alternating.

The Fly simulator and the fake Slack Web API (which answers flybot's auth.test) run in a
child process on 127.0.0.1. The database is a SQLite file already at the newest migration,
as on a Fly machine's volume after the first start. flybot's own modules are compiled to
bytecode first, as the image's `pip install .` ships them.

Prints the median of each, their ratio (target ≤ 1.1×) and flybot's median (target ≤ 1.5 s),
the ratio against the same imports with the cyclic collector off (as `run` starts),
and the third-party packages flybot imported that are not in the floor (should be none).

    python bench/cold_start.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _world import flybot_env, free_port, serve_fakes  # noqa: E402

# What Slack HTTP mode needs at start and nothing else: bolt's async app and its aiohttp
# adapter, the Slack Web API client, the HTTP server, the database (SQLModel over SQLAlchemy,
# SQLite's driver), the scheduler, httpx and tenacity (the Fly client's module; the client
# itself is made on the first command), tomlkit, which reads flybot.toml at start, and what
# /metrics and the JSON log lines are made with.
FLOOR = (
    "slack_bolt.async_app",
    "slack_bolt.adapter.aiohttp",
    "slack_sdk.web.async_client",
    "aiohttp.web",
    "sqlmodel",
    "sqlalchemy.dialects.sqlite.pysqlite",
    "sqlite3",
    "apscheduler.schedulers.asyncio",
    "apscheduler.triggers.interval",
    "httpx",
    "tenacity",
    "tomlkit",
    "prometheus_client",
    "pythonjsonlogger.json",
)
# What httpx loads when the Fly client is made: on the first command, so not in the cold
# start's floor; bench/memory.py's floor has them (its deploy makes the client).
FLY_TRANSPORT = ("httpcore", "anyio", "h11")
FLOOR_CODE = "import " + ", ".join(FLOOR)
# `flybot run` keeps the cyclic collector off through its imports (bot/runtime/run.py); the
# same imports with it off too say how much of the ratio that change is.
FLOOR_NO_GC_CODE = "import gc; gc.disable(); " + FLOOR_CODE
OURS = ("bot", "commands", "adapters", "tests", "_world")


def healthy(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        connection.request("GET", "/healthz")
        status = connection.getresponse().status
        connection.close()
        return status == 200
    except OSError:
        return False


def flybot_start(env: dict[str, str], port: int, log: Path) -> float:
    """Seconds from spawning `flybot run` to its first /healthz 200."""
    env = {**env, "FLYBOT_HTTP_PORT": str(port)}
    with log.open("wb") as out:
        began = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run"], env=env, stdout=out, stderr=out, cwd=REPO
        )
        try:
            while not healthy(port):
                if process.poll() is not None:
                    raise SystemExit(f"flybot run exited {process.returncode}:\n{log.read_text()}")
                if time.perf_counter() - began > 60:
                    raise SystemExit(f"flybot run never became healthy:\n{log.read_text()}")
                time.sleep(0.005)
            return time.perf_counter() - began
        finally:
            process.terminate()
            process.wait(30)


def floor_start(env: dict[str, str], code: str = FLOOR_CODE) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=REPO)
    return time.perf_counter() - began


def packages(report: str) -> set[str]:
    """Top-level packages named in an `-X importtime` report."""
    names: set[str] = set()
    for line in report.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name and name != "imported package":
                names.add(name.split(".")[0])
    return names


def imported_packages(env: dict[str, str], port: int, log: Path) -> set[str]:
    """Top-level packages `flybot run` imported on its way to healthy."""
    flybot_start({**env, "PYTHONPROFILEIMPORTTIME": "1"}, port, log)
    # The report also names imports that were tried and not found (optional extras).
    return {
        name
        for name in packages(log.read_text(errors="replace"))
        if importlib.util.find_spec(name) is not None
    }


def bench(rounds: int) -> None:
    ours, theirs = multiprocessing.Pipe()
    fakes = multiprocessing.Process(target=serve_fakes, args=(theirs,), daemon=True)
    fakes.start()
    fly_url, slack_url = ours.recv()
    scratch = Path(tempfile.mkdtemp(prefix="flybot-bench-cold-"))
    env = flybot_env(
        database_url=f"sqlite:///{scratch / 'flybot.db'}",
        config=REPO / "examples" / "flybot.toml",
        fly_url=fly_url,
        slack_api_url=f"{slack_url}/api/",
    )
    flybot: list[float] = []
    floor: list[float] = []
    floor_no_gc: list[float] = []
    try:
        subprocess.run(
            [sys.executable, "-m", "bot.cli", "db", "upgrade"],
            env=env,
            check=True,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
        )
        # The image's `pip install .` ships flybot compiled to bytecode, as it ships every
        # library in the floor; a checkout run under PYTHONDONTWRITEBYTECODE (this machine sets
        # it) would otherwise compile flybot's ~100 modules from source on every start.
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", "bot", "commands", "adapters"],
            check=True,
            cwd=REPO,
        )
        port = free_port()
        extra = sorted(imported_packages(env, port, scratch / "importtime.log") - floor_packages())
        flybot_start(env, port, scratch / "warm.log")  # warm the OS's file cache for both
        floor_start(env)
        for _ in range(rounds):
            flybot.append(flybot_start(env, port, scratch / "flybot.log"))
            floor.append(floor_start(env))
            floor_no_gc.append(floor_start(env, FLOOR_NO_GC_CODE))
    finally:
        ours.send("stop")
        fakes.join(10)
    report(flybot, floor, floor_no_gc, extra, rounds)


def floor_packages() -> set[str]:
    """Every top-level package the floor's imports load, the standard library's, and ours."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", FLOOR_CODE],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    return packages(done.stderr) | set(OURS) | set(sys.stdlib_module_names)


def report(
    flybot: list[float],
    floor: list[float],
    floor_no_gc: list[float],
    extra: list[str],
    rounds: int,
) -> None:
    ours, theirs = statistics.median(flybot), statistics.median(floor)
    no_gc = statistics.median(floor_no_gc)
    load = os.getloadavg()
    print(f"cold start, Slack HTTP mode, {rounds} rounds (load average {load[0]:.2f})")
    print(f"  flybot run → /healthz 200   median {ours:.3f} s   min {min(flybot):.3f} s")
    print(f"  python -c 'import …'        median {theirs:.3f} s   min {min(floor):.3f} s")
    print(f"    ({FLOOR_CODE})")
    print(
        f"  ratio {ours / theirs:.2f}× (min/min {min(flybot) / min(floor):.2f}×)"
        "   (target ≤ 1.1× and ≤ 1.5 s)"
    )
    print(
        f"  the same imports, collector off: median {no_gc:.3f} s   min {min(floor_no_gc):.3f} s"
        f"   ratio {ours / no_gc:.2f}× (min/min {min(flybot) / min(floor_no_gc):.2f}×)"
    )
    print(f"  packages imported beyond the floor: {', '.join(extra) or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    bench(args.rounds)


if __name__ == "__main__":
    main()
