"""One pipeline for every verb: a toy verb that only declares itself guardable gets the dry
run, locks, freeze windows and approvals from the pipeline, with nothing in its handler."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlmodel import select

from bot.clock import FrozenClock, set_clock
from bot.store.engine import session_scope
from bot.store.models import ApprovalRequest, AuditEntry
from bot.store.principals import IdentityKey, add_grant, ensure_identity
from commands import approvals, locks
from commands.context import CommandContext
from commands.guard import Plan
from commands.kinds import INT, PROJECT, STAGE
from commands.registry import Param, Registry, command
from commands.roles import Role
from tests.support import Bot, write_projects

ran: list[tuple[int, int, str]] = []  # (principal id, count, approvers) per handler run
target = {"size": "shared-cpu-1x"}  # what the toy's plan depends on


async def plan_toy(ctx: CommandContext) -> Plan:
    size = target["size"]
    digest = hashlib.sha256(f"{ctx.args['count']}/{size}".encode()).hexdigest()
    return Plan(
        ctx.args["project"],
        ctx.args["stage"],
        f"Scale {ctx.args['project']}/{ctx.args['stage']}",
        (f"{ctx.args['count']} × {size}",),
        digest,
    )


@command(
    "scale",
    "toy",
    summary="A toy guardable verb.",
    params=(Param("project", PROJECT), Param("stage", STAGE), Param("count", INT)),
    role=Role.deployer,
    planner=plan_toy,
)
async def toy(ctx: CommandContext) -> None:
    ran.append((ctx.principal_id, ctx.args["count"], ctx.approvers))
    await ctx.say(f"scaled to {ctx.args['count']}", tone="success")


def toy_bot(tmp_path: Path, extra: str = "") -> Bot:
    config = write_projects(tmp_path)
    config.write_text(config.read_text() + extra)
    bot = Bot.start(f"sqlite:///{tmp_path / 'db'}", config, admins=("shell:local:alice",))
    registry = Registry()
    registry.add_all([toy, approvals.approve, approvals.reject])
    bot.services.registry = registry
    for name, role in (("bob", "deployer"), ("erin", "deployer"), ("carol", "approver")):
        identity = ensure_identity(bot.engine, IdentityKey("shell", "local", name), name)
        add_grant(bot.engine, identity.principal_id, role, "*", "*", None)
    ran.clear()
    target["size"] = "shared-cpu-1x"
    return bot


def principal(bot: Bot, name: str) -> int:
    return ensure_identity(bot.engine, IdentityKey("shell", "local", name)).principal_id


async def test_an_unguarded_stage_runs_it_and_a_dry_run_does_not(tmp_path: Path) -> None:
    bot = toy_bot(tmp_path)
    dry, conversation = await bot.run("bob", "scale toy ping-go dev 3 --dry-run")
    assert dry.status == "ok" and ran == []
    assert "Dry run: nothing was changed." in conversation.all_text()
    assert "3 × shared-cpu-1x" in conversation.all_text()
    done, conversation = await bot.run("bob", "scale toy ping-go dev 3")
    assert done.status == "ok" and ran == [(principal(bot, "bob"), 3, "")]


async def test_someone_elses_lock_refuses_it_before_the_handler(tmp_path: Path) -> None:
    bot = toy_bot(tmp_path)
    bot.services.registry.add(locks.lock)
    await bot.run("erin", 'lock ping-go dev "load test"')
    refused, conversation = await bot.run("bob", "scale toy ping-go dev 3")
    assert refused.status == "error" and ran == []
    assert "ping-go/dev is locked by erin" in conversation.all_text()
    own, _ = await bot.run("erin", "scale toy ping-go dev 2")
    assert own.status == "ok" and ran == [(principal(bot, "erin"), 2, "")]


async def test_a_freeze_window_refuses_it(tmp_path: Path) -> None:
    set_clock(FrozenClock())  # a Monday, 09:00 UTC
    freeze = '\n[projects.hello.stages.dev]\nfreeze = ["Mon 08:00-Mon 10:00 UTC"]\n'
    bot = toy_bot(tmp_path, freeze)
    refused, conversation = await bot.run("bob", "scale toy hello dev 3")
    assert refused.status == "error" and ran == []
    assert "hello/dev is frozen now (Mon 08:00-Mon 10:00 UTC); no scale" in conversation.all_text()


async def test_a_guarded_stage_asks_for_approval_and_runs_it_once_approved(tmp_path: Path) -> None:
    bot = toy_bot(tmp_path)  # prod guards deploy, rollback, scale and secrets by default
    asked, conversation = await bot.run("bob", "scale toy ping-go prod 5")
    assert asked.status == "awaiting" and ran == []
    [card] = conversation.public
    assert card.title == "🔐 #1 scale ping-go/prod requested by bob"
    assert "5 × shared-cpu-1x" in card.lines and [b.command for b in card.buttons] == [
        "approve 1",
        "reject 1",
    ]
    own, _ = await bot.run("bob", "approve 1")
    assert own.status == "denied" and ran == []
    approved, conversation = await bot.run("carol", "approve 1")
    assert approved.status == "ok", conversation.all_text()
    assert ran == [(principal(bot, "bob"), 5, "carol")]  # as the requester, approved by carol
    with session_scope(bot.engine) as session:
        [request] = session.exec(select(ApprovalRequest)).all()
        assert request.state == "executed" and request.command == "scale toy ping-go prod 5"
        actions = [e.action for e in session.exec(select(AuditEntry))]
    assert actions.count("scale toy") == 2  # the request, and the approved run


async def test_a_plan_that_changed_after_approval_is_void(tmp_path: Path) -> None:
    bot = toy_bot(tmp_path)
    await bot.run("bob", "scale toy ping-go prod 5")
    target["size"] = "performance-8x"
    _, conversation = await bot.run("carol", "approve 1")
    assert "is void: the plan changed" in conversation.all_text() and ran == []
