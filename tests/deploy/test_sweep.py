"""Issue 8 points 2 and 3: a deploy is dead only when its heartbeat is silent, whoever runs
it; every state write is a compare-and-set from the state it expects; a periodic sweep
(claimed in the database) closes what dead processes left, so no app waits for a restart."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.clock import utcnow
from bot.deploy.engine import Deployer, EngineTiming
from bot.deploy.plan import make_plan
from bot.runtime import Runtime
from bot.store import make_engine
from bot.store.engine import session_scope
from bot.store.models import Release
from commands.dispatch import Dispatcher
from commands.port import Invocation, MessageRef, Reply
from tests.deploy.test_engine import deploy, releases, writes
from tests.flyharness import FAST_ENGINE, NEW, OLD, World, fly_client, world
from tests.support import RecordingConversation


class NoThreads(RecordingConversation):
    """A chat platform whose thread cannot be opened (its API is down)."""

    async def start_thread(self, reply: Reply) -> MessageRef:
        raise RuntimeError("chat API answered 503")


async def test_a_deploy_whose_thread_cannot_open_leaves_nothing_blocking_the_app(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        invocation = Invocation(
            platform="shell",
            workspace_id="local",
            channel_id="c",
            user_id="alice",
            display_name="alice",
            text=f"deploy shop staging {NEW}",
        )
        await Dispatcher(w.services).handle(invocation, NoThreads())
        await w.services.jobs.wait_all()
        [abandoned] = releases(w)
        assert abandoned.state == "failed" and "could not be started" in abandoned.error
        assert writes(w) == []  # nothing was touched
        outcome, conversation = await deploy(w, f"deploy shop staging {NEW}")
        assert outcome.status == "ok", conversation.all_text()
        assert releases(w)[1].state == "succeeded"


async def leave_a_dead_deploy(w: World, app: str = "shop-staging") -> tuple[Release, list[str]]:
    """What a process killed mid-deploy leaves: a running release with a silent heartbeat,
    and machine leases on Fly that only it knew the nonces of."""
    machines = [m.id for m in await w.machines(app)][:2]
    nonces = {}
    for machine_id in machines:
        lease = await w.fly.acquire_lease(app, machine_id, ttl=60, description="dead flybot")
        nonces[machine_id] = lease.nonce or ""
    with session_scope(w.services.engine) as session:
        release = Release(
            project="shop",
            stage="staging",
            app=app,
            version=1,
            image=NEW,
            state="running",
            platform="shell",
            workspace_id="local",
            channel_id="c",
            instance_id="other-host-4242-deadbeef",
            host="other-host",
            heartbeat_at=utcnow() - timedelta(minutes=2),
            leases_json=json.dumps(nonces),
        )
        session.add(release)
        session.flush()
    return release, machines


async def test_the_sweep_closes_a_deploy_left_by_a_dead_process_without_a_restart(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        assert w.services.deployer is not None
        w.services.deployer.timing = replace(FAST_ENGINE, sweep_every=0.2)
        runtime = Runtime(w.services)
        await runtime.start()  # start-up recovery runs now, before the process below dies
        try:
            release, leased = await leave_a_dead_deploy(w)
            deadline = asyncio.get_running_loop().time() + 60  # a loaded machine is slow
            # the sweep marks it first, then frees the leases, then tells the thread
            while asyncio.get_running_loop().time() < deadline:
                if "restarted in the middle" in w.bot.outbox("shell").all_text():
                    break
                await asyncio.sleep(0.05)
            closed = w.services.deployer.get(release.id or 0)
            assert closed.state == "interrupted" and closed.leases_json == "{}"
            for machine_id in leased:
                assert await w.fly.get_lease("shop-staging", machine_id) is None
            assert "restarted in the middle" in w.bot.outbox("shell").all_text()
            outcome, conversation = await deploy(w, f"deploy shop staging {NEW}")
            assert outcome.status == "ok", conversation.all_text()
            assert releases(w)[-1].state == "succeeded"
        finally:
            await runtime.stop()


def sweep_in_a_thread(
    database_url: str, base_url: str, found: list[int], timing: EngineTiming = FAST_ENGINE
) -> threading.Thread:
    """Another bot process: its own database connection, Fly client and event loop."""

    def main() -> None:
        async def go() -> None:
            fly = fly_client(base_url)
            deployer = Deployer(make_engine(database_url), fly, timing)

            async def notify(release: Release) -> None:
                found.append(release.id or 0)

            await deployer.sweep(notify)
            await fly.aclose()
            deployer.db.dispose()

        asyncio.run(go())

    return threading.Thread(target=main)


@pytest.mark.parametrize("processes", [4])
async def test_processes_sweeping_at_once_close_each_dead_deploy_once(
    tmp_path: Path, database_url: str, processes: int
) -> None:
    async with world(tmp_path, database_url=database_url) as w:
        dead = [await leave_a_dead_deploy(w, app) for app in ("shop-dev", "shop-staging")]
        found: list[int] = []
        threads = [sweep_in_a_thread(database_url, w.base_url, found) for _ in range(processes)]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            await asyncio.sleep(0.02)
        assert sorted(found) == sorted(release.id or 0 for release, _ in dead)


async def test_a_process_judged_dead_changes_and_overwrites_nothing_after(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        # Slow starts: the roll-out is still in its first batches when it is judged dead.
        w.sim.set_start_duration(1.5, image=NEW)
        assert w.services.deployer is not None
        slow_heart = Deployer(
            w.services.engine, w.fly, replace(FAST_ENGINE, heartbeat=0.6, stale_after=30)
        )
        project = w.services.catalog.projects["shop"]
        stage = project.stage("staging")
        assert stage is not None
        plan = await make_plan(w.fly, project, stage, image=NEW)
        release = slow_heart.claim(plan, requested_by=None, requester_name="slow")
        reporter: Any = Quiet()
        running = asyncio.create_task(slow_heart.run(release.id or 0, plan, reporter))
        while not w.calls("Machines_update"):
            await asyncio.sleep(0.01)
        # Another process, whose patience is shorter, judges this deploy dead meanwhile:
        # it sweeps until it sees a heartbeat older than its 0.1 s (the deploy's beats come
        # every 0.6 s, so one of the first sweeps does).
        judged: list[int] = []
        while not judged and not running.done():
            impatient = sweep_in_a_thread(
                f"sqlite:///{tmp_path / 'flybot.db'}",
                w.base_url,
                judged,
                replace(FAST_ENGINE, stale_after=0.1),
            )
            impatient.start()
            while impatient.is_alive():
                await asyncio.sleep(0.02)
        assert judged == [release.id], "the deploy ended before it was judged dead"
        finished = await running
        assert finished.state == "interrupted", (finished.state, finished.error)
        assert finished.error == "flybot stopped in the middle of this deploy"
        updated = {c.path for c in w.calls("Machines_update")}
        assert len(updated) < 6  # it stopped changing machines once it knew
        assert OLD in {m.config.image for m in await w.machines() if m.config}


class Quiet:
    async def step(self, text: str, tone: str = "info") -> None:
        pass

    async def progress(self, done: int, total: int) -> None:
        pass

    async def flush(self, final: bool = False) -> None:
        pass
