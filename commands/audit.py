"""`/fly audit [project] [--limit N]`: the latest attempts, allowed and refused."""

from __future__ import annotations

from bot.store import audit
from commands.context import CommandContext
from commands.errors import UsageError
from commands.kinds import INT, PROJECT
from commands.registry import Flag, Param, command
from commands.roles import Role

MAX_LIMIT = 200


@command(
    "audit",
    summary="Show the audit log, newest first.",
    params=(Param("project", PROJECT, required=False),),
    flags=(Flag("limit", INT, help=f"how many entries (1-{MAX_LIMIT}, default 20)", metavar="N"),),
    role=Role.approver,
    examples=("/fly audit ping-go --limit 50",),
)
async def show_audit(ctx: CommandContext) -> None:
    limit = ctx.flags.get("limit", 20)
    if not 1 <= limit <= MAX_LIMIT:
        raise UsageError(f"--limit must be between 1 and {MAX_LIMIT}.")
    entries = audit.recent(ctx.engine, ctx.args.get("project"), limit)
    lines = tuple(
        f"{e.at:%Y-%m-%d %H:%M:%S} {e.display_name} ({e.platform}:{e.user_id}) "
        f"{e.action} {e.project or ''}{'/' + e.stage if e.stage else ''} "
        f"→ {e.outcome}{': ' + e.reason if e.reason else ''}"
        for e in entries
    )
    # A code block, not a list: a long log is split across messages, never cut.
    await ctx.say_private("" if lines else "The audit log is empty.", title="Audit log", code=lines)
