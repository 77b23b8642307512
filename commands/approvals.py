"""Approvals in the thread: `/fly approve ID`, `/fly reject ID [reason]`, `/fly pending`,
and the scheduler's sweeps over pending and executing requests. (A request is opened by the
pipeline's guard, commands/guard.py, for any guardable verb a stage guards.)

Rules (DESIGN.md): no self-approval; each approver counts once; the approver's role is
checked at the moment of the click; one reject ends it; an unanswered request expires; a
changed plan voids it before it runs. Every transition is a compare-and-set.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from bot import metrics
from bot.clock import utcnow
from bot.store.engine import session_scope
from bot.store.models import ApprovalRequest, ApprovalVote
from commands.context import CommandContext, Services
from commands.dispatch import run_approved
from commands.errors import CommandError, PermissionDenied
from commands.kinds import PROJECT, REQUEST, TEXT
from commands.permissions import authorize, linked_principals
from commands.port import Interaction, Outbox, ThreadInteraction
from commands.registry import Param, command
from commands.requests import APPROVE_ACTION, REJECT_ACTION, thread_of
from commands.requests import get as _get
from commands.requests import record as _record
from commands.requests import tell as _tell
from commands.requests import transition as _transition
from commands.requests import votes_of as _votes
from commands.roles import Role

# What a click on a card's buttons runs (commands/registry.py, `Registry.buttons`).
BUTTONS = {APPROVE_ACTION: "approve", REJECT_ACTION: "reject"}


def _waited(request: ApprovalRequest, outcome: str) -> None:
    """The request's wait, observed by the one process whose compare-and-set decided it."""
    created = request.created_at
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    metrics.APPROVAL_WAIT.labels(outcome).observe(max((utcnow() - created).total_seconds(), 0))


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
            _waited(request, "expired")
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


CARD_WAIT_TRIES = 30
CARD_WAIT_PAUSE = 0.1  # seconds

STALE_AFTER = timedelta(seconds=30)  # as the deploy engine's default: silent this long = dead


async def fail_stuck(
    engine: Engine, outbox: Outbox, stale_after: timedelta = STALE_AFTER
) -> list[int]:
    """A request claimed for execution by a process that then died stays `executing`; once
    its executor's heartbeat has been silent for `stale_after` it is failed and its thread
    told. A slow execution whose Fly calls are still retrying keeps its heartbeat, so it is
    left alone. (As for deploys, death is judged by the heartbeat, never by the id.)"""
    cutoff = utcnow() - stale_after
    with session_scope(engine) as session:
        executing = list(
            session.exec(select(ApprovalRequest).where(ApprovalRequest.state == "executing"))
        )
    failed = []
    reason = "flybot stopped while starting it; ask again"
    for request in executing:
        last_sign = request.heartbeat_at or request.decided_at or request.created_at
        if last_sign > cutoff:
            continue
        if _fail_if_still_silent(engine, request, reason):
            failed.append(request.id or 0)
            _record(engine, request, "approval not executed", "flybot", "failed", reason)
            await _tell(engine, outbox, request, f"failed: {reason}", f"✗ Not run: {reason}.")
    return failed


def _fail_if_still_silent(engine: Engine, request: ApprovalRequest, reason: str) -> bool:
    """Compare-and-set on the state and the heartbeat read: a beat since then keeps it."""
    beat = col(ApprovalRequest.heartbeat_at)
    with session_scope(engine) as session:
        result = session.execute(
            update(ApprovalRequest)
            .where(
                col(ApprovalRequest.id) == request.id,
                col(ApprovalRequest.state) == "executing",
                beat.is_(None) if request.heartbeat_at is None else beat == request.heartbeat_at,
            )
            .values(state="failed", reason=reason, decided_at=utcnow())
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


async def resume_approved(services: Services, stale_after: timedelta = STALE_AFTER) -> list[int]:
    """A request that reached its quorum but was never claimed (its process died between the
    two compare-and-sets) is run here, once, by whichever instance sweeps first."""
    cutoff = utcnow() - stale_after
    with session_scope(services.engine) as session:
        stalled = list(
            session.exec(
                select(ApprovalRequest).where(
                    ApprovalRequest.state == "approved",
                    col(ApprovalRequest.decided_at) <= cutoff,
                )
            )
        )
    resumed = []
    for request in stalled:
        votes = _votes(services.engine, request.id or 0)
        interaction = ThreadInteraction(services.router, thread_of(request))
        announce = "✅ approved: picked up by flybot after a stall, running it now."
        await _run_and_record(services, interaction, request, votes, announce)
        resumed.append(request.id or 0)
    return resumed


async def drop_settled_secrets(services: Services) -> list[int]:
    """Secret values held for requests that will never run (rejected, expired or voided,
    here or on another instance) leave memory at the next sweep."""
    held = list(services.held_secrets)
    if not held:
        return []
    still_open = await asyncio.to_thread(_open_requests, services.engine, held)
    dropped = [request_id for request_id in held if request_id not in still_open]
    for request_id in dropped:
        services.held_secrets.pop(request_id, None)
    return dropped


def _open_requests(engine: Engine, ids: list[int]) -> set[int]:
    with session_scope(engine) as session:
        return {
            found
            for found in session.exec(
                select(ApprovalRequest.id).where(
                    col(ApprovalRequest.id).in_(ids),
                    col(ApprovalRequest.state).in_(("pending", "approved", "executing")),
                )
            )
            if found is not None
        }


def stale_after(services: Services) -> timedelta:
    if not services.has_fly:
        return STALE_AFTER
    return timedelta(seconds=services.timing.stale_after)


async def sweep(services: Services) -> None:
    """The scheduler's periodic pass: expire what is due, fail what is stuck, run what was
    approved and then left."""
    stale = stale_after(services)
    for request_id in await expire_due(services.engine, services.router):
        services.held_secrets.pop(request_id, None)
    await drop_settled_secrets(services)
    await fail_stuck(services.engine, services.router, stale)
    await resume_approved(services, stale)


def _check_approver(ctx: CommandContext, request: ApprovalRequest, action: str) -> None:
    me = ctx.invocation
    refusal = approver_refusal(
        ctx.engine, request, ctx.principal_id, (me.platform, me.workspace_id, me.user_id), action
    )
    if refusal:
        raise PermissionDenied(refusal)


def approver_refusal(
    engine: Engine,
    request: ApprovalRequest,
    principal_id: int,
    identity: tuple[str, str, str],
    action: str = "approve",
) -> str:
    """Why this person may not approve or reject `request` now ("" when they may)."""
    if request.requested_by == principal_id or (
        request.requester_platform,
        request.requester_workspace,
        request.requester_user,
    ) == identity:
        return f"You asked for #{request.id}; someone else has to {action} it."
    if request.requested_by in linked_principals(engine, principal_id):
        return (
            f"This account is linked to the requester of #{request.id}; someone else has to "
            f"{action} it."
        )
    role = Role.parse(request.approver_role)
    decision = authorize(engine, principal_id, role, request.project, request.stage)
    if not decision.allowed:
        return f"Not allowed to {action} #{request.id}: {decision.reason}."
    return ""


_THREAD_WORDS = ("approve", "reject")


def thread_reply_line(
    engine: Engine, platform: str, channel_id: str, thread_id: str, text: str
) -> str | None:
    """A reply typed in an approval request's thread, as the command it means: `approve`
    → `approve 12`, `reject not during the sale` → `reject 12 not during the sale` (an id
    typed out is kept). None when the reply is no approve/reject or the thread holds no
    request: people talk in threads, and flybot stays out of it."""
    words = text.strip().removeprefix("/fly").split(maxsplit=1)
    if not words or words[0].lower() not in _THREAD_WORDS:
        return None
    with session_scope(engine) as session:
        request = session.exec(
            select(ApprovalRequest)
            .where(
                ApprovalRequest.platform == platform,
                ApprovalRequest.channel_id == channel_id,
                ApprovalRequest.thread_id == thread_id,
            )
            .order_by(col(ApprovalRequest.id).desc())
        ).first()
    if request is None:
        return None
    verb, rest = words[0].lower(), (words[1] if len(words) > 1 else "")
    first = rest.split(maxsplit=1)[0] if rest else ""
    if first.lstrip("#").isdigit():
        return f"{verb} {rest.lstrip('#')}"
    return f"{verb} {request.id} {rest}".strip()


async def _open_request(ctx: CommandContext, request_id: int) -> ApprovalRequest:
    await expire_due(ctx.engine, ctx.outbox)
    request = _get(ctx.engine, request_id)
    for _ in range(CARD_WAIT_TRIES):
        if request is None or request.message_id or request.state != "pending":
            break
        # A click can arrive while the request's card is still being recorded (the chat
        # answered, the row not yet written): its thread is needed to report in.
        await asyncio.sleep(CARD_WAIT_PAUSE)
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
        votes = _votes(ctx.engine, request.id or 0)
        # This vote made the quorum, but its click stopped before the request moved on
        # (a busy database, a dead process): finish that click's work now. If the request
        # moved on meanwhile (that click was still going), this click is told so.
        if len(votes) < request.approvals_needed or not await _reach_quorum(
            ctx, request, votes, name
        ):
            raise CommandError(
                f"You already approved #{request.id}; each approver counts once."
            ) from None
        return
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
    await _reach_quorum(ctx, request, votes, name)


async def _reach_quorum(
    ctx: CommandContext, request: ApprovalRequest, votes: list[ApprovalVote], name: str
) -> bool:
    """Move the request to approved and run it; False when another click moved it first
    (that click runs the action)."""
    if not _transition(ctx.engine, request.id or 0, ("pending",), "approved", decided_at=utcnow()):
        return False  # another click reached the quorum first; it runs the action
    _waited(request, "approved")
    announce = f"✅ {name} approved ({len(votes)}/{request.approvals_needed}): running it."
    await _run_and_record(ctx.services, ctx.interaction, request, votes, announce)
    return True


async def _run_and_record(
    services: Services,
    interaction: Interaction,
    request: ApprovalRequest,
    votes: list[ApprovalVote],
    announce: str,
) -> None:
    """Run an approved request (see `run_approved`), then audit and tell how it went."""
    engine = services.engine
    outcome = await run_approved(
        services, interaction, request, tuple(v.name for v in votes), announce
    )
    if outcome.status == "duplicate":
        return
    final = _get(engine, request.id or 0) or request
    if final.state == "executed":
        _record(
            engine,
            final,
            "approval executed",
            final.requester_name,
            "executed",
            f"approved by {', '.join(v.name for v in votes)}",
        )
    else:
        _record(
            engine,
            final,
            "approval not executed",
            final.requester_name,
            final.state,
            outcome.message,
        )
        await _tell(
            engine,
            services.router,
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
    ctx.services.held_secrets.pop(request.id or 0, None)
    _waited(request, "rejected")
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


__all__ = [
    "approve",
    "approver_refusal",
    "expire_due",
    "fail_stuck",
    "pending",
    "reject",
    "resume_approved",
    "sweep",
    "thread_reply_line",
]
