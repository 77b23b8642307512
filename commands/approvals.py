"""Approvals in the thread: `/fly approve ID`, `/fly reject ID [reason]`, `/fly pending`,
and `require_approval`, which every guardable command calls before it acts.

Rules (DESIGN.md): no self-approval; each approver counts once; the approver's role is
checked at the moment of the click; one reject ends it; an unanswered request expires; a
changed plan voids it before it runs. Every transition is a compare-and-set.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from bot.clock import utcnow
from bot.durations import format_duration
from bot.store import audit
from bot.store.approvals import move_request
from bot.store.engine import session_scope
from bot.store.models import ApprovalRequest, ApprovalVote, AuditEntry
from commands.context import CommandContext
from commands.dispatch import run_approved
from commands.errors import CommandError, PermissionDenied
from commands.guard import Approved, AwaitingApproval
from commands.permissions import authorize, holders
from commands.port import Button, Conversation, MessageRef, Reply
from commands.registry import Param, Registry
from commands.roles import Role

APPROVE_ACTION = "approval.approve"
REJECT_ACTION = "approval.reject"


def buttons(request_id: int) -> tuple[Button, ...]:
    return (
        Button("Approve", APPROVE_ACTION, str(request_id), f"approve {request_id}", "primary"),
        Button("Reject", REJECT_ACTION, str(request_id), f"reject {request_id}", "danger"),
    )


def _transition(
    engine: Engine, request_id: int, expect: tuple[str, ...], to: str, **values: object
) -> bool:
    return move_request(engine, request_id, expect, to, **values)


def _get(engine: Engine, request_id: int) -> ApprovalRequest | None:
    with session_scope(engine) as session:
        return session.get(ApprovalRequest, request_id)


def _votes(engine: Engine, request_id: int) -> list[ApprovalVote]:
    with session_scope(engine) as session:
        return list(
            session.exec(
                select(ApprovalVote)
                .where(ApprovalVote.request_id == request_id)
                .order_by(col(ApprovalVote.id))
            )
        )


def _record(
    engine: Engine,
    request: ApprovalRequest,
    action: str,
    who: str,
    outcome: str,
    reason: str = "",
    principal_id: int | None = None,
    platform: str = "",
    workspace: str = "",
    user: str = "",
) -> None:
    audit.record(
        engine,
        AuditEntry(
            principal_id=principal_id,
            platform=platform or "flybot",
            workspace_id=workspace,
            user_id=user,
            display_name=who,
            action=action,
            project=request.project,
            stage=request.stage,
            command=f"request #{request.id}: {request.command}"[:500],
            outcome=outcome,
            reason=reason,
        ),
    )


def _thread(request: ApprovalRequest) -> MessageRef:
    return MessageRef(request.channel_id, request.message_id, request.thread_id or None)


def _card(
    engine: Engine, request: ApprovalRequest, status: str, votes: list[ApprovalVote], live: bool
) -> Reply:
    approved_by = ", ".join(v.name for v in votes) or "nobody yet"
    who = holders(engine, Role.parse(request.approver_role), request.project, request.stage)
    who.pop(request.requested_by, None)
    can_approve = ", ".join(sorted(who.values())) or "nobody yet: an admin must grant the role"
    return Reply(
        title=f"🔐 #{request.id} {request.verb} {request.project}/{request.stage} "
        f"requested by {request.requester_name}",
        text=status,
        tone="warning" if live else ("success" if request.state == "executed" else "info"),
        fields=(
            (
                "Needs",
                f"{request.approvals_needed} approval{'s' if request.approvals_needed > 1 else ''}"
                f" by someone with the {request.approver_role} role, not the requester",
            ),
            ("Can approve", can_approve),
            ("Approved by", approved_by),
            ("Expires", f"{request.expires_at:%H:%M} UTC"),
        ),
        lines=tuple(request.summary.splitlines()),
        buttons=buttons(request.id or 0) if live else (),
    )


async def require_approval(
    ctx: CommandContext, verb: str, project: str, stage: str, fingerprint: str, summary: list[str]
) -> Approved | None:
    """Call before acting. Returns `Approved` when the action may run now (as the approved
    request says), None when the stage does not guard it, and raises `AwaitingApproval`
    after posting a new request."""
    if ctx.approved is not None:
        request = ctx.approved.request
        if request.fingerprint != fingerprint:
            _transition(
                ctx.engine,
                request.id or 0,
                ("executing",),
                "voided",
                reason="the plan changed after it was approved",
                decided_at=utcnow(),
            )
            _record(
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
        return ctx.approved
    stage_entry = ctx.catalog.projects[project].stage(stage)
    assert stage_entry is not None
    policy = stage_entry.policy
    if verb not in policy.guarded or policy.approvals <= 0:
        return None
    invocation = ctx.invocation
    request = ApprovalRequest(
        project=project,
        stage=stage,
        verb=verb,
        command=invocation.text.strip(),
        fingerprint=fingerprint,
        summary="\n".join(summary),
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
    thread = await ctx.conversation.start_thread(
        _card(
            ctx.engine,
            request,
            f"waiting for approval (expires in {format_duration(policy.approval_expires)})",
            [],
            live=True,
        )
    )
    with session_scope(ctx.engine) as session:
        stored = session.get(ApprovalRequest, request.id)
        assert stored is not None
        stored.thread_id = thread.thread_id or thread.message_id
        stored.message_id = thread.message_id
        session.add(stored)
    _record(
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
    ctx.audit_note = f"approval request #{request.id} opened"
    raise AwaitingApproval(request)


async def expire_due(engine: Engine, conversation: Conversation) -> list[int]:
    """Expire every pending request past its time; tell each thread and disable buttons."""
    now = utcnow()
    with session_scope(engine) as session:
        due = list(
            session.exec(
                select(ApprovalRequest).where(
                    ApprovalRequest.state == "pending", col(ApprovalRequest.expires_at) <= now
                )
            )
        )
    expired = []
    for request in due:
        if _transition(
            engine,
            request.id or 0,
            ("pending",),
            "expired",
            decided_at=now,
            reason="nobody approved it in time",
        ):
            expired.append(request.id or 0)
            request.state = "expired"
            _record(engine, request, "approval expired", "flybot", "expired")
            await _tell(
                engine,
                conversation,
                request,
                "expired: nobody approved it in time",
                "⌛ This request expired; ask again if it is still wanted.",
            )
    return expired


STUCK_AFTER = timedelta(minutes=2)


async def fail_stuck(engine: Engine, conversation: Conversation) -> list[int]:
    """A request approved and claimed for execution by a process that then died stays
    `executing`; after STUCK_AFTER it is marked failed and its thread told, so nobody waits
    on it. (Starting an action takes seconds: the window is generous.)"""
    cutoff = utcnow() - STUCK_AFTER
    with session_scope(engine) as session:
        stuck = list(
            session.exec(
                select(ApprovalRequest).where(
                    ApprovalRequest.state == "executing",
                    col(ApprovalRequest.decided_at) <= cutoff,
                )
            )
        )
    failed = []
    reason = "flybot stopped while starting it; ask again"
    for request in stuck:
        if _transition(engine, request.id or 0, ("executing",), "failed", reason=reason):
            failed.append(request.id or 0)
            _record(engine, request, "approval not executed", "flybot", "failed", reason)
            await _tell(engine, conversation, request, f"failed: {reason}", f"✗ Not run: {reason}.")
    return failed


async def sweep(engine: Engine, conversation: Conversation) -> None:
    """The scheduler's periodic pass: expire what is due, fail what is stuck."""
    await expire_due(engine, conversation)
    await fail_stuck(engine, conversation)


async def _tell(
    engine: Engine,
    conversation: Conversation,
    request: ApprovalRequest,
    status: str,
    thread_line: str,
) -> None:
    fresh = _get(engine, request.id or 0) or request
    await conversation.update(
        _thread(fresh),
        _card(engine, fresh, status, _votes(engine, fresh.id or 0), live=fresh.state == "pending"),
    )
    await conversation.post_in_thread(_thread(fresh), Reply(text=thread_line))


def _check_approver(ctx: CommandContext, request: ApprovalRequest, action: str) -> None:
    if request.requested_by == ctx.principal_id:
        raise PermissionDenied(f"You asked for #{request.id}; someone else has to {action} it.")
    role = Role.parse(request.approver_role)
    decision = authorize(ctx.engine, ctx.principal_id, role, request.project, request.stage)
    if not decision.allowed:
        raise PermissionDenied(f"Not allowed to {action} #{request.id}: {decision.reason}.")


async def _open_request(ctx: CommandContext, request_id: int) -> ApprovalRequest:
    await expire_due(ctx.engine, ctx.conversation)
    request = _get(ctx.engine, request_id)
    if request is None:
        raise CommandError(f"There is no request #{request_id}. `/fly pending` lists them.")
    ctx.scope = (request.project, request.stage)
    if request.state != "pending":
        raise CommandError(
            f"Request #{request_id} is {request.state}"
            + (f" ({request.reason})" if request.reason else "")
            + "."
        )
    return request


def register(registry: Registry) -> None:
    @registry.command(
        "approve",
        summary="Approve a pending request (the Approve button does the same).",
        params=(Param("id", "int", help="the request number, e.g. 12"),),
        examples=("/fly approve 12",),
        access="the stage's approver role, not the requester",
    )
    async def approve(ctx: CommandContext) -> None:
        request = await _open_request(ctx, ctx.args["id"])
        _check_approver(ctx, request, "approve")
        name = ctx.invocation.display_name
        try:
            with session_scope(ctx.engine) as session:
                session.add(
                    ApprovalVote(
                        request_id=request.id or 0, principal_id=ctx.principal_id, name=name
                    )
                )
        except IntegrityError:
            raise CommandError(
                f"You already approved #{request.id}; each approver counts once."
            ) from None
        votes = _votes(ctx.engine, request.id or 0)
        _record(
            ctx.engine,
            request,
            "approval given",
            name,
            "approved",
            principal_id=ctx.principal_id,
            platform=ctx.invocation.platform,
            workspace=ctx.invocation.workspace_id,
            user=ctx.invocation.user_id,
        )
        if len(votes) < request.approvals_needed:
            await _tell(
                ctx.engine,
                ctx.conversation,
                request,
                f"{len(votes)}/{request.approvals_needed} approvals",
                f"👍 {name} approved ({len(votes)}/{request.approvals_needed}).",
            )
            return
        if not _transition(
            ctx.engine, request.id or 0, ("pending",), "approved", decided_at=utcnow()
        ):
            return  # another click reached the quorum first; it runs the action
        await _tell(
            ctx.engine,
            ctx.conversation,
            request,
            "approved: running",
            f"✅ {name} approved ({len(votes)}/{request.approvals_needed}): running it.",
        )
        outcome = await run_approved(
            ctx.services, ctx.conversation, request, tuple(v.name for v in votes)
        )
        final = _get(ctx.engine, request.id or 0) or request
        if final.state == "executed":
            _record(
                ctx.engine,
                final,
                "approval executed",
                final.requester_name,
                "executed",
                f"approved by {', '.join(v.name for v in votes)}",
            )
        else:
            _record(
                ctx.engine,
                final,
                "approval not executed",
                final.requester_name,
                final.state,
                outcome.message,
            )
            await _tell(
                ctx.engine,
                ctx.conversation,
                final,
                f"{final.state}: {final.reason}",
                f"✗ Not run: {final.reason}",
            )

    @registry.command(
        "reject",
        summary="Reject a pending request; one reject ends it.",
        params=(Param("id", "int"), Param("reason", "text", required=False, rest=True)),
        examples=("/fly reject 12 not during the sale",),
        access="the stage's approver role, not the requester",
    )
    async def reject(ctx: CommandContext) -> None:
        request = await _open_request(ctx, ctx.args["id"])
        _check_approver(ctx, request, "reject")
        reason = ctx.args.get("reason", "") or "no reason given"
        name = ctx.invocation.display_name
        if not _transition(
            ctx.engine,
            request.id or 0,
            ("pending",),
            "rejected",
            reason=f"rejected by {name}: {reason}",
            decided_at=utcnow(),
        ):
            raise CommandError(f"Request #{request.id} was decided meanwhile.")
        ctx.audit_note = f"rejected #{request.id}: {reason}"
        _record(
            ctx.engine,
            request,
            "approval rejected",
            name,
            "rejected",
            reason,
            principal_id=ctx.principal_id,
            platform=ctx.invocation.platform,
            workspace=ctx.invocation.workspace_id,
            user=ctx.invocation.user_id,
        )
        await _tell(
            ctx.engine,
            ctx.conversation,
            request,
            f"rejected by {name}: {reason}",
            f"✋ {name} rejected this: {reason}",
        )

    @registry.command(
        "pending",
        summary="List requests waiting for approval.",
        params=(Param("project", "project", required=False),),
        role=Role.viewer,
    )
    async def pending(ctx: CommandContext) -> None:
        await expire_due(ctx.engine, ctx.conversation)
        with session_scope(ctx.engine) as session:
            query = select(ApprovalRequest).where(ApprovalRequest.state == "pending")
            if ctx.args.get("project"):
                query = query.where(ApprovalRequest.project == ctx.args["project"])
            rows = list(session.exec(query.order_by(col(ApprovalRequest.id))))
        lines = tuple(
            f"#{r.id} {r.verb} {r.project}/{r.stage} by {r.requester_name}, "
            f"{len(_votes(ctx.engine, r.id or 0))}/{r.approvals_needed} approvals, expires "
            f"{r.expires_at:%H:%M} UTC — `/fly approve {r.id}`"
            for r in rows
        )
        await ctx.say(
            "" if lines else "Nothing is waiting for approval.",
            title="Pending approvals",
            lines=lines,
        )


__all__ = ["expire_due", "fail_stuck", "register", "require_approval", "sweep"]
