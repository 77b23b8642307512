"""Approval requests as the command layer shows and changes them: the card with its buttons,
the votes, the audit lines, and telling a request's thread — through the router, so the
thread is told on the platform it lives on, whoever caused the change and from wherever."""

from __future__ import annotations

import logging

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.store import audit
from bot.store.approvals import move_request
from bot.store.engine import session_scope
from bot.store.models import ApprovalRequest, ApprovalVote, AuditEntry
from commands.permissions import holders, linked_principals
from commands.port import Button, MessageRef, NoRoute, Outbox, Reply
from commands.reply import markup
from commands.roles import Role

log = logging.getLogger(__name__)

APPROVE_ACTION = "approval.approve"
REJECT_ACTION = "approval.reject"


def buttons(request_id: int) -> tuple[Button, ...]:
    return (
        Button("Approve", APPROVE_ACTION, str(request_id), f"approve {request_id}", "primary"),
        Button("Reject", REJECT_ACTION, str(request_id), f"reject {request_id}", "danger"),
    )


def transition(
    engine: Engine, request_id: int, expect: tuple[str, ...], to: str, **values: object
) -> bool:
    return move_request(engine, request_id, expect, to, **values)


def get(engine: Engine, request_id: int) -> ApprovalRequest | None:
    with session_scope(engine) as session:
        return session.get(ApprovalRequest, request_id)


def votes_of(engine: Engine, request_id: int) -> list[ApprovalVote]:
    with session_scope(engine) as session:
        return list(
            session.exec(
                select(ApprovalVote)
                .where(ApprovalVote.request_id == request_id)
                .order_by(col(ApprovalVote.id))
            )
        )


def record(
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


def thread_of(request: ApprovalRequest) -> MessageRef:
    return MessageRef(
        request.platform,
        request.requester_workspace,
        request.channel_id,
        request.message_id,
        request.thread_id or None,
    )


def card(
    engine: Engine, request: ApprovalRequest, status: str, votes: list[ApprovalVote], live: bool
) -> Reply:
    approved_by = ", ".join(v.name for v in votes) or "nobody yet"
    who = holders(engine, Role.parse(request.approver_role), request.project, request.stage)
    for same_person in linked_principals(engine, request.requested_by):
        who.pop(same_person, None)
    can_approve = ", ".join(sorted(who.values())) or "nobody yet: an admin must grant the role"
    needed = request.approvals_needed
    return Reply(
        title=markup(
            "🔐 #{id} {verb} {where} requested by {who}",
            id=request.id,
            verb=request.verb,
            where=f"{request.project}/{request.stage}",
            who=request.requester_name,
        ),
        text=status,
        tone="warning" if live else ("success" if request.state == "executed" else "info"),
        fields=(
            (
                "Needs",
                f"{needed} approval{'s' if needed > 1 else ''}"
                f" by someone with the {request.approver_role} role, not the requester",
            ),
            ("Can approve", can_approve),
            ("Approved by", approved_by),
            ("Expires", f"{request.expires_at:%H:%M} UTC"),
        ),
        lines=tuple(request.summary.splitlines()),
        buttons=buttons(request.id or 0) if live else (),
    )


async def tell(
    engine: Engine, outbox: Outbox, request: ApprovalRequest, status: str, thread_line: str
) -> None:
    """Edit the request's card to `status` and add `thread_line` to its thread.

    Chat comes after the state change it reports, and a chat failure never undoes or blocks
    one: it is logged, and the card catches up at the next change.
    """
    fresh = get(engine, request.id or 0) or request
    if not fresh.message_id:
        return  # the card was never posted (its platform failed): nothing to edit
    thread = thread_of(fresh)
    try:
        live = fresh.state == "pending"
        await outbox.update(
            thread, card(engine, fresh, status, votes_of(engine, fresh.id or 0), live=live)
        )
        await outbox.post_in_thread(thread, Reply(text=thread_line))
    except NoRoute as exc:
        log.warning("request #%s: cannot tell its thread: %s", fresh.id, exc)
    except Exception:
        log.exception("request #%s: telling its thread failed", fresh.id)
