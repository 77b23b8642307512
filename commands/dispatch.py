"""parse → find the command → bind its arguments → authorize → run → audit."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any

from bot.store import audit, dedupe
from bot.store.models import AuditEntry
from bot.store.principals import IdentityKey, ensure_identity
from commands.binding import bind
from commands.context import CommandContext, Services
from commands.errors import CommandError, UsageError
from commands.grammar import parse_tokens, split_words
from commands.permissions import authorize
from commands.port import Conversation, Invocation, Reply
from commands.registry import Command
from commands.roles import ANY

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What happened to one invocation (for adapters and tests)."""

    status: str  # "ok", "usage", "denied", "error", "duplicate"
    message: str = ""


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
        project = _scope_part(args.get("project"))
        stage = _scope_part(args.get("stage"))
        entry = AuditEntry(
            principal_id=identity.principal_id,
            platform=invocation.platform,
            workspace_id=invocation.workspace_id,
            user_id=invocation.user_id,
            display_name=invocation.display_name,
            action=command.name,
            project=None if project == ANY else project,
            stage=None if stage == ANY else stage,
            command=invocation.text.strip()[:500],
            outcome="ok",
        )
        if command.role is not None:
            decision = authorize(
                services.engine, identity.principal_id, command.role, project, stage
            )
            if not decision.allowed:
                entry.outcome, entry.reason = "denied", decision.reason
                audit.record(services.engine, entry)
                message = f"Not allowed: `{command.name}` {decision.reason}."
                await conversation.reply_private(Reply(text=message, tone="error"))
                return Outcome("denied", message)
            entry.reason = decision.reason

        context = CommandContext(
            invocation=invocation,
            conversation=conversation,
            command=command,
            args=args,
            flags=flags,
            principal_id=identity.principal_id,
            services=services,
        )
        try:
            await command.handler(context)
        except CommandError as exc:
            entry.outcome, entry.reason = "refused", str(exc)
            if command.audited:
                audit.record(services.engine, entry)
            await conversation.reply_private(Reply(text=str(exc), tone="error"))
            return Outcome("error", str(exc))
        except Exception:
            ref = secrets.token_hex(4)
            log.exception("command %s failed (ref %s)", command.name, ref)
            entry.outcome, entry.reason = "error", f"internal error, ref {ref}"
            if command.audited:
                audit.record(services.engine, entry)
            message = f"Something went wrong running `{command.name}` (ref {ref}); it is logged."
            await conversation.reply_private(Reply(text=message, tone="error"))
            return Outcome("error", message)
        if command.audited:
            if context.audit_note:
                entry.reason = f"{entry.reason}; {context.audit_note}".lstrip("; ")
            audit.record(services.engine, entry)
        return Outcome("ok")


def parse_invocation(
    services: Services, invocation: Invocation
) -> tuple[Command, dict[str, Any], dict[str, Any]]:
    """The command a line names, with checked arguments and flags. Pure: raises UsageError only."""
    tokens = split_words(invocation.text)
    command, _ = services.registry.resolve(tuple(_leading_words(tokens)))
    parsed = parse_tokens(tokens[len(command.path) :], command.switches)
    args, flags = bind(command, parsed.words, parsed.flags, services.catalog, invocation)
    return command, args, flags


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
