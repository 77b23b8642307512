"""`/fly secrets list|set|unset|deploy`: a stage's app secrets, as flyctl's `fly secrets`.

Values never come in the command text (`NAME=value` is refused by the pipeline before
anything is bound): `set` declares its names `asks_value`, so each adapter asks privately
(a Slack or Discord modal, a no-echo prompt in the shell) and the values travel beside the
invocation, to Fly only. Without `--stage`, a change is followed by a restart of every
machine with its own image and config and the new `min_secrets_version`, run by the deploy
engine as a release of kind "secrets" (one per app at a time, shared with deploys);
`--stage` leaves the machines alone until `secrets deploy` or the next deploy.

`set`, `unset` and `deploy` are guardable: on a stage whose policy guards "secrets" each is
an approval request listing the names and whether each is new, replaced or removed. The
Fly side and the record of changes are in bot/ops/secrets.py."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import datetime
from typing import TYPE_CHECKING

from bot.lazy import on_first_use
from bot.projects import Project, Stage
from commands.context import CommandContext
from commands.deploy import deploy_plan_of, deployer_of, start_deploy
from commands.errors import CommandError
from commands.guard import Plan
from commands.kinds import PROJECT, SECRET_NAME, STAGE, SWITCH
from commands.registry import Flag, Param, command
from commands.roles import Role
from commands.status import fly_of

if TYPE_CHECKING:
    from bot.deploy.plan import DeployPlan
    from bot.ops import secrets as ops
else:
    ops = on_first_use("bot.ops.secrets")

STAGE_FLAG = Flag(
    "stage",
    SWITCH,
    help="only store it at Fly: the machines get it at the next deploy or `secrets deploy`",
    key="stage_only",
)
NAMES_ASKED = Param(
    "names", SECRET_NAME, many=True, asks_value=True, help="e.g. API_TOKEN (values asked privately)"
)
NAMES = Param("names", SECRET_NAME, many=True, help="e.g. API_TOKEN")


def _entry(ctx: CommandContext) -> tuple[Project, Stage]:
    project = ctx.catalog.projects[ctx.args["project"]]
    stage = project.stage(ctx.args["stage"])
    assert stage is not None
    return project, stage


def _where(ctx: CommandContext) -> str:
    return f"{ctx.args['project']}/{ctx.args['stage']}"


def _when(stamp: str | None) -> str:
    if not stamp:
        return "?"
    try:
        return f"{datetime.fromisoformat(stamp.replace('Z', '+00:00')):%Y-%m-%d %H:%M} UTC"
    except ValueError:
        return stamp[:40]


def _summary(changes: tuple[ops.Change, ...]) -> str:
    return ", ".join(c.line() for c in changes)


@command(
    "secrets",
    "list",
    summary="List a stage's secrets: names, digests and last update, never values.",
    params=(Param("project", PROJECT), Param("stage", STAGE)),
    role=Role.viewer,
    examples=("/fly secrets list ping-go prod",),
)
async def secrets_list(ctx: CommandContext) -> None:
    _, stage = _entry(ctx)
    listed = await fly_of(ctx).list_secrets(stage.app)
    waiting = await asyncio.to_thread(ops.staged, ctx.engine, stage.app)
    last = await asyncio.to_thread(ops.last_changes, ctx.engine, stage.app)
    lines = []
    for secret in sorted(listed, key=lambda s: s.name):
        change = last.get(secret.name)
        by = f" by {change.requester_name}" if change and change.change != "removed" else ""
        mark = "  * staged: not on the machines yet" if secret.name in waiting else ""
        lines.append(
            f"{secret.name}  {secret.digest or '?'}  updated "
            f"{_when(secret.updated_at or secret.created_at)}{by}{mark}"
        )
    listed_names = {s.name for s in listed}
    for name, change in sorted(waiting.items()):
        if change.change == "removed" and name not in listed_names:
            who = change.requester_name
            lines.append(f"{name}  unset by {who}  * staged: the machines still have it")
    text = "" if lines else "No secrets yet. Set one with `/fly secrets set`."
    if waiting:
        text = (
            f"{len(waiting)} change(s) staged: `/fly secrets deploy {ctx.args['project']} "
            f"{ctx.args['stage']}` hands them to the machines (so does the next deploy)."
        )
    await ctx.say(
        text,
        title=f"Secrets of {_where(ctx)} ({stage.app}): names and digests only",
        lines=tuple(lines),
    )


def _change_plan(ctx: CommandContext, action: str, changes: tuple[ops.Change, ...]) -> Plan:
    """The plan of a set or unset: the names and what each change is, never a value (nor a
    digest of one: the approval request is stored)."""
    _, stage = _entry(ctx)
    only_stage = bool(ctx.flags.get("stage_only"))
    lines = [f"Secrets {action} on {stage.app}: {_summary(changes)}"]
    if only_stage:
        lines.append("Staged only: the machines get them at the next deploy or `secrets deploy`.")
    else:
        lines.append(
            "Then every machine restarts with the new secrets version (same image, same config)."
        )
    bound = {
        "app": stage.app,
        "action": action,
        "changes": [(c.name, c.kind) for c in changes],
        "stage": only_stage,
    }
    digest = hashlib.sha256(json.dumps(bound, sort_keys=True).encode()).hexdigest()
    return Plan(
        ctx.args["project"],
        ctx.args["stage"],
        f"Secrets {action} on {_where(ctx)} ({stage.app})",
        tuple(lines),
        digest,
        detail=changes,
    )


async def plan_set(ctx: CommandContext) -> Plan:
    _, stage = _entry(ctx)
    current = await fly_of(ctx).list_secrets(stage.app)
    return _change_plan(ctx, "set", ops.changes_for_set(current, ctx.args["names"]))


async def plan_unset(ctx: CommandContext) -> Plan:
    _, stage = _entry(ctx)
    current = await fly_of(ctx).list_secrets(stage.app)
    try:
        changes = ops.changes_for_unset(current, ctx.args["names"], f"{_where(ctx)} ({stage.app})")
    except ops.SecretsError as exc:
        raise CommandError(str(exc)) from None
    return _change_plan(ctx, "unset", changes)


async def _change(ctx: CommandContext, action: str, values: dict[str, str | None]) -> None:
    assert ctx.plan is not None and isinstance(ctx.plan.detail, tuple)
    changes: tuple[ops.Change, ...] = ctx.plan.detail
    project, stage = _entry(ctx)
    only_stage = bool(ctx.flags.get("stage_only"))
    if not only_stage:
        busy = await asyncio.to_thread(deployer_of(ctx).active, stage.app)
        if busy is not None:
            raise CommandError(
                f"{stage.app} is being deployed by {busy.requester_name or 'someone'} "
                f"(v{busy.version}, {busy.state}); nothing was changed. Try again when it "
                "ends, or add --stage to store the change for the next deploy."
            )
    fly = fly_of(ctx)
    try:
        version = await ops.apply(fly, stage.app, values)
    except ops.SecretsError as exc:
        raise CommandError(str(exc)) from None
    await asyncio.to_thread(
        ops.record,
        ctx.engine,
        project=project.name,
        stage=stage.name,
        app=stage.app,
        changes=changes,
        version=version,
        requested_by=ctx.principal_id,
        requester_name=ctx.invocation.display_name,
    )
    summary = _summary(changes)
    ctx.audit_note = f"secrets {action}: {summary}; Fly secrets version {version}"
    if only_stage:
        ctx.audit_note += " (staged)"
        await ctx.say(
            f"Staged on {_where(ctx)} ({stage.app}), secrets version {version}: {summary}. "
            "The machines get them at the next deploy, or now with "
            f"`/fly secrets deploy {project.name} {stage.name}`.",
            tone="success",
        )
        return
    headline = (f"Secrets {action}: {summary}; secrets version {version}",)
    await _restart(ctx, project, stage, version, headline, summary)


async def _restart(
    ctx: CommandContext,
    project: Project,
    stage: Stage,
    version: int,
    headline: tuple[str, ...],
    summary: str,
) -> None:
    plan = await ops.restart_plan(fly_of(ctx), project, stage, version, headline)
    if plan is None:
        await ctx.say(
            f"{summary} set on {stage.app} (secrets version {version}); it has no machines "
            "yet, so they get them at the first deploy.",
            tone="success",
        )
        return
    try:
        release = await start_deploy(ctx, plan, kind="secrets")
    except CommandError as exc:  # a deploy claimed the app since the check
        ctx.audit_note += "; restart not started, left staged"
        await ctx.say(
            f"{summary}: stored at Fly (secrets version {version}), but the restart could "
            f"not start: {exc} They are staged: `/fly secrets deploy {project.name} "
            f"{stage.name}` hands them out once it ends.",
            tone="warning",
        )
        return
    ctx.audit_note += f"; restart v{release.version}"


@command(
    "secrets",
    "set",
    summary="Set secrets on a stage's app from values asked privately, then restart its "
    "machines with them (--stage: only store them).",
    params=(Param("project", PROJECT), Param("stage", STAGE), NAMES_ASKED),
    flags=(STAGE_FLAG,),
    role=Role.deployer,
    planner=plan_set,
    examples=(
        "/fly secrets set ping-go prod API_TOKEN",
        "/fly secrets set ping-go dev API_TOKEN DATABASE_URL --stage",
    ),
)
async def secrets_set(ctx: CommandContext) -> None:
    await _change(ctx, "set", dict(ctx.secrets.items()))


@command(
    "secrets",
    "unset",
    summary="Remove secrets from a stage's app, then restart its machines without them "
    "(--stage: only remove them at Fly).",
    params=(Param("project", PROJECT), Param("stage", STAGE), NAMES),
    flags=(STAGE_FLAG,),
    role=Role.deployer,
    planner=plan_unset,
    examples=("/fly secrets unset ping-go dev OLD_TOKEN",),
)
async def secrets_unset(ctx: CommandContext) -> None:
    await _change(ctx, "unset", dict.fromkeys(ctx.args["names"]))


async def plan_secrets_deploy(ctx: CommandContext) -> Plan:
    project, stage = _entry(ctx)
    waiting = await asyncio.to_thread(ops.staged, ctx.engine, stage.app)
    version = await asyncio.to_thread(ops.latest_version, ctx.engine, stage.app)
    if not waiting or version is None:
        done = await asyncio.to_thread(ops.applied_version, ctx.engine, stage.app)
        on = f" (secrets version {done})" if done else ""
        raise CommandError(
            f"Nothing staged on {_where(ctx)}: every secret change made through flybot is on "
            f"the machines{on}. A change staged with flyctl reaches them with `/fly deploy`."
        )
    changes = tuple(ops.Change(n, c.change) for n, c in sorted(waiting.items()))
    headline = (f"Staged secrets to hand out: {_summary(changes)}; secrets version {version}",)
    plan: DeployPlan | None = await ops.restart_plan(
        deployer_of(ctx).fly, project, stage, version, headline
    )
    if plan is None:
        raise CommandError(
            f"{stage.app} has no machines yet: the first deploy hands the staged secrets out."
        )
    title = f"Secrets deploy for {_where(ctx)} ({stage.app})"
    return Plan(
        plan.project, plan.stage, title, tuple(plan.summary_lines()), plan.fingerprint, plan
    )


@command(
    "secrets",
    "deploy",
    summary="Hand staged secrets to the machines: a restart with the same image and config.",
    params=(Param("project", PROJECT), Param("stage", STAGE)),
    role=Role.deployer,
    planner=plan_secrets_deploy,
    examples=("/fly secrets deploy ping-go prod",),
)
async def secrets_deploy(ctx: CommandContext) -> None:
    plan = deploy_plan_of(ctx)
    release = await start_deploy(ctx, plan, kind="secrets")
    ctx.audit_note = f"restart v{release.version} with secrets version {plan.min_secrets_version}"
