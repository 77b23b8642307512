"""The bot process killed in the middle of a deploy, then started again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlmodel import select

from bot.fly import FlyClient
from bot.store import make_engine
from bot.store.engine import session_scope
from bot.store.models import Release
from tests.flyharness import NEW, fly_client, seed_stage, simulator, write_project

pytestmark = pytest.mark.timeout(90)


def shell(tmp_path: Path, base_url: str, config: Path) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "FLYBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'flybot.db'}",
        "FLYBOT_CONFIG": str(config),
        "FLYBOT_ADMINS": "shell:local:alice",
        "FLYBOT_INSTANCE_ID": "test-host",
        "FLY_API_TOKEN": "test-token",
        "FLY_ORG": "demo",
        "FLY_FLAPS_BASE_URL": base_url,
        "FLY_API_BASE_URL": base_url,
        "HOME": str(tmp_path),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "shell", "--as", "alice"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def release_state(tmp_path: Path) -> Release | None:
    engine = make_engine(f"sqlite:///{tmp_path / 'flybot.db'}")
    try:
        with session_scope(engine) as session:
            return session.exec(select(Release)).first()
    except Exception:
        return None
    finally:
        engine.dispose()


async def test_a_deploy_killed_midway_is_marked_interrupted_and_frees_its_leases(
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
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            release = release_state(tmp_path)
            updates = [c for c in sim.calls if c.operation == "Machines_update"]
            if release is not None and release.state == "running" and updates:
                break
            time.sleep(0.05)
        else:
            first.kill()
            pytest.fail(f"the deploy never got going: {first.communicate()}")
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

        second = shell(tmp_path, server.base_url, config)
        out, err = second.communicate("releases shop staging\n", timeout=60)
        assert second.returncode == 0, err
        assert "flybot restarted in the middle of this deploy: v1 is marked interrupted" in out
        assert "v1  interrupted" in out
        after = release_state(tmp_path)
        assert after is not None and after.state == "interrupted" and after.leases_json == "{}"
        for machine in await fly.list_machines("shop-staging"):
            assert await fly.get_lease("shop-staging", machine.id) is None
        await fly.aclose()
    finally:
        server.stop()
