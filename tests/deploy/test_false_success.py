"""Issue 8 point 1: an error the engine did not foresee never ends as "succeeded", and a
chat error while reporting never stops or fails a deploy."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

import bot.store.engine as store_engine
from bot.deploy.plan import make_plan
from commands.port import ChannelRef, MessageRef, Outbox, Reply
from tests.deploy.test_engine import all_healthy_on, deploy, releases
from tests.fly.proxy import ApplyThenFail, apply_then_fail_proxy
from tests.flyharness import NEW, OLD, World, world

V3 = "registry.fly.io/shop:v3"
V4 = "registry.fly.io/shop:v4"


async def web_machines(w: World) -> list[str]:
    return sorted(m.id for m in await w.machines() if m.metadata.get("fly_process_group") == "web")


async def test_an_undecodable_answer_mid_rollout_ends_rolled_back_and_is_never_a_target(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        await deploy(w, f"deploy shop staging {NEW} --strategy immediate")
        assert await all_healthy_on(w, NEW)
        second_batch = (await web_machines(w))[1]
        # Every look at that machine, for as long as the client retries, is a 200 whose body
        # claims gzip and is not: httpx raises DecodingError, not a Fly API error.
        rule = ApplyThenFail(
            method="GET",
            path=rf"^/v1/apps/shop-staging/machines/{second_batch}$",
            corrupt=True,
            times=8,
        )
        async with apply_then_fail_proxy(w.base_url, rule) as proxy:
            w.route_through(proxy)
            outcome, conversation = await deploy(w, f"deploy shop staging {V3}")
        w.route_through(w.base_url)
        assert outcome.status == "ok"
        assert rule.failed >= 1
        half_done = releases(w)[1]
        assert half_done.state == "rolled_back", (half_done.state, half_done.error)
        assert second_batch in half_done.error
        assert await all_healthy_on(w, NEW)
        assert "succeeded" not in conversation.all_text().split("Rolling back")[-1]

        await deploy(w, f"deploy shop staging {V4} --strategy immediate")
        assert releases(w)[2].state == "succeeded"
        outcome, conversation = await deploy(w, "rollback shop staging")
        assert outcome.status == "ok", conversation.all_text()
        rollback = releases(w)[3]
        assert (rollback.kind, rollback.image) == ("rollback", NEW)  # v1's, not half-done v2's
        assert await all_healthy_on(w, NEW)


class FlakyOutbox:
    """A chat platform that fails its first `failures` durable posts and edits."""

    def __init__(self, inner: Outbox, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    def _fail(self) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("chat API answered 503")

    async def post(self, where: ChannelRef, reply: Reply) -> MessageRef:
        self._fail()
        return await self.inner.post(where, reply)

    async def post_in_thread(self, thread: MessageRef, reply: Reply) -> MessageRef:
        self._fail()
        return await self.inner.post_in_thread(thread, reply)

    async def update(self, message: MessageRef, reply: Reply) -> None:
        self._fail()
        await self.inner.update(message, reply)


async def test_chat_errors_are_retried_and_the_rollout_goes_on(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        router = w.services.router
        router.register("shell", FlakyOutbox(router.outbox("shell"), failures=4))
        outcome, conversation = await deploy(w, f"deploy shop staging {NEW}")
        assert outcome.status == "ok"
        [release] = releases(w)
        assert release.state == "succeeded", release.error
        assert await all_healthy_on(w, NEW)
        [thread] = conversation.threads.values()
        lines = [line for reply in thread for line in reply.lines]
        assert len([line for line in lines if "healthy on" in line]) == 6, lines
        assert any("v1 succeeded in" in line for line in lines)


class BrokenReporter:
    """A reporter whose every call raises, as a chat adapter with a bug would."""

    def __init__(self) -> None:
        self.calls = 0

    async def step(self, text: str, tone: str = "info") -> None:
        self.calls += 1
        raise RuntimeError("reporter bug")

    async def progress(self, done: int, total: int) -> None:
        self.calls += 1
        raise ValueError("reporter bug")

    async def flush(self, final: bool = False) -> None:
        self.calls += 1
        raise RuntimeError("reporter bug")


async def test_a_reporter_that_raises_cannot_fail_or_stop_a_deploy(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        deployer = w.services.deployer
        assert deployer is not None
        project = w.services.catalog.projects["shop"]
        stage = project.stage("staging")
        assert stage is not None
        plan = await make_plan(w.fly, project, stage, image=NEW)
        release = deployer.claim(plan, requested_by=None, requester_name="test")
        reporter: Any = BrokenReporter()
        finished = await deployer.run(release.id or 0, plan, reporter)
        assert finished.state == "succeeded", finished.error
        assert reporter.calls > 6
        assert await all_healthy_on(w, NEW)
        assert len(w.calls("Machines_update")) == 6


class _ErrorSeen(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.set()


async def test_an_error_no_fly_call_raised_ends_failed_never_succeeded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database refuses the engine's write of Fly's release id (another writer holds
    SQLite's lock past the busy timeout): an OperationalError, no Fly API error. The deploy
    must end failed, with the reason, and with nothing on Fly changed."""
    monkeypatch.setattr(store_engine, "SQLITE_BUSY_TIMEOUT_MS", 1500)
    async with world(tmp_path) as w:
        deployer = w.services.deployer
        assert deployer is not None
        project = w.services.catalog.projects["shop"]
        stage = project.stage("staging")
        assert stage is not None
        plan = await make_plan(w.fly, project, stage, image=NEW)
        release = deployer.claim(plan, requested_by=None, requester_name="test")
        w.sim.inject("Releases_create", latency=2.0, count=1)
        errors = _ErrorSeen()
        logging.getLogger("bot.deploy.engine").addHandler(errors)
        reporter: Any = Quiet()
        running = asyncio.create_task(deployer.run(release.id or 0, plan, reporter))
        while deployer.get(release.id or 0).state != "running":
            await asyncio.sleep(0.01)
        held = threading.Event()

        def hold_the_write_lock() -> None:
            connection = sqlite3.connect(tmp_path / "flybot.db", timeout=0, isolation_level=None)
            connection.execute("BEGIN IMMEDIATE")
            held.set()
            # Until the engine has failed on it (logged), or long enough to be sure it would
            # have: then the engine's final write goes through.
            errors.seen.wait(timeout=30)
            connection.execute("COMMIT")
            connection.close()

        holder = threading.Thread(target=hold_the_write_lock)
        holder.start()
        try:
            while not held.is_set():
                await asyncio.sleep(0.01)
            assert deployer.get(release.id or 0).fly_release_id == "", "the lock came too late"
            finished = await running
        finally:
            errors.seen.set()
            while holder.is_alive():
                await asyncio.sleep(0.01)
            logging.getLogger("bot.deploy.engine").removeHandler(errors)
        assert finished.state == "failed", (finished.state, finished.error)
        assert "unexpected error (OperationalError)" in finished.error, finished.error
        assert w.calls("Machines_update") == []
        assert await all_healthy_on(w, OLD)
        for machine in await w.machines():
            assert await w.fly.get_lease("shop-staging", machine.id) is None
        statuses = [c.body["status"] for c in w.calls("Releases_update")]
        assert statuses[-1:] == ["failed"], statuses


class Quiet:
    async def step(self, text: str, tone: str = "info") -> None:
        pass

    async def progress(self, done: int, total: int) -> None:
        pass

    async def flush(self, final: bool = False) -> None:
        pass
