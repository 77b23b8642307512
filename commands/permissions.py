"""Who may do what: roles on (project, stage) scopes, checked at the moment of every action."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.store.engine import session_scope
from bot.store.models import Grant, Identity, LinkRequest
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


def linked_principals(engine: Engine, principal_id: int) -> set[int]:
    """Every principal flybot knows is the same person as `principal_id`: itself, and any
    whose identity a `/fly link` joins to one of its identities once both sides have typed
    the code (claimed or confirmed), followed transitively."""
    with session_scope(engine) as session:
        identities = list(session.exec(select(Identity)))
        links = list(
            session.exec(select(LinkRequest).where(col(LinkRequest.state).in_(("claimed", "done"))))
        )
    principal_of = {i.id: i.principal_id for i in identities}
    joined: dict[int, set[int]] = {}
    for link in links:
        if link.to_identity_id is None:
            continue
        a, b = principal_of.get(link.from_identity_id), principal_of.get(link.to_identity_id)
        if a is not None and b is not None:
            joined.setdefault(a, set()).add(b)
            joined.setdefault(b, set()).add(a)
    found, todo = {principal_id}, [principal_id]
    while todo:
        for other in joined.get(todo.pop(), ()):
            if other not in found:
                found.add(other)
                todo.append(other)
    return found


def ensure_admins(engine: Engine, keys: tuple[str, ...]) -> None:
    """Make the configured first admins admins of everything (idempotent)."""
    for text in keys:
        identity = ensure_identity(engine, IdentityKey.parse(text))
        add_grant(engine, identity.principal_id, Role.admin.name, ANY, ANY, granted_by=None)
