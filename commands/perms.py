"""`/fly perms grant|revoke|list`: who holds which role where."""

from __future__ import annotations

from sqlmodel import col, select

from bot.store.engine import session_scope
from bot.store.models import Grant, Identity
from bot.store.principals import (
    IdentityKey,
    add_grant,
    ensure_identity,
    find_identity,
    remove_grant,
)
from commands.context import CommandContext
from commands.errors import CommandError, PermissionDenied
from commands.kinds import PROJECT, PROJECT_OR_ALL, ROLE, STAGE_OR_ALL, USER
from commands.permissions import linked_principals
from commands.registry import Param, command
from commands.reply import markup
from commands.roles import ANY, Role, format_scope

_SCOPE = (
    Param("project", PROJECT_OR_ALL, required=False, help="a project, or * (the default)"),
    Param("stage", STAGE_OR_ALL, required=False, help="a stage, or * (the default)"),
)


def _scope(ctx: CommandContext) -> tuple[str, str]:
    return ctx.args.get("project", ANY), ctx.args.get("stage", ANY)


@command(
    "perms",
    "grant",
    summary="Give someone a role on a project and stage (default: everywhere).",
    params=(
        Param("user", USER, help="@mention or platform:workspace:user"),
        Param("role", ROLE, help="viewer, deployer, approver or admin"),
        *_SCOPE,
    ),
    role=Role.admin,
    examples=("/fly perms grant @bob deployer ping-go dev",),
)
async def grant(ctx: CommandContext) -> None:
    user: IdentityKey = ctx.args["user"]
    role: Role = ctx.args["role"]
    project, stage = _scope(ctx)
    if role >= Role.approver:
        with session_scope(ctx.engine) as session:
            known = find_identity(session, user)
        if known is not None and known.principal_id in linked_principals(
            ctx.engine, ctx.principal_id
        ):
            raise PermissionDenied(
                f"{user} is linked to you: nobody grants their own accounts {role.name} or "
                "above (it would let them approve their own requests); ask another admin."
            )
    identity = ensure_identity(ctx.engine, user)
    added = add_grant(
        ctx.engine,
        identity.principal_id,
        role.name,
        project,
        stage,
        granted_by=ctx.principal_id,
    )
    where = format_scope(project, stage)
    if not added:
        await ctx.say(
            markup(
                "{who} already is {role} on {where}.",
                who=identity.display_name,
                role=role.name,
                where=where,
            )
        )
        return
    await ctx.say(
        markup(
            "{who} is now {role} on {where}.",
            who=identity.display_name,
            role=role.name,
            where=where,
        ),
        tone="success",
    )


@command(
    "perms",
    "revoke",
    summary="Take a role away (the same scope it was granted on).",
    params=(Param("user", USER), Param("role", ROLE), *_SCOPE),
    role=Role.admin,
    examples=("/fly perms revoke @bob deployer ping-go dev",),
)
async def revoke(ctx: CommandContext) -> None:
    user: IdentityKey = ctx.args["user"]
    role: Role = ctx.args["role"]
    project, stage = _scope(ctx)
    with session_scope(ctx.engine) as session:
        identity = find_identity(session, user)
    where = format_scope(project, stage)
    if identity is None or not remove_grant(
        ctx.engine, identity.principal_id, role.name, project, stage
    ):
        raise CommandError(f"{user} has no {role.name} grant on {where}; nothing changed.")
    await ctx.say(
        markup(
            "{who} is no longer {role} on {where}.",
            who=identity.display_name,
            role=role.name,
            where=where,
        ),
        tone="success",
    )


@command(
    "perms",
    "list",
    summary="List the grants, all or for one project.",
    params=(Param("project", PROJECT, required=False),),
    role=Role.viewer,
)
async def list_grants(ctx: CommandContext) -> None:
    project = ctx.args.get("project")
    with session_scope(ctx.engine) as session:
        query = select(Grant, Identity).join(
            Identity, col(Identity.principal_id) == col(Grant.principal_id)
        )
        if project is not None:
            query = query.where(col(Grant.project).in_([project, ANY]))
        rows = session.exec(query.order_by(col(Grant.project), col(Grant.stage))).all()
    seen: dict[tuple[int, str, str, str], list[str]] = {}
    for row_grant, identity in rows:
        key = (row_grant.principal_id, row_grant.role, row_grant.project, row_grant.stage)
        seen.setdefault(key, []).append(
            f"{identity.display_name} ({identity.platform}:{identity.user_id})"
        )
    lines = tuple(
        f"{format_scope(p, s)}  {role}  {' = '.join(who)}" for (_, role, p, s), who in seen.items()
    )
    title = f"Grants on {project}" if project else "Grants"
    await ctx.say("" if lines else "No grants.", title=title, lines=lines)
