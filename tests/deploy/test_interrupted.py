"""`flybot shell` processes on one host and one database: one killed in the middle of a
deploy (another closes the deploy once its heartbeat is silent), and one started while
another's deploy runs (which must leave that deploy alone)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlmodel import select

from bot.fly import FlyClient
from bot.store import make_engine
from bot.store.engine import session_scope
from bot.store.models import Release
from tests.flyharness import NEW, fly_client, seed_stage, simulator, write_project

# Processes starting on a loaded machine take a while: every wait below is on a condition,
# with room to spare.
pytestmark = pytest.mark.timeout(300)
PATIENCE = 120.0

# Fast heartbeats so a dead process is noticed in about two seconds, not thirty.
SWEEP_ENV = {
    "FLYBOT_DEPLOY_HEARTBEAT": "0.3",
    "FLYBOT_DEPLOY_STALE_AFTER": "2",
    "FLYBOT_DEPLOY_SWEEP_EVERY": "0.3",
}
# For a process that is alive: its heartbeat (every 0.3 s) may be held up by a loaded
# machine or a busy database (another process's start-up writes), so "dead" waits for ten
# seconds of silence; the second process still sweeps every 0.3 s all through the deploy.
LIVE_ENV = {**SWEEP_ENV, "FLYBOT_DEPLOY_STALE_AFTER": "10"}


def shell(
    tmp_path: Path,
    base_url: str,
    config: Path,
    database_url: str | None = None,
    timing: dict[str, str] = SWEEP_ENV,
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        **timing,
        "FLYBOT_DATABASE_URL": database_url or f"sqlite:///{tmp_path / 'flybot.db'}",
        "FLYBOT_CONFIG": str(config),
        "FLYBOT_ADMINS": "shell:local:alice",
        "FLY_API_TOKEN": "test-token",
        "FLY_ORG": "demo",
        "FLY_FLAPS_BASE_URL": base_url,
        "FLY_API_BASE_URL": base_url,
        "HOME": str(tmp_path),
    }
    env.pop("FLYBOT_INSTANCE_ID", None)
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "shell", "--as", "alice"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def release_state(tmp_path: Path, database_url: str | None = None) -> Release | None:
    engine = make_engine(database_url or f"sqlite:///{tmp_path / 'flybot.db'}")
    try:
        with session_scope(engine) as session:
            return session.exec(select(Release)).first()
    except Exception:
        return None
    finally:
        engine.dispose()


def wait_until_rolling(
    tmp_path: Path, sim: object, process: subprocess.Popen[str], database_url: str | None = None
) -> None:
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        release = release_state(tmp_path, database_url)
        updates = [c for c in sim.calls if c.operation == "Machines_update"]  # type: ignore[attr-defined]
        if release is not None and release.state == "running" and updates:
            return
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"the deploy never got going: {process.communicate()}")


async def test_a_deploy_killed_midway_is_closed_by_a_running_process_and_frees_its_leases(
    tmp_path: Path,
) -> None:
    slow = simulator.SimulatorTiming(start_s=1.5)
    sim = simulator.FlySimulator(seed=3, timing=slow)
    server = simulator.serve_in_thread(sim, port=0)
    try:
        config = write_project(tmp_path)
        fly: FlyClient = fly_client(server.base_url)
        await seed_stage(fly, server.base_url, tmp_path / "shop" / "staging.fly.toml", "x:v1")

        first = shell(tmp_path, server.base_url, config)
        assert first.stdin is not None
        first.stdin.write(f"deploy shop staging {NEW}\n")
        first.stdin.flush()
        wait_until_rolling(tmp_path, sim, first)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        running = release_state(tmp_path)
        assert running is not None and running.state == "running"
        assert running.leases_json != "{}"
        leased = [
            m
            for m in await fly.list_machines("shop-staging")
            if await fly.get_lease("shop-staging", m.id) is not None
        ]
        assert leased, "the killed deploy held leases"

        # A second process on the same host: its heartbeat sweep closes the dead deploy.
        second = shell(tmp_path, server.base_url, config)
        assert second.stdin is not None and second.stdout is not None
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(second.stdout or []), daemon=True)
        reader.start()
        notice = "flybot restarted in the middle of this deploy: v1 is marked interrupted"
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline and not any(notice in line for line in lines):
            time.sleep(0.1)
        second.stdin.write("releases shop staging\n")
        second.stdin.close()
        second.wait(timeout=PATIENCE)
        reader.join(timeout=10)
        out = "".join(lines)
        assert second.returncode == 0, second.stderr.read() if second.stderr else ""
        assert notice in out
        assert "v1  interrupted" in out
        after = release_state(tmp_path)
        assert after is not None and after.state == "interrupted" and after.leases_json == "{}"
        for machine in await fly.list_machines("shop-staging"):
            assert await fly.get_lease("shop-staging", machine.id) is None
        await fly.aclose()
    finally:
        server.stop()


def read_lines(process: subprocess.Popen[str]) -> tuple[list[str], threading.Thread]:
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout or []), daemon=True)
    reader.start()
    return lines, reader


async def test_a_second_shell_on_the_same_host_leaves_a_running_deploy_alone(
    tmp_path: Path, database_url: str
) -> None:
    # Each machine takes 2 s to start: the deploy runs long enough for the second process
    # to come up, recover and sweep while it runs (checked below, not assumed).
    slow = simulator.SimulatorTiming(start_s=2.0)
    sim = simulator.FlySimulator(seed=4, timing=slow)
    server = simulator.serve_in_thread(sim, port=0)
    try:
        config = write_project(tmp_path)
        staging = tmp_path / "shop" / "staging.fly.toml"
        toml = staging.read_text().replace('wait_timeout = "3s"', 'wait_timeout = "2m"')
        staging.write_text(toml)
        fly: FlyClient = fly_client(server.base_url)
        await seed_stage(fly, server.base_url, staging, "x:v1")
        await fly.aclose()

        first = shell(tmp_path, server.base_url, config, database_url, LIVE_ENV)
        assert first.stdin is not None
        first.stdin.write(f"deploy shop staging {NEW}\n")
        first.stdin.flush()
        wait_until_rolling(tmp_path, sim, first, database_url)

        # Start-up recovery, then a sweep every 0.3 s.
        second = shell(tmp_path, server.base_url, config, database_url, LIVE_ENV)
        assert second.stdin is not None
        lines2, reader2 = read_lines(second)
        second.stdin.write("releases shop staging\n")
        second.stdin.flush()
        seen: list[str] = []
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            release = release_state(tmp_path, database_url)
            if release is not None and (not seen or seen[-1] != release.state):
                seen.append(release.state)
            if release is not None and release.state not in ("queued", "running"):
                break
            time.sleep(0.05)
        second.stdin.write("releases shop staging\n")
        second.stdin.close()
        second.wait(timeout=PATIENCE)
        reader2.join(timeout=10)
        out2 = "".join(lines2)
        out1, err1 = first.communicate("", timeout=PATIENCE)
        err2 = second.stderr.read() if second.stderr else ""
        assert first.returncode == 0 and second.returncode == 0, (err1, err2)
        assert seen == ["running", "succeeded"], seen
        # The second process answered its first command, so its start-up recovery was over,
        # while the deploy still ran: it had every chance to take the deploy over.
        assert "v1  running" in out2, ("the second shell came up only after the end", out2)
        assert "v1 succeeded in" in out1, out1
        assert "restarted in the middle" not in out1 + out2
        assert "another flybot process" not in out1
        assert "v1  succeeded" in out2, out2
        final = release_state(tmp_path, database_url)
        assert final is not None and final.state == "succeeded" and final.error == ""
    finally:
        server.stop()
