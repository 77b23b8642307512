"""`/fly status <project> <stage>` and `/fly apps`: what runs where, read from Fly."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from bot.fly import FlyAPIError
from bot.lazy import on_first_use
from bot.store import locks
from commands.context import CommandContext
from commands.errors import CommandError
from commands.kinds import PROJECT, STAGE
from commands.registry import Param, command
from commands.roles import Role

if TYPE_CHECKING:
    from bot.fly import FlyClient, Machine
    from bot.ops import attached
else:
    attached = on_first_use("bot.ops.attached")


def fly_of(ctx: CommandContext) -> FlyClient:
    if ctx.services.fly is None:
        raise CommandError("flybot has no Fly API token: set FLY_API_TOKEN and restart it.")
    return ctx.services.fly


def _checks(machine: Machine) -> str:
    if not machine.checks:
        return "no checks"
    passing = sum(1 for c in machine.checks if c.status == "passing")
    failing = [c for c in machine.checks if c.status == "critical"]
    text = f"checks {passing}/{len(machine.checks)} passing"
    if failing and failing[0].output:
        text += f" ({failing[0].name}: {failing[0].output.strip()[:120]})"
    return text


def machine_line(machine: Machine) -> str:
    image = machine.config.image if machine.config and machine.config.image else "?"
    version = machine.current_version or "?"
    return (
        f"{machine.id}  {machine.region or '?'}  {machine.state or '?'}  {image}  "
        f"v{version}  {_checks(machine)}"
    )


@command(
    "status",
    summary="Show a stage's machines by process group and region: state, image, checks.",
    params=(Param("project", PROJECT), Param("stage", STAGE)),
    role=Role.viewer,
    examples=("/fly status ping-go prod",),
)
async def status(ctx: CommandContext) -> None:
    project, stage_name = ctx.args["project"], ctx.args["stage"]
    stage = ctx.catalog.projects[project].stage(stage_name)
    assert stage is not None
    machines = await fly_of(ctx).list_machines(stage.app)
    groups: dict[str, list[Machine]] = defaultdict(list)
    for machine in machines:
        groups[machine.metadata.get("fly_process_group", "app")].append(machine)
    lines: list[str] = []
    for group in sorted(groups):
        lines.append(f"{group} ({len(groups[group])})")
        for machine in sorted(groups[group], key=lambda m: (m.region or "", m.id)):
            lines.append(f"  {machine_line(machine)}")
    held = locks.current_lock(ctx.engine, project, stage_name)
    fields = [("App", stage.app), ("Machines", str(len(machines)))]
    try:
        ips = await fly_of(ctx).list_ip_assignments(stage.app)
    except FlyAPIError:
        ips = []  # the machines are what status is for: addresses are shown when Fly answers
    if ips:
        fields.append(("IPs", ", ".join(f"{i.ip} ({i.type})" for i in ips)))
    catalog_apps = {s.app for p in ctx.catalog.projects.values() for s in p.stages}
    databases = await attached.attached_lines(
        fly_of(ctx), ctx.services.settings.fly_org, stage.app, catalog_apps
    )
    if databases:
        lines.append("databases")
        lines.extend(f"  {line}" for line in databases)
    if held is not None:
        reason = f": {held.reason}" if held.reason else ""
        fields.append(
            ("Lock", f"locked by {held.owner_name} until {held.expires_at:%H:%M} UTC{reason}")
        )
    await ctx.say(
        "" if machines else "No machines yet.",
        title=f"{project}/{stage_name}",
        fields=tuple(fields),
        lines=tuple(lines),
    )


@command(
    "apps",
    summary="List the org's Fly apps and which project stage each one is.",
    role=Role.viewer,
)
async def apps(ctx: CommandContext) -> None:
    listed = await fly_of(ctx).list_apps(ctx.services.settings.fly_org)
    stage_of = {
        s.app: f"{p.name}/{s.name}" for p in ctx.catalog.projects.values() for s in p.stages
    }
    lines = tuple(
        f"{app.name}  {app.status or '?'}  machines: {app.machine_count or 0}"
        + (f"  ← {stage_of[app.name]}" if app.name in stage_of else "")
        for app in sorted(listed, key=lambda a: a.name)
    )
    await ctx.say(
        "" if lines else "No apps in this org.",
        title=f"Apps in {ctx.services.settings.fly_org}",
        lines=lines,
    )
