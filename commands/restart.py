"""`/fly restart <project> <stage> [--group g] [--machine id]`: a rolling restart — every
machine (of a process group, or one machine) updated with its own current config, leased,
one batch at a time as [deploy] says, each waited for until its checks pass: a deploy
without a config change. It is the same restart plan `/fly secrets` hands secrets out with
(bot/ops/secrets.py), guardable (`guarded = [..., "restart"]`) and planned first."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.lazy import on_first_use
from commands.context import CommandContext
from commands.deploy import deploy_plan_of, deployer_of, start_deploy
from commands.errors import CommandError
from commands.guard import Plan
from commands.kinds import GROUP, PROJECT, STAGE
from commands.logs import MACHINE
from commands.registry import Flag, Param, command
from commands.roles import Role

if TYPE_CHECKING:
    from bot.deploy.plan import DeployPlan
    from bot.ops import secrets as secrets_ops
else:
    secrets_ops = on_first_use("bot.ops.secrets")


async def plan_restart(ctx: CommandContext) -> Plan:
    project, stage_name = ctx.args["project"], ctx.args["stage"]
    entry = ctx.catalog.projects[project]
    stage = entry.stage(stage_name)
    assert stage is not None
    group, machine = ctx.flags.get("group"), ctx.flags.get("machine")
    plan: DeployPlan | None = await secrets_ops.restart_plan(
        deployer_of(ctx).fly,
        entry,
        stage,
        None,
        only_groups=(group,) if group else None,
        only_machine=machine,
        kind="restart",
    )
    if plan is None or not plan.machine_count:
        what = (
            f"machine {machine}"
            if machine
            else (f"process group [{group}]" if group else "machines")
        )
        raise CommandError(
            f"{stage.app} ({project}/{stage_name}) has no {what} to restart; nothing was "
            "changed." + (" See its machines with /fly status." if machine or group else "")
        )
    scope = f" ({', '.join(x for x in (f'[{group}]' if group else '', machine or '') if x)})"
    title = f"Restart plan for {project}/{stage_name}" + (scope if group or machine else "")
    lines = tuple(plan.summary_lines())
    return Plan(project, stage_name, title, lines, plan.fingerprint, detail=plan)


@command(
    "restart",
    summary="Restart a stage's machines one batch at a time, each waited for until healthy.",
    params=(Param("project", PROJECT), Param("stage", STAGE)),
    flags=(
        Flag("group", GROUP, help="only this process group", metavar="G"),
        Flag("machine", MACHINE, help="only this machine", metavar="ID"),
    ),
    role=Role.deployer,
    planner=plan_restart,
    examples=("/fly restart ping-go prod", "/fly restart ping-go prod --group web"),
)
async def restart(ctx: CommandContext) -> None:
    plan = deploy_plan_of(ctx)
    release = await start_deploy(ctx, plan, kind="restart")
    ctx.audit_note = f"restart as v{release.version} ({plan.machine_count} machine(s))"
