"""`/fly whoami` and `/fly link`: who you are, and joining your Slack and Discord selves."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import col

from bot.clock import utcnow
from bot.durations import format_duration
from bot.store.engine import session_scope
from bot.store.models import Identity, LinkRequest
from bot.store.principals import LinkNotConfirmed, confirm_link, grants_of, identities_of
from commands.context import CommandContext
from commands.errors import CommandError
from commands.kinds import LINK_CODE
from commands.registry import Param, command

LINK_CODE_TTL = timedelta(minutes=10)
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud safely


def _new_code() -> str:
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(8))
    return f"{raw[:4]}-{raw[4:]}"


def _key(identity: Identity) -> str:
    return f"{identity.platform}:{identity.workspace_id}:{identity.user_id}"


@command("whoami", summary="Show who flybot thinks you are, and your roles.", audited=False)
async def whoami(ctx: CommandContext) -> None:
    with session_scope(ctx.engine) as session:
        identities = identities_of(session, ctx.principal_id)
        grants = grants_of(session, ctx.principal_id)
    me = ctx.invocation
    others = [_key(i) for i in identities if _key(i) != me.identity_key]
    roles = [f"{g.role} on {g.project}/{g.stage}" for g in grants] or [
        "no roles yet: ask an admin for one (`/fly perms grant @you viewer`)"
    ]
    fields = [("You", f"{me.display_name} ({me.identity_key})")]
    if others:
        fields.append(("Linked", ", ".join(others)))
    await ctx.say_private(
        "", title="whoami", fields=tuple(fields), lines=tuple(f"• {r}" for r in roles)
    )


@command(
    "link",
    summary="Join this identity with your account on another platform.",
    params=(
        Param(
            "code",
            LINK_CODE,
            required=False,
            help="the code shown by `/fly link` on the other side",
        ),
    ),
    examples=("/fly link", "/fly link ABCD-EFGH"),
    usage_text="/fly link [<code>]",
)
async def link(ctx: CommandContext) -> None:
    code = ctx.args.get("code")
    if code is None:
        await _start(ctx)
    else:
        await _claim(ctx, code)


@command(
    "link",
    "confirm",
    summary="Finish a link from the account that started it.",
    params=(Param("code", LINK_CODE, help="the code `/fly link` showed you"),),
    examples=("/fly link confirm ABCD-EFGH",),
)
async def link_confirm(ctx: CommandContext) -> None:
    await _confirm(ctx, ctx.args["code"])


def _my_identity(ctx: CommandContext) -> Identity:
    me = ctx.invocation
    with session_scope(ctx.engine) as session:
        for identity in identities_of(session, ctx.principal_id):
            if (identity.platform, identity.workspace_id, identity.user_id) == (
                me.platform,
                me.workspace_id,
                me.user_id,
            ):
                return identity
    raise CommandError("Your identity is not recorded yet; try again.")


async def _start(ctx: CommandContext) -> None:
    identity = _my_identity(ctx)
    code = _new_code()
    with session_scope(ctx.engine) as session:
        session.add(
            LinkRequest(
                code=code, from_identity_id=identity.id or 0, expires_at=utcnow() + LINK_CODE_TTL
            )
        )
    await ctx.say_private(
        f"On your other platform, type `/fly link {code}` within "
        f"{format_duration(LINK_CODE_TTL)}; then confirm here with `/fly link confirm {code}`.",
        title="Link started",
    )


def _open_request(ctx: CommandContext, code: str, state: str) -> LinkRequest:
    with session_scope(ctx.engine) as session:
        request = session.get(LinkRequest, code)
    if request is None or request.state != state:
        raise CommandError(f"No pending link with code {code}. Start again with `/fly link`.")
    if request.expires_at <= utcnow():
        raise CommandError(f"The link code {code} has expired. Start again with `/fly link`.")
    return request


def _transition(
    ctx: CommandContext, code: str, from_state: str, to_state: str, **values: object
) -> bool:
    """Compare-and-set on the request's state, so a repeated or concurrent step acts once."""
    with session_scope(ctx.engine) as session:
        result = session.execute(
            update(LinkRequest)
            .where(col(LinkRequest.code) == code, col(LinkRequest.state) == from_state)
            .values(state=to_state, **values)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


async def _claim(ctx: CommandContext, code: str) -> None:
    request = _open_request(ctx, code, "started")
    me = _my_identity(ctx)
    with session_scope(ctx.engine) as session:
        origin = session.get(Identity, request.from_identity_id)
    if origin is None or origin.principal_id == ctx.principal_id:
        raise CommandError("That code was made by this same account; type it on the other one.")
    if not _transition(ctx, code, "started", "claimed", to_identity_id=me.id):
        raise CommandError(f"The link code {code} was already used.")
    await ctx.say_private(
        f"Almost linked. Confirm from {origin.platform} with `/fly link confirm {code}`.",
        title="Link claimed",
    )


async def _confirm(ctx: CommandContext, code: str) -> None:
    request = _open_request(ctx, code, "claimed")
    me = _my_identity(ctx)
    if request.from_identity_id != me.id:
        raise CommandError("Only the account that started this link can confirm it.")
    try:
        other = confirm_link(ctx.engine, code, me.id or 0)
    except LinkNotConfirmed:
        raise CommandError(
            f"The link code {code} was already used or has expired. Start again with "
            "`/fly link`."
        ) from None
    await ctx.say_private(
        f"Linked: {ctx.invocation.identity_key} and {_key(other)} are now one "
        "person to flybot, with the roles of both.",
        tone="success",
    )
