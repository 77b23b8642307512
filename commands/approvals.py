"""Approvals in the thread: `/fly approve ID`, `/fly reject ID [reason]`, `/fly pending`,
and the scheduler's sweeps over pending and executing requests. (A request is opened by the
pipeline's guard, commands/guard.py, for any guardable verb a stage guards.)

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
from bot.store.engine import session_scope
from bot.store.models import ApprovalRequest, ApprovalVote
from commands.context import CommandContext
from commands.dispatch import run_approved
from commands.errors import CommandError, PermissionDenied
from commands.kinds import PROJECT, REQUEST, TEXT
from commands.permissions import authorize
from commands.port import Outbox
from commands.registry import Param, command
from commands.requests import get as _get
from commands.requests import record as _record
from commands.requests import tell as _tell
from commands.requests import transition as _transition
from commands.requests import votes_of as _votes
from commands.roles import Role


async def expire_due(engine: Engine, outbox: Outbox) -> list[int]:
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
                outbox,
                request,
                "expired: nobody approved it in time",
                "⌛ This request expired; ask again if it is still wanted.",
            )
    return expired


STUCK_AFTER = timedelta(minutes=2)


async def fail_stuck(engine: Engine, outbox: Outbox) -> list[int]:
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
            await _tell(engine, outbox, request, f"failed: {reason}", f"✗ Not run: {reason}.")
    return failed


async def sweep(engine: Engine, outbox: Outbox) -> None:
    """The scheduler's periodic pass: expire what is due, fail what is stuck."""
    await expire_due(engine, outbox)
    await fail_stuck(engine, outbox)


def _check_approver(ctx: CommandContext, request: ApprovalRequest, action: str) -> None:
    if request.requested_by == ctx.principal_id:
        raise PermissionDenied(f"You asked for #{request.id}; someone else has to {action} it.")
    role = Role.parse(request.approver_role)
    decision = authorize(ctx.engine, ctx.principal_id, role, request.project, request.stage)
    if not decision.allowed:
        raise PermissionDenied(f"Not allowed to {action} #{request.id}: {decision.reason}.")


async def _open_request(ctx: CommandContext, request_id: int) -> ApprovalRequest:
    await expire_due(ctx.engine, ctx.outbox)
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


@command(
    "approve",
    summary="Approve a pending request (the Approve button does the same).",
    params=(Param("id", REQUEST, help="the request number, e.g. 12"),),
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
                ApprovalVote(request_id=request.id or 0, principal_id=ctx.principal_id, name=name)
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
            ctx.outbox,
            request,
            f"{len(votes)}/{request.approvals_needed} approvals",
            f"👍 {name} approved ({len(votes)}/{request.approvals_needed}).",
        )
        return
    if not _transition(ctx.engine, request.id or 0, ("pending",), "approved", decided_at=utcnow()):
        return  # another click reached the quorum first; it runs the action
    await _tell(
        ctx.engine,
        ctx.outbox,
        request,
        "approved: running",
        f"✅ {name} approved ({len(votes)}/{request.approvals_needed}): running it.",
    )
    outcome = await run_approved(
        ctx.services, ctx.interaction, request, tuple(v.name for v in votes)
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
            ctx.outbox,
            final,
            f"{final.state}: {final.reason}",
            f"✗ Not run: {final.reason}",
        )


@command(
    "reject",
    summary="Reject a pending request; one reject ends it.",
    params=(Param("id", REQUEST), Param("reason", TEXT, required=False, rest=True)),
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
        ctx.outbox,
        request,
        f"rejected by {name}: {reason}",
        f"✋ {name} rejected this: {reason}",
    )


@command(
    "pending",
    summary="List requests waiting for approval.",
    params=(Param("project", PROJECT, required=False),),
    role=Role.viewer,
)
async def pending(ctx: CommandContext) -> None:
    await expire_due(ctx.engine, ctx.outbox)
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


__all__ = ["approve", "expire_due", "fail_stuck", "pending", "reject", "sweep"]
