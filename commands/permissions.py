"""Who may do what: roles on (project, stage) scopes, checked at the moment of every action."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.store.engine import session_scope
from bot.store.models import Grant
from bot.store.principals import (
    IdentityKey,
    add_grant,
    display_name_of,
    ensure_identity,
    grants_of,
)
from commands.roles import ANY, Role, format_scope, scope_covers


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


def highest_role(engine: Engine, principal_id: int, project: str, stage: str) -> Role | None:
    with session_scope(engine) as session:
        roles = [
            Role[g.role]
            for g in grants_of(session, principal_id)
            if scope_covers(g.project, g.stage, project, stage)
        ]
    return max(roles) if roles else None


def authorize(
    engine: Engine, principal_id: int, needed: Role, project: str, stage: str
) -> Decision:
    have = highest_role(engine, principal_id, project, stage)
    scope = format_scope(project, stage)
    if have is not None and have >= needed:
        return Decision(True, f"{have.name} on {scope}")
    if have is None:
        return Decision(False, f"needs {needed.name} on {scope}; you have no role there")
    return Decision(False, f"needs {needed.name} on {scope}; you have {have.name} there")


def holders(engine: Engine, needed: Role, project: str, stage: str) -> dict[int, str]:
    """Everyone who holds `needed` (or more) on (project, stage): principal id -> a name."""
    found: dict[int, str] = {}
    with session_scope(engine) as session:
        for grant in session.exec(select(Grant)):
            if Role[grant.role] >= needed and scope_covers(
                grant.project, grant.stage, project, stage
            ):
                found[grant.principal_id] = display_name_of(session, grant.principal_id)
    return found


def ensure_admins(engine: Engine, keys: tuple[str, ...]) -> None:
    """Make the configured first admins admins of everything (idempotent)."""
    for text in keys:
        identity = ensure_identity(engine, IdentityKey.parse(text))
        add_grant(engine, identity.principal_id, Role.admin.name, ANY, ANY, granted_by=None)
