"""parse → find the command → bind its arguments → authorize → run → audit."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any

from bot.clock import utcnow
from bot.fly import FlyAPIError
from bot.store import audit, dedupe
from bot.store.approvals import move_request
from bot.store.models import ApprovalRequest, AuditEntry
from bot.store.principals import IdentityKey, ensure_identity
from commands.binding import bind
from commands.context import CommandContext, Services
from commands.errors import CommandError, PermissionDenied, UsageError
from commands.grammar import parse_tokens, split_words
from commands.guard import Approved, AwaitingApproval
from commands.permissions import authorize
from commands.port import Conversation, Invocation, MessageRef, Reply
from commands.registry import Command
from commands.roles import ANY

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What happened to one invocation (for adapters and tests)."""

    status: str  # "ok", "awaiting", "usage", "denied", "error", "duplicate"
    message: str = ""


def parse_invocation(
    services: Services, invocation: Invocation
) -> tuple[Command, dict[str, Any], dict[str, Any]]:
    """The command a line names, with checked arguments and flags. Pure: raises UsageError only."""
    tokens = split_words(invocation.text)
    command, _ = services.registry.resolve(tuple(_leading_words(tokens)))
    parsed = parse_tokens(tokens[len(command.path) :], command.switches)
    args, flags = bind(command, parsed.words, parsed.flags, services.catalog, invocation)
    return command, args, flags


class Dispatcher:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def handle(self, invocation: Invocation, conversation: Conversation) -> Outcome:
        services = self.services
        if invocation.dedupe_key and not dedupe.claim(services.engine, invocation.dedupe_key):
            log.info("dropped a repeated delivery %s", invocation.dedupe_key)
            return Outcome("duplicate")
        try:
            command, args, flags = parse_invocation(services, invocation)
        except UsageError as exc:
            await conversation.reply_private(Reply(text=str(exc), tone="error"))
            return Outcome("usage", str(exc))
        identity = ensure_identity(
            services.engine,
            IdentityKey(invocation.platform, invocation.workspace_id, invocation.user_id),
            invocation.display_name,
        )
        context = CommandContext(
            invocation=invocation,
            conversation=conversation,
            command=command,
            args=args,
            flags=flags,
            principal_id=identity.principal_id,
            services=services,
        )
        return await execute(context)


async def execute(ctx: CommandContext) -> Outcome:
    """Authorize the bound command, run it, and audit the attempt whatever its outcome."""
    command, engine, invocation = ctx.command, ctx.engine, ctx.invocation
    project = _scope_part(ctx.args.get("project"))
    stage = _scope_part(ctx.args.get("stage"))
    entry = AuditEntry(
        principal_id=ctx.principal_id,
        platform=invocation.platform,
        workspace_id=invocation.workspace_id,
        user_id=invocation.user_id,
        display_name=invocation.display_name,
        action=command.name,
        command=invocation.text.strip()[:500],
        outcome="ok",
    )

    async def finish(outcome: str, reason: str, reply: Reply | None, status: str) -> Outcome:
        entry.outcome = outcome
        entry.reason = "; ".join(p for p in (reason, ctx.audit_note) if p)
        scope = ctx.scope or (project, stage)
        entry.project = None if scope[0] == ANY else scope[0]
        entry.stage = None if scope[1] == ANY else scope[1]
        if command.audited or outcome == "denied":
            audit.record(engine, entry)
        if reply is not None:
            await ctx.conversation.reply_private(reply)
        return Outcome(status, reply.text if reply else "")

    if command.role is not None:
        decision = authorize(engine, ctx.principal_id, command.role, project, stage)
        if not decision.allowed:
            message = f"Not allowed: `{command.name}` {decision.reason}."
            return await finish("denied", decision.reason, Reply(message, tone="error"), "denied")
        entry.reason = decision.reason
    try:
        await command.handler(ctx)
    except AwaitingApproval as waiting:
        return await finish("ok", f"awaiting approval #{waiting.request.id}", None, "awaiting")
    except PermissionDenied as exc:
        return await finish("denied", str(exc), Reply(str(exc), tone="error"), "denied")
    except CommandError as exc:
        return await finish("refused", str(exc), Reply(str(exc), tone="error"), "error")
    except FlyAPIError as exc:
        message = f"Fly refused or failed: {exc}"
        return await finish("error", str(exc), Reply(message, tone="error"), "error")
    except Exception:
        ref = secrets.token_hex(4)
        log.exception("command %s failed (ref %s)", command.name, ref)
        message = f"Something went wrong running `{command.name}` (ref {ref}); it is logged."
        return await finish(
            "error", f"internal error, ref {ref}", Reply(message, tone="error"), "error"
        )
    return await finish("ok", entry.reason, None, "ok")


async def run_approved(
    services: Services,
    conversation: Conversation,
    request: ApprovalRequest,
    approvers: tuple[str, ...],
) -> Outcome:
    """Run an approved request's command once, as its requester, in the request's thread.

    Only the caller whose compare-and-set moves the request from approved to executing runs
    it: a double click or a second bot instance finds it already taken.
    """
    request_id = request.id or 0
    if not _move(services, request_id, "approved", "executing"):
        return Outcome("duplicate")
    invocation = Invocation(
        platform=request.requester_platform,
        workspace_id=request.requester_workspace,
        channel_id=request.channel_id,
        user_id=request.requester_user,
        display_name=request.requester_name,
        text=request.command,
        thread_id=request.thread_id or None,
    )
    try:
        command, args, flags = parse_invocation(services, invocation)
    except UsageError as exc:
        _move(services, request_id, "executing", "failed", reason=str(exc))
        return Outcome("usage", str(exc))
    ctx = CommandContext(
        invocation=invocation,
        conversation=conversation,
        command=command,
        args=args,
        flags=flags,
        principal_id=request.requested_by,
        services=services,
        approved=Approved(request, approvers),
        thread=MessageRef(request.channel_id, request.message_id, request.thread_id or None),
    )
    outcome = await execute(ctx)
    if outcome.status == "ok":
        _move(services, request_id, "executing", "executed")
    else:
        _move(services, request_id, "executing", "failed", reason=outcome.message)
    return outcome


def _move(services: Services, request_id: int, expect: str, to: str, **values: object) -> bool:
    return move_request(services.engine, request_id, (expect,), to, decided_at=utcnow(), **values)


def _leading_words(tokens: list[str]) -> list[str]:
    """The words before the first flag: enough to name the command."""
    words = []
    for token in tokens[:2]:
        if token.startswith("--"):
            break
        words.append(token)
    return words


def _scope_part(value: object) -> str:
    return value if isinstance(value, str) and value else ANY
