"""The pipeline every verb goes through, in this order:

    dedupe → parse → identity → authorize → guard → run → audit

- dedupe: a platform delivery seen before (a Slack retry, a double click, another instance)
  is dropped, through the database.
- parse: the line becomes a declared command with checked values, or one usage line.
- identity: the platform's immutable ids become a principal.
- authorize: the command's role on the (project, stage) it acts on, checked now.
- guard: for verbs declared guardable — plan, dry run, locks, freezes, approvals
  (commands/guard.py).
- run: the handler.
- audit: every attempt, allowed or refused, with the command as parsed (sensitive values
  masked), never the raw line.

Nothing a person types can get past `handle` as an exception: anything unexpected becomes
one "something went wrong (ref …)" reply, with the traceback in the log under that ref.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import update
from sqlmodel import col

from bot import logs, metrics
from bot.clock import utcnow
from bot.deploy.timing import EngineTiming
from bot.fly import FlyAPIError
from bot.instance import INSTANCE_ID
from bot.logs import REDACTOR
from bot.store import audit, dedupe
from bot.store.approvals import move_request
from bot.store.engine import is_database_busy, session_scope
from bot.store.models import ApprovalRequest, AuditEntry
from bot.store.principals import IdentityKey, ensure_identity
from commands import guard, requests
from commands.binding import bind, canonical_line
from commands.context import CommandContext, Services
from commands.errors import CommandError, PermissionDenied, UsageError
from commands.grammar import parse_tokens, split_words
from commands.guard import Approved, AwaitingApproval, DryRun
from commands.permissions import authorize
from commands.port import Interaction, Invocation, MessageRef, Reply
from commands.registry import Command
from commands.roles import ANY
from commands.secret_input import SecretRequest, SecretValues, ValueInCommand, typed_values

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What happened to one invocation (for adapters and tests)."""

    status: str  # "ok", "awaiting", "usage", "denied", "error", "duplicate"
    message: str = ""


@dataclass(frozen=True)
class Parsed:
    command: Command
    args: dict[str, Any]
    flags: dict[str, Any]


def parse_invocation(services: Services, invocation: Invocation) -> Parsed:
    """The command a line names, with checked arguments and flags. Pure: raises UsageError only."""
    tokens = split_words(invocation.text)
    command, _ = services.registry.resolve(tuple(_leading_words(tokens)))
    if command.secret_params:
        # Before any word is bound (or echoed in an error): a value typed in the text.
        typed = typed_values(tokens[len(command.path) :])
        if typed is not None:
            raise ValueInCommand(command.name, typed[0], (*tokens[: len(command.path)], *typed[1]))
    parsed = parse_tokens(tokens[len(command.path) :], command.switches)
    args, flags = bind(command, parsed.words, parsed.flags, services.catalog, invocation)
    return Parsed(command, args, flags)


def _secret_request(parsed: Parsed) -> SecretRequest | None:
    names: list[str] = []
    for param in parsed.command.secret_params:
        value = parsed.args.get(param.name, ())
        names.extend(value if isinstance(value, tuple) else (value,))
    if not names:
        return None
    where = "/".join(str(parsed.args[k]) for k in ("project", "stage") if k in parsed.args)
    return SecretRequest(
        parsed.command.name, tuple(names), f"{parsed.command.name} {where}".strip()
    )


def oops(ref: str) -> Reply:
    return Reply(f"Something went wrong (ref {ref}); it is logged.", tone="error")


class Dispatcher:
    def __init__(self, services: Services) -> None:
        self.services = services

    # --- what an adapter asks before it runs a line ------------------------------------

    def secret_request(self, invocation: Invocation) -> SecretRequest | None:
        """The secret values this line will need, known from the line alone (no database,
        no Fly), so the adapter can open its private form at once. None when it needs none
        or does not parse (then `handle` reports the usage error)."""
        try:
            return _secret_request(parse_invocation(self.services, invocation))
        except UsageError:
            return None

    def first_delivery(self, key: str) -> bool:
        """Claim a platform delivery for work an adapter does before the pipeline runs
        (opening a form from it): True the first time `key` is seen on any instance, False
        for a retry. Blocking (a database write): call it off the event loop."""
        return dedupe.claim(self.services.engine, key)

    def is_sensitive(self, line: str) -> bool:
        """Whether a typed line names a verb with sensitive input, so it must not be kept
        (the shell's history). Judged by the verb, so a mistyped line is kept out too."""
        try:
            tokens = split_words(line)
            command, _ = self.services.registry.resolve(tuple(_leading_words(tokens)))
        except UsageError:
            return False
        return command.sensitive

    def shown_line(self, line: str) -> str:
        """A typed line as it may be shown back (a scripted shell echoes its input): a
        value typed after a verb with secret input is masked, `NAME=•••`."""
        try:
            tokens = split_words(line)
            command, _ = self.services.registry.resolve(tuple(_leading_words(tokens)))
        except UsageError:
            return line
        if not command.secret_params or typed_values(tokens[len(command.path) :]) is None:
            return line
        return " ".join(w.split("=", 1)[0] + "=•••" if "=" in w else w for w in tokens)

    # --- the pipeline ------------------------------------------------------------------

    async def handle(
        self,
        invocation: Invocation,
        interaction: Interaction,
        secret_values: Mapping[str, str] | None = None,
    ) -> Outcome:
        REDACTOR.hold((secret_values or {}).values())
        with logs.invocation(invocation.platform, invocation.identity_key):
            return await self._handle_logged(invocation, interaction, secret_values)

    async def _handle_logged(
        self,
        invocation: Invocation,
        interaction: Interaction,
        secret_values: Mapping[str, str] | None,
    ) -> Outcome:
        try:
            return await self._handle(invocation, interaction, SecretValues(secret_values))
        except Exception:
            ref = secrets.token_hex(4)
            log.exception("handling a command failed (ref %s)", ref)
            try:
                await interaction.reply_private(oops(ref))
            except Exception:
                log.exception("could not even say so (ref %s)", ref)
            return Outcome("error", f"internal error, ref {ref}")

    async def _handle(
        self, invocation: Invocation, interaction: Interaction, values: SecretValues
    ) -> Outcome:
        services = self.services
        # The pipeline's own writes wait in a thread, so a SQLite file another process is
        # writing never freezes the event loop (bot/store/engine.py).
        if invocation.dedupe_key and not await asyncio.to_thread(
            dedupe.claim, services.engine, invocation.dedupe_key
        ):
            log.info("dropped a repeated delivery %s", invocation.dedupe_key)
            metrics.COMMANDS.labels("-", "duplicate").inc()
            return Outcome("duplicate")
        try:
            parsed = parse_invocation(services, invocation)
            values = _only_asked(parsed, values)
        except ValueInCommand as exc:
            await self._audit_typed_value(invocation, exc)
            await interaction.reply_private(Reply(text=str(exc), tone="error"))
            return Outcome("usage", str(exc))
        except UsageError as exc:
            await interaction.reply_private(Reply(text=str(exc), tone="error"))
            metrics.COMMANDS.labels("-", "usage").inc()  # an unknown word is no verb label
            return Outcome("usage", str(exc))
        identity = await asyncio.to_thread(
            ensure_identity,
            services.engine,
            IdentityKey(invocation.platform, invocation.workspace_id, invocation.user_id),
            invocation.display_name,
        )
        context = CommandContext(
            invocation=invocation,
            interaction=interaction,
            command=parsed.command,
            args=parsed.args,
            flags=parsed.flags,
            principal_id=identity.principal_id,
            services=services,
            secrets=values,
        )
        return await execute(context)

    async def _audit_typed_value(self, invocation: Invocation, exc: ValueInCommand) -> None:
        """The attempt is audited with the names only: the line as it should have been
        typed (each NAME=value cut to its NAME), never the text that was."""
        services = self.services
        clean = " ".join(shlex.quote(w) for w in exc.clean_words)
        project = stage = None
        try:
            parsed = parse_invocation(services, replace(invocation, text=clean))
        except UsageError:
            pass
        else:
            clean = canonical_line(parsed.command, parsed.args, parsed.flags, mask=True)
            project = _scope_part(parsed.args.get("project"))
            stage = _scope_part(parsed.args.get("stage"))
        identity = await asyncio.to_thread(
            ensure_identity,
            services.engine,
            IdentityKey(invocation.platform, invocation.workspace_id, invocation.user_id),
            invocation.display_name,
        )
        entry = AuditEntry(
            principal_id=identity.principal_id,
            platform=invocation.platform,
            workspace_id=invocation.workspace_id,
            user_id=invocation.user_id,
            display_name=invocation.display_name,
            action=exc.command,
            command=clean[:500],
            outcome="refused",
            reason="a secret value was typed in the command text: refused before anything "
            f"was stored or sent ({', '.join(exc.names)})",
            project=None if project in (None, ANY) else project,
            stage=None if stage in (None, ANY) else stage,
        )
        await asyncio.to_thread(audit.record, services.engine, entry)


def _only_asked(parsed: Parsed, values: SecretValues) -> SecretValues:
    """The values the command asked for, all of them; nothing else reaches the handler."""
    asked = _secret_request(parsed)
    if asked is None:
        if values:
            raise UsageError(f"`{parsed.command.name}` takes no secret values.")
        return values
    missing = asked.missing(values)
    if missing:
        raise UsageError(
            f"No value was given for {', '.join(missing)}: flybot asks for each privately "
            "(a form, or a hidden prompt); nothing was changed."
        )
    return SecretValues({name: values[name] for name in asked.names})


async def execute(ctx: CommandContext) -> Outcome:
    """authorize → guard → run → audit, for a parsed command and a known principal."""
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
        command=canonical_line(command, ctx.args, ctx.flags, mask=True)[:500],
        outcome="ok",
    )

    async def finish(outcome: str, reason: str, reply: Reply | None, status: str) -> Outcome:
        entry.outcome = outcome
        entry.reason = "; ".join(p for p in (reason, ctx.audit_note) if p)
        scope = ctx.scope or (project, stage)
        entry.project = None if scope[0] == ANY else scope[0]
        entry.stage = None if scope[1] == ANY else scope[1]
        if command.audited or outcome == "denied":
            await asyncio.to_thread(audit.record, engine, entry)
        metrics.COMMANDS.labels(command.name, status).inc()
        if reply is not None:
            await ctx.interaction.reply_private(reply)
        return Outcome(status, reply.text if reply else "")

    if command.role is not None:
        decision = authorize(engine, ctx.principal_id, command.role, project, stage)
        if not decision.allowed:
            message = f"Not allowed: `{command.name}` {decision.reason}."
            return await finish("denied", decision.reason, Reply(message, tone="error"), "denied")
        entry.reason = decision.reason
    try:
        if command.guardable:
            await guard.check(ctx)
        await command.handler(ctx)
    except DryRun:
        return await finish("ok", "dry run", None, "ok")
    except AwaitingApproval as waiting:
        return await finish("ok", f"awaiting approval #{waiting.request.id}", None, "awaiting")
    except PermissionDenied as exc:
        return await finish("denied", str(exc), Reply(_said(exc), tone="error"), "denied")
    except CommandError as exc:
        return await finish("refused", str(exc), Reply(_said(exc), tone="error"), "error")
    except FlyAPIError as exc:
        log.warning("command %s: Fly refused or failed: %s", command.name, exc)
        message = f"Fly refused or failed: {exc}"
        return await finish("error", str(exc), Reply(message, tone="error"), "error")
    except Exception as exc:
        ref = secrets.token_hex(4)
        if is_database_busy(exc):
            log.warning("command %s: the database stayed locked (ref %s)", command.name, ref)
            busy = Reply(
                f"The database is busy (another process is writing to it); `{command.name}` "
                f"stopped there. Try again in a moment (ref {ref}).",
                tone="error",
            )
            return await finish("error", f"database busy, ref {ref}", busy, "error")
        log.exception("command %s failed (ref %s)", command.name, ref)
        return await finish("error", f"internal error, ref {ref}", oops(ref), "error")
    return await finish("ok", entry.reason, None, "ok")


async def run_approved(
    services: Services,
    interaction: Interaction,
    request: ApprovalRequest,
    approvers: tuple[str, ...],
    announce: str = "",
) -> Outcome:
    """Run an approved request's command once, as its requester, in the request's thread.

    Only the caller whose compare-and-set moves the request from approved to executing runs
    it: a double click or a second bot instance finds it already taken. The state changes
    come first and chat after (`announce` goes to the thread once the request is claimed),
    so a chat failure can never leave it `approved`. While it executes, this process
    heartbeats on the row: the sweep judges it stuck only when that heartbeat goes silent.
    """
    request_id = request.id or 0
    now = utcnow()
    executor = executor_id(services)
    if not move_request(
        services.engine,
        request_id,
        ("approved",),
        "executing",
        decided_at=now,
        executor_id=executor,
        heartbeat_at=now,
    ):
        return Outcome("duplicate")
    beat = asyncio.create_task(_heartbeat(services, request_id, executor))
    try:
        if announce:
            await requests.tell(
                services.engine, services.router, request, "approved: running", announce
            )
        return await _run_claimed(services, interaction, request, approvers)
    finally:
        beat.cancel()


def executor_id(services: Services) -> str:
    """This process, as the deploy engine names it (one notion of "alive": bot/instance.py)."""
    deployer = services.made_deployer  # made with INSTANCE_ID unless a test gave its own
    return deployer.instance if deployer is not None else INSTANCE_ID


def heartbeat_every(services: Services) -> float:
    return services.timing.heartbeat if services.has_fly else EngineTiming.heartbeat


def _beat(services: Services, request_id: int, executor: str) -> None:
    with session_scope(services.engine) as session:
        session.execute(
            update(ApprovalRequest)
            .where(
                col(ApprovalRequest.id) == request_id,
                col(ApprovalRequest.state) == "executing",
                col(ApprovalRequest.executor_id) == executor,
            )
            .values(heartbeat_at=utcnow())
        )


async def _heartbeat(services: Services, request_id: int, executor: str) -> None:
    while True:
        await asyncio.sleep(heartbeat_every(services))
        try:
            await asyncio.to_thread(_beat, services, request_id, executor)
        except Exception:
            log.exception("request #%s: a heartbeat failed", request_id)


async def _run_claimed(
    services: Services,
    interaction: Interaction,
    request: ApprovalRequest,
    approvers: tuple[str, ...],
) -> Outcome:
    request_id = request.id or 0
    invocation = Invocation(
        platform=request.requester_platform,
        workspace_id=request.requester_workspace,
        channel_id=request.channel_id,
        user_id=request.requester_user,
        display_name=request.requester_name,
        text=request.command,
        thread_id=request.thread_id or None,
    )
    held = services.held_secrets.pop(request_id, SecretValues())
    try:
        parsed = parse_invocation(services, invocation)
        values = _only_asked(parsed, held)
    except UsageError as exc:
        reason = str(exc)
        if _secret_request_of(services, invocation):
            reason = "its secret values are gone (flybot restarted, or another instance "
            reason += "holds them); ask again"
        _move(services, request_id, "executing", "failed", reason=reason)
        return Outcome("usage", reason)
    ctx = CommandContext(
        invocation=invocation,
        interaction=interaction,
        command=parsed.command,
        args=parsed.args,
        flags=parsed.flags,
        principal_id=request.requested_by,
        services=services,
        secrets=values,
        approved=Approved(request, approvers),
        thread=MessageRef(
            request.platform,
            request.requester_workspace,
            request.channel_id,
            request.message_id,
            request.thread_id or None,
        ),
    )
    outcome = await execute(ctx)
    if outcome.status == "ok":
        _move(services, request_id, "executing", "executed")
    else:
        _move(services, request_id, "executing", "failed", reason=outcome.message)
    return outcome


def _said(exc: CommandError) -> str:
    """The error's message as raised: a `Text` keeps its trusted markup."""
    first = exc.args[0] if exc.args else ""
    return first if isinstance(first, str) else str(exc)


def _secret_request_of(services: Services, invocation: Invocation) -> SecretRequest | None:
    try:
        return _secret_request(parse_invocation(services, invocation))
    except UsageError:
        return None


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
