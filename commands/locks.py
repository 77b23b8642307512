"""`/fly lock` and `/fly unlock`: hold a stage still (no guarded actions) for a while."""

from __future__ import annotations

from datetime import timedelta

from bot.clock import utcnow
from bot.durations import format_duration
from bot.store import locks
from commands.context import CommandContext
from commands.errors import CommandError, UsageError
from commands.kinds import DURATION, PROJECT, STAGE, TEXT
from commands.permissions import authorize
from commands.registry import Flag, Param, command
from commands.reply import markup
from commands.roles import Role

DEFAULT_LOCK = timedelta(hours=1)
MAX_LOCK = timedelta(days=7)


@command(
    "lock",
    summary="Lock a stage so nobody deploys to it; it unlocks itself when the time is up.",
    params=(
        Param("project", PROJECT),
        Param("stage", STAGE),
        Param("reason", TEXT, required=False, rest=True),
    ),
    flags=(Flag("for", DURATION, help="how long (default 1h, at most 7d)", metavar="2h"),),
    role=Role.deployer,
    examples=('/fly lock ping-go prod "db migration" --for 2h',),
)
async def lock(ctx: CommandContext) -> None:
    project, stage = ctx.args["project"], ctx.args["stage"]
    duration: timedelta = ctx.flags.get("for", DEFAULT_LOCK)
    if duration > MAX_LOCK:
        raise UsageError(f"--for is at most {format_duration(MAX_LOCK)}.")
    reason = ctx.args.get("reason", "")
    expires = utcnow() + duration
    name = ctx.invocation.display_name
    taken, held = locks.acquire(ctx.engine, project, stage, ctx.principal_id, name, reason, expires)
    if not taken:
        raise CommandError(
            f"{project}/{stage} is already locked by {held.owner_name} until "
            f"{held.expires_at:%H:%M} UTC{': ' + held.reason if held.reason else ''}."
        )
    await ctx.say(
        markup(
            "🔒 {where} locked by {who} for {long} (until {until} UTC){because}.",
            where=f"{project}/{stage}",
            who=name,
            long=format_duration(duration),
            until=f"{expires:%H:%M}",
            because=f": {reason}" if reason else "",
        ),
        tone="warning",
    )


@command(
    "unlock",
    summary="Unlock a stage (an admin may unlock someone else's lock).",
    params=(Param("project", PROJECT), Param("stage", STAGE)),
    role=Role.deployer,
)
async def unlock(ctx: CommandContext) -> None:
    project, stage = ctx.args["project"], ctx.args["stage"]
    held = locks.current_lock(ctx.engine, project, stage)
    if held is None:
        raise CommandError(f"{project}/{stage} is not locked.")
    forced = held.owner_id != ctx.principal_id
    if forced:
        decision = authorize(ctx.engine, ctx.principal_id, Role.admin, project, stage)
        if not decision.allowed:
            raise CommandError(
                f"{project}/{stage} is locked by {held.owner_name}; only they or an admin "
                f"can unlock it (force-unlock {decision.reason})."
            )
    assert held.id is not None
    locks.release(ctx.engine, held.id)
    if forced:
        ctx.audit_note = f"force-unlock of {held.owner_name}'s lock"
        await ctx.say(
            markup(
                "🔓 {where} force-unlocked by {who} (it was locked by {owner}).",
                where=f"{project}/{stage}",
                who=ctx.invocation.display_name,
                owner=held.owner_name,
            ),
            tone="warning",
        )
    else:
        await ctx.say(f"🔓 {project}/{stage} unlocked.", tone="success")
