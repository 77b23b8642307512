"""Several adapters in one process: work started on one platform reports through that
platform's adapter, whoever moves it on and from wherever (a click on another platform, the
scheduler, the recovery after a restart)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from bot.clock import FrozenClock, set_clock, utcnow
from bot.runtime import recover_interrupted
from bot.store.engine import session_scope
from bot.store.models import Release
from bot.store.principals import IdentityKey, add_grant, ensure_identity
from commands.approvals import expire_due
from commands.port import ChannelRef, MessageRef, Reply
from tests.flyharness import NEW, World, world

DISCORD = {"platform": "discord", "workspace": "9001"}
SLACK = {"platform": "slack", "workspace": "T0001"}


@dataclass
class FakeAdapter:
    """A platform's outbox that records every durable post with the ref it was given."""

    platform: str
    calls: list[tuple[str, MessageRef | ChannelRef, Reply]] = field(default_factory=list)
    posted: int = 0

    def _ref(self, channel: str, thread: str | None) -> MessageRef:
        self.posted += 1
        return MessageRef(self.platform, "?", channel, f"m{self.posted}", thread)

    async def post(self, where: ChannelRef, reply: Reply) -> MessageRef:
        self.calls.append(("post", where, reply))
        return self._ref(where.channel_id, where.thread_id)

    async def post_in_thread(self, thread: MessageRef, reply: Reply) -> MessageRef:
        self.calls.append(("thread", thread, reply))
        return self._ref(thread.channel_id, thread.thread_id)

    async def update(self, message: MessageRef, reply: Reply) -> None:
        self.calls.append(("update", message, reply))

    def text(self) -> str:
        return "\n".join(reply.plain() for _, _, reply in self.calls)


def adapters(w: World) -> tuple[FakeAdapter, FakeAdapter]:
    discord, slack = FakeAdapter("discord"), FakeAdapter("slack")
    w.services.router.register("discord", discord)
    w.services.router.register("slack", slack)
    engine = w.services.engine
    for key, role in (("discord:9001:bob", "deployer"), ("slack:T0001:carol", "approver")):
        identity = ensure_identity(engine, IdentityKey.parse(key), key.rsplit(":", 1)[-1])
        add_grant(engine, identity.principal_id, role, "shop", "*", None)
    return discord, slack


async def test_a_deploy_asked_on_discord_and_approved_on_slack_reports_on_discord(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        discord, slack = adapters(w)
        asked, card_side = await w.bot.run("bob", f"deploy shop prod {NEW}", **DISCORD)
        assert asked.status == "awaiting", card_side.all_text()
        approved, click_side = await w.bot.run("carol", "approve 1", **SLACK)
        assert approved.status == "ok", click_side.all_text()
        await w.services.jobs.wait_all()
        assert slack.calls == []  # nothing durable goes to the approver's platform
        text = discord.text()
        assert "carol approved (1/1): running it" in text
        assert "succeeded in" in text
        refs = [ref for _, ref, _ in discord.calls]
        assert refs and all(r.platform == "discord" and r.workspace_id == "9001" for r in refs)
        assert {r.channel_id for r in refs} == {"c"}


async def test_the_scheduler_tells_an_expired_request_on_its_own_platform(tmp_path: Path) -> None:
    clock = FrozenClock(utcnow())
    set_clock(clock)
    async with world(tmp_path) as w:
        discord, slack = adapters(w)
        await w.bot.run("bob", f"deploy shop prod {NEW}", **DISCORD)
        clock.advance(timedelta(minutes=31))
        assert await expire_due(w.services.engine, w.services.router) == [1]
        assert "This request expired" in discord.text() and slack.calls == []


async def test_the_restart_notice_goes_to_the_deploys_platform(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        discord, slack = adapters(w)
        assert w.services.deployer is not None
        with session_scope(w.services.engine) as session:
            session.add(
                Release(
                    project="shop",
                    stage="staging",
                    app="shop-staging",
                    version=1,
                    image=NEW,
                    state="running",
                    platform="discord",
                    workspace_id="9001",
                    channel_id="c7",
                    thread_id="t7",
                    message_id="m7",
                    instance_id="dead-host-1-0",
                    heartbeat_at=utcnow() - timedelta(minutes=5),
                )
            )
        [release] = await recover_interrupted(w.services)
        assert release.state == "interrupted"
        kinds = [(kind, ref) for kind, ref, _ in discord.calls]
        expected = MessageRef("discord", "9001", "c7", "m7", "t7")
        assert kinds == [("update", expected), ("thread", expected)]
        assert "flybot restarted in the middle of this deploy" in discord.text()
        assert slack.calls == []
