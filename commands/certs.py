"""`/fly certs add|list|show|check|remove`: TLS certificates for a stage's Fly app, as
flyctl's `fly certs` does them, plus what flyctl cannot do: a thread per certificate that
the scheduled re-check tells when it turns active or fails validation, and that hears the
expiry warnings 14 and 3 days ahead.

`add` and `remove` are guardable (a stage's `guarded = ["certs"]` puts them behind an
approval); the Fly-side logic and the watch rows are in bot/ops/certs.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import timedelta
from typing import TYPE_CHECKING

from bot.clock import utcnow
from bot.fly import FlyAPIError, NotFoundError
from bot.instance import INSTANCE_ID
from bot.lazy import on_first_use
from bot.store.models import CertificateWatch
from bot.store.prune import claim_run
from commands.context import CommandContext, Services
from commands.errors import CommandError, UsageError
from commands.kinds import PROJECT, STAGE, Binding, Kind
from commands.port import MessageRef, Reply
from commands.registry import Param, command
from commands.roles import Role
from commands.status import fly_of

if TYPE_CHECKING:
    from bot.fly import Certificate, FlyClient
    from bot.ops import certs as ops
else:
    ops = on_first_use("bot.ops.certs")

log = logging.getLogger(__name__)

RECHECK_EVERY = timedelta(minutes=5)  # pending certificates are checked with Fly this often
EXPIRY_EVERY = timedelta(hours=23)  # the daily expiry scan (claimed; the scheduler asks hourly)


def _hostname(label: str, word: str, binding: Binding) -> str:
    try:
        return ops.normalize_hostname(word)
    except ops.HostnameError as exc:
        raise UsageError(f"{label}: {exc}.") from None


HOSTNAME = Kind("hostname", "a hostname, e.g. www.example.com or *.example.com", _hostname)
HOST = Param("hostname", HOSTNAME, help="e.g. www.example.com")


def _app(ctx: CommandContext) -> str:
    stage = ctx.catalog.projects[ctx.args["project"]].stage(ctx.args["stage"])
    assert stage is not None
    return stage.app


def _where(ctx: CommandContext) -> str:
    return f"{ctx.args['project']}/{ctx.args['stage']}"


def _ref(row: CertificateWatch) -> MessageRef | None:
    if not (row.platform and row.message_id):
        return None
    return MessageRef(
        row.platform, row.workspace_id, row.channel_id, row.message_id, row.thread_id or None
    )


def _place(thread: MessageRef) -> ops.Place:
    return ops.Place(
        thread.platform,
        thread.workspace_id,
        thread.channel_id,
        thread.message_id,
        thread.thread_id or thread.message_id,
    )


async def tell(services: Services, row: CertificateWatch, change: ops.Change | None) -> None:
    """Say a change in the certificate's thread; a chat failure is logged, never raised."""
    if change is None:
        return
    ref = _ref(row)
    if ref is None:
        return
    tone = {"active": "success", "errors": "warning"}.get(change.kind, "info")
    try:
        await services.router.post_in_thread(
            ref,
            Reply(text="", lines=change.lines, tone=tone),  # type: ignore[arg-type]
        )
    except Exception:
        log.exception("certificate %s: could not post in its thread", row.hostname)


def detail_lines(cert: Certificate) -> list[str]:
    lines = [f"Status: {cert.status or '?'}" + (" (issued)" if ops.is_active(cert) else "")]
    expires = ops.expiry_of(cert)
    if expires is not None:
        left = (expires - utcnow()).days
        lines.append(f"Expires: {expires:%Y-%m-%d %H:%M} UTC ({left} days)")
    issuers = sorted({c.issuer for c in cert.certificates if c.issuer})
    if issuers:
        lines.append(f"Issuer: {'; '.join(issuers)}")
    if cert.validation:
        shown = ", ".join(
            f"{k.removesuffix('_configured')} {'✓' if v else '✗'}"
            for k, v in sorted(cert.validation.items())
        )
        lines.append(f"Validation: {shown}")
    if cert.rate_limited_until:
        lines.append(f"⚠ Let's Encrypt rate-limited until {cert.rate_limited_until}")
    lines.extend(ops.error_lines(cert))
    return lines


def records_block(hostname: str, cert: Certificate) -> tuple[tuple[str, ...], tuple[str, ...]]:
    records, notes = ops.dns_records(hostname, cert)
    return tuple(r.line() for r in records), tuple(notes)


@command(
    "certs",
    "add",
    summary="Ask Fly for a Let's Encrypt certificate for a hostname; answers with the DNS "
    "records to create, in a thread that hears when it is issued.",
    params=(Param("project", PROJECT), Param("stage", STAGE), HOST),
    role=Role.deployer,
    guardable=True,
    examples=("/fly certs add ping-go prod www.example.com",),
)
async def certs_add(ctx: CommandContext) -> None:
    fly, app, hostname = fly_of(ctx), _app(ctx), ctx.args["hostname"]
    cert = await fly.add_certificate(app, hostname)
    records, notes = records_block(hostname, cert)
    active = ops.is_active(cert)
    text = (
        "Already issued: nothing to do."
        if active
        else "Create these DNS records; flybot re-checks and says here when it is issued."
    )
    thread = await ctx.open_thread(
        Reply(
            text=text,
            title=f"🔒 Certificate for {hostname} on {_where(ctx)} ({app})",
            tone="success" if active else "info",
            code=records,
            lines=notes,
        )
    )
    await asyncio.to_thread(
        ops.watch,
        ctx.engine,
        project=ctx.args["project"],
        stage=ctx.args["stage"],
        app=app,
        hostname=cert.hostname or hostname,
        cert=cert,
        place=_place(thread),
        requested_by=ctx.principal_id,
    )
    ctx.audit_note = f"certificate for {hostname} requested ({cert.status or '?'})"


@command(
    "certs",
    "list",
    summary="List a stage's certificates: hostname and status.",
    params=(Param("project", PROJECT), Param("stage", STAGE)),
    role=Role.viewer,
    examples=("/fly certs list ping-go prod",),
)
async def certs_list(ctx: CommandContext) -> None:
    app = _app(ctx)
    listed = await fly_of(ctx).list_certificates(app)
    lines = []
    for cert in sorted(listed, key=lambda c: c.hostname):
        row = await asyncio.to_thread(ops.watched, ctx.engine, app, cert.hostname)
        watched = "  (flybot watches it)" if row is not None and row.state != "removed" else ""
        lines.append(f"{cert.hostname}  {cert.status or '?'}{watched}")
    await ctx.say(
        "" if lines else "No certificates yet. Add one with `/fly certs add`.",
        title=f"Certificates of {_where(ctx)} ({app})",
        lines=tuple(lines),
    )


@command(
    "certs",
    "show",
    summary="Show a certificate: status, expiry, validation and the DNS records it needs.",
    params=(Param("project", PROJECT), Param("stage", STAGE), HOST),
    role=Role.viewer,
    examples=("/fly certs show ping-go prod www.example.com",),
)
async def certs_show(ctx: CommandContext) -> None:
    hostname = ctx.args["hostname"]
    cert = await _known(ctx, fly_of(ctx).get_certificate(_app(ctx), hostname), hostname)
    records, notes = records_block(hostname, cert)
    await ctx.say(
        "",
        title=f"Certificate for {hostname} on {_where(ctx)}",
        lines=(*detail_lines(cert), "DNS records:", *notes),
        code=records,
    )


@command(
    "certs",
    "check",
    summary="Ask Fly to validate a certificate's DNS now (every one of the stage's when no "
    "hostname is given).",
    params=(
        Param("project", PROJECT),
        Param("stage", STAGE),
        Param("hostname", HOSTNAME, required=False, help="default: all the stage's"),
    ),
    role=Role.viewer,
    examples=("/fly certs check ping-go prod www.example.com",),
)
async def certs_check(ctx: CommandContext) -> None:
    fly, app = fly_of(ctx), _app(ctx)
    hostname: str | None = ctx.args.get("hostname")
    hosts = [hostname] if hostname else sorted(c.hostname for c in await fly.list_certificates(app))
    if not hosts:
        await ctx.say(f"{_where(ctx)} has no certificates to check.")
        return
    lines: list[str] = []
    for host in hosts:
        cert = await _known(ctx, fly.check_certificate(app, host), host)
        row = await asyncio.to_thread(ops.watched, ctx.engine, app, cert.hostname)
        if row is not None and row.state != "removed":
            await tell(
                ctx.services, row, await asyncio.to_thread(ops.observe, ctx.engine, row, cert)
            )
        if hostname:
            lines.extend(detail_lines(cert))
            if not ops.is_active(cert):
                records, _ = records_block(host, cert)
                lines.extend(("Records to create:", *records))
        else:
            lines.append(
                f"{cert.hostname}  {cert.status or '?'}"
                + (f"  — {cert.validation_errors[0].message}" if cert.validation_errors else "")
            )
    issued = hostname is not None and ops.is_active(cert)
    title = f"Check of {hostname or 'certificates'} on {_where(ctx)}"
    text = "✓ Verified and active." if issued else ""
    row = await asyncio.to_thread(ops.watched, ctx.engine, app, cert.hostname) if hostname else None
    if hostname is None or (row is not None and row.state != "removed"):
        await ctx.say(text, title=title, tone="success" if issued else "info", lines=tuple(lines))
        return
    # A certificate flybot did not add (flyctl, the dashboard): from now on this answer is
    # its thread, so the re-check and the expiry warnings have somewhere to speak.
    text = f"{text} This thread hears when it is issued and before it expires.".strip()
    thread = await ctx.open_thread(
        Reply(text=text, title=title, tone="success" if issued else "info", lines=tuple(lines))
    )
    await asyncio.to_thread(
        ops.watch,
        ctx.engine,
        project=ctx.args["project"],
        stage=ctx.args["stage"],
        app=app,
        hostname=cert.hostname,
        cert=cert,
        place=_place(thread),
        requested_by=ctx.principal_id,
    )


@command(
    "certs",
    "remove",
    summary="Delete a certificate from the stage's app.",
    params=(Param("project", PROJECT), Param("stage", STAGE), HOST),
    role=Role.deployer,
    guardable=True,
    examples=("/fly certs remove ping-go prod www.example.com",),
)
async def certs_remove(ctx: CommandContext) -> None:
    fly, app, hostname = fly_of(ctx), _app(ctx), ctx.args["hostname"]
    await _known(ctx, fly.get_certificate(app, hostname), hostname)
    await fly.delete_certificate(app, hostname)
    row = await asyncio.to_thread(ops.watched, ctx.engine, app, hostname)
    who = ctx.invocation.display_name
    if row is not None:
        change = await asyncio.to_thread(
            ops.forget,
            ctx.engine,
            row,
            f"{hostname} was removed by {who}: Fly no longer serves it.",
        )
        await tell(ctx.services, row, change)
    await ctx.say(f"Certificate for {hostname} removed from {_where(ctx)} ({app}).")
    ctx.audit_note = f"certificate for {hostname} removed"


async def _known(ctx: CommandContext, call: Awaitable[Certificate], hostname: str) -> Certificate:
    try:
        return await call
    except NotFoundError:
        raise CommandError(
            f"{_where(ctx)} has no certificate for {hostname}; see `/fly certs list`."
        ) from None


# --- the scheduled jobs -------------------------------------------------------------------


def _stage_apps(services: Services) -> tuple[str, ...]:
    return tuple(s.app for p in services.catalog.projects.values() for s in p.stages)


async def recheck_pending(services: Services, every: timedelta = RECHECK_EVERY) -> int:
    """Ask Fly to validate every pending certificate flybot watches, once per `every` across
    all instances; tell each thread what changed. Returns how many were checked."""
    fly = services.fly
    if fly is None:
        return 0
    if not await asyncio.to_thread(claim_run, services.engine, "certs-recheck", every, INSTANCE_ID):
        return 0
    rows = await asyncio.to_thread(ops.watches, services.engine, "pending", _stage_apps(services))
    for row in rows:
        await _recheck_one(services, fly, row)
    return len(rows)


async def _recheck_one(services: Services, fly: FlyClient, row: CertificateWatch) -> None:
    try:
        cert = await fly.check_certificate(row.app, row.hostname)
    except NotFoundError:
        change = await asyncio.to_thread(
            ops.forget,
            services.engine,
            row,
            f"{row.hostname} is no longer on Fly (removed elsewhere?).",
        )
        await tell(services, row, change)
        return
    except FlyAPIError as exc:
        log.warning("certificate %s: the re-check failed, next time then: %s", row.hostname, exc)
        return
    await tell(services, row, await asyncio.to_thread(ops.observe, services.engine, row, cert))


async def warn_expiring(services: Services, every: timedelta = EXPIRY_EVERY) -> int:
    """The daily scan: each active certificate's expiry, read again from Fly (a renewal moves
    it), and a warning in its thread 14 and 3 days before, each once. Returns warnings sent."""
    fly = services.fly
    if fly is None:
        return 0
    if not await asyncio.to_thread(claim_run, services.engine, "certs-expiry", every, INSTANCE_ID):
        return 0
    sent = 0
    for row in await asyncio.to_thread(
        ops.watches, services.engine, "active", _stage_apps(services)
    ):
        try:
            cert = await fly.get_certificate(row.app, row.hostname)
        except NotFoundError:
            await tell(
                services,
                row,
                await asyncio.to_thread(
                    ops.forget, services.engine, row, f"{row.hostname} is no longer on Fly."
                ),
            )
            continue
        except FlyAPIError as exc:
            log.warning(
                "certificate %s: expiry look-up failed, using the last known: %s", row.hostname, exc
            )
        else:
            await asyncio.to_thread(ops.observe, services.engine, row, cert)
        fresh = await asyncio.to_thread(ops.watched, services.engine, row.app, row.hostname)
        if fresh is None or fresh.state != "active":
            continue
        due = ops.warning_due(fresh)
        if due is None or not await asyncio.to_thread(
            ops.claim_warning, services.engine, fresh, due[1]
        ):
            continue
        await tell(services, fresh, expiry_warning(fresh, due[0]))
        sent += 1
    return sent


def expiry_warning(row: CertificateWatch, threshold: int) -> ops.Change:
    assert row.expires_at is not None
    days = max(0, (row.expires_at - utcnow()).days)
    where = f"{row.project}/{row.stage}"
    return ops.Change(
        "expiry",
        (
            f"⚠ The certificate for {row.hostname} on {where} expires "
            f"{row.expires_at:%Y-%m-%d %H:%M} UTC, in {days} days ({threshold}-day warning): "
            "Fly has not renewed it. Check its DNS with "
            f"`/fly certs check {row.project} {row.stage} {row.hostname}`.",
        ),
    )
