"""The pipeline's guard step, for every verb declared `guardable`.

Before a guardable handler runs, the pipeline asks the verb for its `Plan` (what it is about
to do, and a fingerprint of everything that changes what runs), then:

1. `--dry-run` shows the plan and stops;
2. a stage lock held by someone else, or a freeze window, refuses it;
3. the stage's policy (`guarded = [...]` naming the verb) turns it into an approval request
   bound to the plan's fingerprint — or, when it runs because that request was approved, the
   plan is planned again and compared: a changed plan voids the approval.

A verb gets all of this by declaring `guardable=True` (and, for a plan of its own, a
`planner`); none of it lives in the verb's handler.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from bot.clock import utcnow
from bot.durations import format_duration
from bot.freeze import active_freeze
from bot.store import locks
from bot.store.engine import session_scope
from bot.store.models import ApprovalRequest
from commands import requests
from commands.binding import canonical_line
from commands.context import CommandContext
from commands.errors import CommandError
from commands.roles import ANY


@dataclass(frozen=True)
class Plan:
    """What a guarded verb is about to do: shown before it runs, bound to its approval."""

    project: str
    stage: str
    title: str  # e.g. "Plan for ping-go/prod (ping-go-prod)"
    lines: tuple[str, ...]  # the plan as shown, one line per row
    fingerprint: str  # changes whenever what would run changes
    detail: object = None  # the verb's own plan (a DeployPlan), handed back to its handler


@dataclass(frozen=True)
class Approved:
    """Handed to a guarded command when it runs because its request was approved."""

    request: ApprovalRequest
    approvers: tuple[str, ...]


class AwaitingApproval(Exception):
    """Not an error: the action now waits for approval in its thread."""

    def __init__(self, request: ApprovalRequest) -> None:
        self.request = request
        super().__init__(f"request #{request.id} awaits approval")


class DryRun(Exception):
    """Not an error: the plan was shown and nothing was changed."""


async def default_plan(ctx: CommandContext) -> Plan:
    """A verb without a planner of its own is planned as the command line itself, plus the
    names of any secret values it carries."""
    project, stage = ctx.args.get("project", ANY), ctx.args.get("stage", ANY)
    flags = {name: value for name, value in ctx.flags.items() if name != "dry-run"}
    line = canonical_line(ctx.command, ctx.args, flags, mask=True)
    names = sorted(ctx.secrets)
    digest = hashlib.sha256(f"{line}\n{','.join(names)}".encode()).hexdigest()
    lines = [f"Run: /fly {line}"]
    if names:
        lines.append(f"Secrets: {', '.join(names)}")
    return Plan(project, stage, f"Plan for {project}/{stage}", tuple(lines), digest)


async def check(ctx: CommandContext) -> None:
    """Plan the command, then apply dry run, locks, freezes and approval (see above)."""
    planner = ctx.command.planner or default_plan
    plan = await planner(ctx)
    ctx.plan = plan
    if ctx.flags.get("dry-run"):
        await ctx.say("Dry run: nothing was changed.", title=plan.title, lines=plan.lines)
        raise DryRun()
    refuse_if_held(ctx, plan.project, plan.stage)
    await require_approval(ctx, plan)


def refuse_if_held(ctx: CommandContext, project: str, stage: str) -> None:
    """A lock held by someone else and a freeze window refuse a guarded action, saying why."""
    held = locks.current_lock(ctx.engine, project, stage)
    if held is not None and held.owner_id != ctx.principal_id:
        reason = f": {held.reason}" if held.reason else ""
        raise CommandError(
            f"{project}/{stage} is locked by {held.owner_name} until "
            f"{held.expires_at:%H:%M} UTC{reason}."
        )
    entry = ctx.catalog.project(project)
    stage_entry = entry.stage(stage) if entry else None
    if stage_entry is None:
        return
    window = active_freeze(stage_entry.policy.freeze, utcnow())
    if window is not None:
        raise CommandError(
            f"{project}/{stage} is frozen now ({window}); no {ctx.command.verb} until it ends."
        )


async def require_approval(ctx: CommandContext, plan: Plan) -> None:
    """Return when the action may run now; raise `AwaitingApproval` after posting a new
    request when the stage's policy guards the verb."""
    if ctx.approved is not None:
        _check_still_the_plan_approved(ctx, ctx.approved.request, plan)
        return
    entry = ctx.catalog.project(plan.project)
    stage_entry = entry.stage(plan.stage) if entry else None
    if stage_entry is None:
        return
    policy = stage_entry.policy
    if ctx.command.policy_verb not in policy.guarded or policy.approvals <= 0:
        return
    invocation = ctx.invocation
    request = ApprovalRequest(
        project=plan.project,
        stage=plan.stage,
        verb=ctx.command.verb,
        command=canonical_line(ctx.command, ctx.args, ctx.flags, mask=True),
        fingerprint=plan.fingerprint,
        summary="\n".join(plan.lines),
        requested_by=ctx.principal_id,
        requester_name=invocation.display_name,
        requester_platform=invocation.platform,
        requester_workspace=invocation.workspace_id,
        requester_user=invocation.user_id,
        approvals_needed=policy.approvals,
        approver_role=policy.approver_role,
        expires_at=utcnow() + policy.approval_expires,
        platform=invocation.platform,
        channel_id=invocation.channel_id,
    )
    with session_scope(ctx.engine) as session:
        session.add(request)
        session.flush()
    request_id = request.id or 0
    if ctx.secrets:
        ctx.services.held_secrets[request_id] = ctx.secrets
    status = f"waiting for approval (expires in {format_duration(policy.approval_expires)})"
    if ctx.secrets:
        status += (
            "; the secret values wait in memory only, until it is approved or expires: a "
            "restart of flybot drops them, and the requester must set them again"
        )
    thread = await ctx.interaction.start_thread(
        requests.card(ctx.engine, request, status, [], live=True)
    )
    with session_scope(ctx.engine) as session:
        stored = session.get(ApprovalRequest, request_id)
        assert stored is not None
        stored.thread_id = thread.thread_id or thread.message_id
        stored.message_id = thread.message_id
        session.add(stored)
    requests.record(
        ctx.engine,
        request,
        "approval requested",
        invocation.display_name,
        "requested",
        principal_id=ctx.principal_id,
        platform=invocation.platform,
        workspace=invocation.workspace_id,
        user=invocation.user_id,
    )
    ctx.audit_note = f"approval request #{request_id} opened"
    raise AwaitingApproval(request)


def _check_still_the_plan_approved(
    ctx: CommandContext, request: ApprovalRequest, plan: Plan
) -> None:
    if request.fingerprint == plan.fingerprint:
        return
    requests.transition(
        ctx.engine,
        request.id or 0,
        ("executing",),
        "voided",
        reason="the plan changed after it was approved",
        decided_at=utcnow(),
    )
    requests.record(
        ctx.engine,
        request,
        "approval voided",
        "flybot",
        "voided",
        "the plan changed after it was approved (new image or edited fly.toml)",
    )
    raise CommandError(
        f"Request #{request.id} is void: the plan changed after it was "
        "asked for (a new image or an edited fly.toml). Ask again."
    )
