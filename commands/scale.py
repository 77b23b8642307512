"""`/fly scale show|count|vm`: a stage's machines per process group, and changing how many
there are and how big, as flyctl's `fly scale` does.

`count` and `vm` are guardable: each plans first (bot/ops/scale.py works out the regions,
the removals, the volumes and the sizes), and the plan becomes a deploy-engine plan of kind
"scale", so a scale shares the deploys' one-per-app slot, leases, waits, checks, thread and
durable job, and an approval is bound to the machines it names."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import TYPE_CHECKING, Any

from bot.deploy.guest import PRESETS, parse_memory_mb
from bot.lazy import on_first_use
from bot.projects import Project, Stage
from commands.context import CommandContext
from commands.deploy import deploy_plan_of, deployer_of, start_deploy
from commands.errors import CommandError, UsageError
from commands.guard import Plan
from commands.kinds import GROUP, PROJECT, STAGE, Binding, Kind, _groups_of
from commands.registry import Flag, Param, command
from commands.roles import Role
from commands.status import fly_of

if TYPE_CHECKING:
    from bot.deploy import flytoml
    from bot.deploy import plan as plans
    from bot.fly import FlyClient, Machine
    from bot.ops import scale as ops
else:
    flytoml = on_first_use("bot.deploy.flytoml")
    plans = on_first_use("bot.deploy.plan")
    ops = on_first_use("bot.ops.scale")


def _count(label: str, word: str, binding: Binding) -> tuple[str, int]:
    try:
        return ops.parse_count(word, _groups_of(binding))
    except ops.ScaleError as exc:
        raise UsageError(str(exc)) from None


def _count_word(value: tuple[str, int]) -> str:
    return f"{value[0]}={value[1]}"


def _regions(label: str, word: str, binding: Binding) -> tuple[str, ...]:
    try:
        return ops.parse_regions(word)
    except ops.ScaleError as exc:
        raise UsageError(str(exc)) from None


def _per_region(label: str, word: str, binding: Binding) -> int:
    if not word.isdigit() or not 1 <= int(word) <= ops.MAX_COUNT:
        raise UsageError(
            f"{label} must be a whole number from 1 to {ops.MAX_COUNT}, not '{word[:20]}'."
        )
    return int(word)


def _size(label: str, word: str, binding: Binding) -> str:
    size = word.lower()
    if size not in PRESETS:
        raise UsageError(f"Unknown size '{word[:40]}'. Sizes: {', '.join(PRESETS)}.")
    return size


def _memory(label: str, word: str, binding: Binding) -> int:
    try:
        memory = parse_memory_mb(word)
    except ValueError:
        raise UsageError(
            f"{label} must be megabytes, e.g. 512 or 1gb, not '{word[:20]}'."
        ) from None
    size = binding.bound.get("size")
    if isinstance(size, str):
        try:
            ops.check_guest(size, memory)
        except ops.ScaleError as exc:
            raise UsageError(str(exc)) from None
    return memory


COUNT = Kind("count", "a count (3) or group=count (web=3), 0 or more", _count, word=_count_word)
REGIONS = Kind("regions", "region codes, comma-separated, e.g. nrt,sin", _regions, word=",".join)
PER_REGION = Kind("per_region", "a whole number, 1 or more", _per_region, value_type="integer")
SIZE = Kind("size", f"a Fly size: {', '.join(PRESETS)}", _size, choices=tuple(PRESETS))
MEMORY = Kind("memory", "megabytes, e.g. 512 or 1gb", _memory, value_type="integer")


def _stage(ctx: CommandContext) -> tuple[Project, Stage, flytoml.StageConfig]:
    project = ctx.catalog.projects[ctx.args["project"]]
    stage = project.stage(ctx.args["stage"])
    assert stage is not None
    try:
        config = flytoml.load_stage_config(stage.config_file)
    except flytoml.FlyTomlError as exc:
        raise CommandError(f"{exc}; nothing was changed.") from None
    if config.app != stage.app:
        raise CommandError(
            f'{stage.config_file.name} says app = "{config.app}", but {project.name}/'
            f"{stage.name} is {stage.app} in flybot's catalog; nothing was changed."
        )
    return project, stage, config


def _by_group(machines: list[Machine]) -> dict[str, list[Machine]]:
    groups: dict[str, list[Machine]] = {}
    for machine in machines:
        groups.setdefault(ops.group_of(machine), []).append(machine)
    return groups


def _where(ctx: CommandContext) -> str:
    return f"{ctx.args['project']}/{ctx.args['stage']}"


# --- show -----------------------------------------------------------------------------------


@command(
    "scale",
    "show",
    summary="Show a stage's machines per process group: regions, size, memory, state.",
    params=(Param("project", PROJECT), Param("stage", STAGE)),
    role=Role.viewer,
    examples=("/fly scale show ping-go prod",),
)
async def scale_show(ctx: CommandContext) -> None:
    _, stage, config = _stage(ctx)
    fly = fly_of(ctx)
    machines, volumes = await asyncio.gather(
        plans.managed_machines(fly, stage.app), fly.list_volumes(stage.app)
    )
    groups = _by_group(machines)
    lines: list[str] = []
    for group in sorted(set(groups) | set(config.groups)):
        members = sorted(groups.get(group, []), key=lambda m: (m.region or "", m.id))
        if not members:
            lines.append(f"[{group}] no machines (`/fly scale count` builds them from fly.toml)")
            continue
        sizes = Counter(
            ops.guest_text(m.config.guest.to_json() if m.config and m.config.guest else None)
            for m in members
        )
        size = ", ".join(f"{s} ×{n}" if len(sizes) > 1 else s for s, n in sizes.items())
        lines.append(f"[{group}] {len(members)} machine(s), {size}")
        for region in dict.fromkeys(m.region or "?" for m in members):
            here = [m for m in members if (m.region or "?") == region]
            states = Counter(m.state or "?" for m in here)
            shown = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
            lines.append(f"    {region}: {len(here)} ({shown}) — {', '.join(m.id for m in here)}")
    free = Counter(
        f"{v.name} in {v.region}"
        for v in volumes
        if not v.attached and v.state in (None, "created")
    )
    if volumes:
        attached = sum(1 for v in volumes if v.attached)
        lines.append(
            f"Volumes: {attached} attached, {sum(free.values())} free"
            + (f" ({', '.join(f'{k} ×{n}' for k, n in free.items())})" if free else "")
        )
    await ctx.say(
        "" if lines else "No machines yet.",
        title=f"Scale of {_where(ctx)} ({stage.app}), primary region "
        f"{config.primary_region or 'iad'}",
        lines=tuple(lines),
    )


# --- count ----------------------------------------------------------------------------------


async def _fresh_configs(
    fly: FlyClient, stage: Stage, config: flytoml.StageConfig, machines: list[Machine]
) -> tuple[dict[str, dict[str, Any]], str]:
    """fly.toml's config for each group, with the image the app runs now and the release
    metadata its machines carry (flyctl: the latest complete release's)."""
    image, _ = plans.majority_image(machines)
    if not image:
        current = await fly.current_release(stage.app)  # no machine left: Fly's last release
        image = (current.image_ref or "") if current else ""
    if not image:
        return {}, ""
    metadata: dict[str, str] = {}
    if machines:
        newest = ops.newest(machines).metadata
        metadata = {
            k: v for k, v in newest.items() if k in ("fly_release_id", "fly_release_version")
        }
    configs = {}
    for group in config.groups:
        built = config.machine_config(group, image)
        built["metadata"] = {**built["metadata"], **metadata}
        configs[group] = built
    return configs, image


def _scale_plan(
    ctx: CommandContext,
    project: Project,
    stage: Stage,
    config: flytoml.StageConfig,
    machines: list[Machine],
    groups: tuple[plans.GroupPlan, ...],
    lines: list[str],
    notes: list[str],
    what: str,
) -> Plan:
    image, digest = plans.majority_image(machines)
    if not any(g.update or g.create_regions or g.remove for g in groups):
        raise CommandError(f"{_where(ctx)} is already scaled as asked: nothing to change.")
    plan = plans.DeployPlan(
        project=project.name,
        stage=stage.name,
        app=stage.app,
        image=image,
        image_source="current",
        image_digest=digest,
        previous_image=image,
        strategy=what,
        max_unavailable=1,
        wait_timeout=config.deploy.wait_timeout,
        release_command=None,
        primary_region=config.primary_region or "iad",
        groups=groups,
        config_hash="",
        stage_hash=config.config_hash(),
        rollback_on_failure=stage.policy.rollback_on_failure,
        fail_fast=stage.policy.fail_fast,
        notes=tuple(notes),
        kind="scale",
        scale_lines=tuple(lines),
    )
    title = f"Scale plan for {_where(ctx)} ({stage.app})"
    return Plan(
        project.name, stage.name, title, tuple(plan.summary_lines()), plan.fingerprint, plan
    )


async def plan_count(ctx: CommandContext) -> Plan:
    project, stage, config = _stage(ctx)
    fly = deployer_of(ctx).fly
    machines = await plans.managed_machines(fly, stage.app)
    volumes = await fly.list_volumes(stage.app)
    wanted: dict[str, int] = {}
    for group, count in ctx.args["counts"]:
        if group in wanted and wanted[group] != count:
            raise CommandError(f"[{group}] is given twice ({wanted[group]} and {count}).")
        wanted[group] = count
    given: tuple[str, ...] | None = ctx.flags.get("region")
    per_region: int | None = ctx.flags.get("max-per-region")
    by_group = _by_group(machines)
    fresh: dict[str, dict[str, Any]] = {}
    if any(not by_group.get(g) for g in wanted):
        fresh, _ = await _fresh_configs(fly, stage, config, machines)
    pool = ops.VolumePool.of(volumes)
    primary = config.primary_region or "iad"
    groups: list[plans.GroupPlan] = []
    lines: list[str] = []
    try:
        for group, count in wanted.items():
            counted = ops.plan_group_count(
                group,
                count,
                by_group.get(group, []),
                primary=primary,
                given_regions=given,
                max_per_region=per_region,
                fresh_config=fresh.get(group),
                pool=pool,
            )
            lines.extend(counted.lines())
            groups.append(
                plans.GroupPlan(
                    group=group,
                    config=counted.config,
                    create_regions=counted.create_regions,
                    create_volumes=counted.volumes,
                    remove=counted.remove,
                )
            )
    except ops.ScaleError as exc:
        raise CommandError(str(exc)) from None
    if given:
        elsewhere = [m for g in wanted for m in by_group.get(g, []) if m.region not in given]
        if elsewhere:
            lines.append(
                f"Counted in {', '.join(given)} only: {len(elsewhere)} machine(s) elsewhere "
                "stay as they are."
            )
    return _scale_plan(ctx, project, stage, config, machines, tuple(groups), lines, [], "count")


@command(
    "scale",
    "count",
    summary="Set how many machines a process group has: new ones spread over the regions "
    "round-robin, the primary region shrinks last.",
    params=(Param("project", PROJECT), Param("stage", STAGE), Param("counts", COUNT, many=True)),
    flags=(
        Flag("region", REGIONS, help="regions to act on, first = primary", metavar="R,R"),
        Flag("max-per-region", PER_REGION, help="at most this many per region", metavar="K"),
    ),
    role=Role.deployer,
    planner=plan_count,
    examples=(
        "/fly scale count ping-go dev web=3",
        "/fly scale count ping-go prod web=4 cron=1 --region nrt,sin",
        "/fly scale count ping-go prod web=2 --dry-run",
    ),
)
async def scale_count(ctx: CommandContext) -> None:
    plan = deploy_plan_of(ctx)
    release = await start_deploy(ctx, plan, kind="scale")
    counts = ", ".join(f"{g}={n}" for g, n in ctx.args["counts"])
    ctx.audit_note = f"scale v{release.version}: count {counts}"


# --- vm -------------------------------------------------------------------------------------


async def plan_vm(ctx: CommandContext) -> Plan:
    project, stage, config = _stage(ctx)
    size: str = ctx.args["size"]
    memory: int | None = ctx.flags.get("memory")
    try:
        guest = ops.check_guest(size, memory)
    except ops.ScaleError as exc:
        raise CommandError(str(exc)) from None
    group: str | None = ctx.flags.get("group")
    if group is None:
        if len(config.groups) > 1:
            raise CommandError(
                f"{_where(ctx)} has several process groups ({', '.join(config.groups)}): "
                f"say which with --group, e.g. --group {config.groups[0]}."
            )
        group = config.groups[0]
    machines = await plans.managed_machines(deployer_of(ctx).fly, stage.app)
    members = _by_group(machines).get(group, [])
    if not members:
        raise CommandError(
            f"[{group}] of {_where(ctx)} has no machines to resize; see `/fly scale show`."
        )
    changing = [
        m
        for m in members
        if {
            k: (m.config.guest.to_json() if m.config and m.config.guest else {}).get(k)
            for k in ("cpu_kind", "cpus", "memory_mb")
        }
        != guest.to_json()
    ]
    new = ops.guest_text(guest.to_json())
    lines = [
        f"[{group}] resize {len(changing)} of {len(members)} machine(s) to {new}, one at a time"
    ]
    for machine in changing:
        old = ops.guest_text(
            machine.config.guest.to_json() if machine.config and machine.config.guest else None
        )
        lines.append(f"    {machine.id} ({machine.region}, {machine.state}): {old} → {new}")
    notes: list[str] = []
    toml_guest = config.guest(group)
    warning = ops.undo_warning(stage.config_file.name, group, toml_guest, bool(config.vms), guest)
    if warning:
        notes.append(warning)
    group_plan = plans.GroupPlan(
        group=group, config={}, update=tuple(changing), guest=guest.to_json()
    )
    groups = (group_plan,)
    return _scale_plan(ctx, project, stage, config, machines, groups, lines, notes, "vm")


@command(
    "scale",
    "vm",
    summary="Resize a process group's machines to a Fly size (and memory), one machine at "
    "a time, each waited for.",
    params=(Param("project", PROJECT), Param("stage", STAGE), Param("size", SIZE)),
    flags=(
        Flag("memory", MEMORY, help="megabytes (default: the size's)", metavar="MB"),
        Flag("group", GROUP, help="the process group (needed when there are several)", metavar="G"),
    ),
    role=Role.deployer,
    planner=plan_vm,
    examples=(
        "/fly scale vm ping-go prod shared-cpu-2x --group web",
        "/fly scale vm ping-go prod performance-1x --memory 4096 --group web",
    ),
)
async def scale_vm(ctx: CommandContext) -> None:
    plan = deploy_plan_of(ctx)
    release = await start_deploy(ctx, plan, kind="scale")
    group = plan.groups[0].group
    ctx.audit_note = f"scale v{release.version}: [{group}] to {ctx.args['size']}"
    warning = next((n for n in plan.notes if n.startswith("⚠")), None)
    if warning:
        await ctx.say(warning, tone="warning")
