"""`/fly logs <project> <stage> [--machine id] [--region r] [--lines N]`: the stage's newest
log lines from Fly's log endpoint, as one code block cut from the top to fit the platform."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bot.fly import NotFoundError
from bot.lazy import on_first_use
from commands.context import CommandContext
from commands.errors import CommandError, UsageError
from commands.kinds import PROJECT, STAGE, Binding, Kind
from commands.registry import Flag, Param, command
from commands.roles import Role
from commands.status import fly_of

if TYPE_CHECKING:
    from bot.ops import logs as ops
else:
    ops = on_first_use("bot.ops.logs")

DEFAULT_LINES = 50
MAX_LINES = 500


def _lines(label: str, word: str, binding: Binding) -> int:
    if not re.fullmatch(r"\d{1,4}", word) or not 1 <= int(word) <= MAX_LINES:
        raise UsageError(f"{label} must be a whole number from 1 to {MAX_LINES}, not '{word}'.")
    return int(word)


def _machine(label: str, word: str, binding: Binding) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", word):
        raise UsageError(f"{label} '{word[:80]}' is not a machine id (e.g. 148e21ea7d9389).")
    return word


def _region(label: str, word: str, binding: Binding) -> str:
    if not re.fullmatch(r"[a-z]{3}", word):
        raise UsageError(f"{label} '{word[:80]}' is not a Fly region code (e.g. nrt, iad).")
    return word


LINES = Kind("lines", f"a number of lines, 1 to {MAX_LINES}", _lines, value_type="integer")
MACHINE = Kind("machine", "a machine id of the stage's app", _machine)
REGION = Kind("region", "a Fly region code, e.g. nrt", _region)


@command(
    "logs",
    summary="Show a stage's newest log lines (one machine or region with --machine/--region).",
    params=(Param("project", PROJECT), Param("stage", STAGE)),
    flags=(
        Flag("machine", MACHINE, help="only this machine's lines", metavar="ID"),
        Flag("region", REGION, help="only this region's machines", metavar="R"),
        Flag("lines", LINES, help=f"how many (default {DEFAULT_LINES})", metavar="N"),
    ),
    role=Role.viewer,
    examples=(
        "/fly logs ping-go prod",
        "/fly logs ping-go prod --machine 148e21ea7d9389 --lines 20",
    ),
)
async def logs(ctx: CommandContext) -> None:
    project, stage_name = ctx.args["project"], ctx.args["stage"]
    stage = ctx.catalog.projects[project].stage(stage_name)
    assert stage is not None
    fly = fly_of(ctx)
    machine, region = ctx.flags.get("machine"), ctx.flags.get("region")
    count = ctx.flags.get("lines", DEFAULT_LINES)
    if machine is not None or region is not None:
        machines = [m for m in await fly.list_machines(stage.app) if m.state not in ("destroyed",)]
        if machine is not None and not any(machine in (m.id, m.name) for m in machines):
            try:  # a destroyed machine's lines are still Fly's to show
                await fly.get_machine(stage.app, machine)
            except NotFoundError:
                known = ", ".join(sorted(m.id for m in machines)[:10]) or "none"
                raise CommandError(
                    f"No machine '{machine}' in {stage.app} ({project}/{stage_name}). "
                    f"Its machines: {known}."
                ) from None
        if region is not None and not any(m.region == region for m in machines):
            regions = ", ".join(sorted({m.region or "?" for m in machines})) or "none"
            raise CommandError(
                f"{stage.app} ({project}/{stage_name}) has no machines in {region}. "
                f"Its regions: {regions}."
            )
    entries = await fly.recent_logs(stage.app, lines=count, instance=machine, region=region)
    scope = ", ".join(
        part for part in (f"machine {machine}" if machine else "", region or "") if part
    )
    title = f"Logs of {project}/{stage_name} ({stage.app})"
    if not entries:
        await ctx.say("No log lines yet" + (f" for {scope}." if scope else "."), title=title)
        return
    await ctx.say(
        f"Newest {len(entries)} line(s)" + (f" of {scope}" if scope else "") + ", oldest first.",
        title=title,
        code=tuple(ops.format_line(e) for e in entries),
        code_tail=True,
    )
