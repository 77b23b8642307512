"""Issue 8 point 1: an error the engine did not foresee never ends as "succeeded", and a
chat error while reporting never stops or fails a deploy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.deploy.plan import make_plan
from commands.port import ChannelRef, MessageRef, Outbox, Reply
from tests.deploy.test_engine import all_healthy_on, deploy, releases
from tests.fly.proxy import ApplyThenFail, apply_then_fail_proxy
from tests.flyharness import NEW, World, world

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
