"""Principals, their platform identities, and their grants."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.store.engine import session_scope
from bot.store.models import Grant, Identity, Principal


@dataclass(frozen=True)
class IdentityKey:
    platform: str
    workspace_id: str
    user_id: str

    @classmethod
    def parse(cls, text: str) -> IdentityKey:
        platform, workspace_id, user_id = text.split(":", 2)
        return cls(platform, workspace_id, user_id)

    def __str__(self) -> str:
        return f"{self.platform}:{self.workspace_id}:{self.user_id}"


def find_identity(session: Session, key: IdentityKey) -> Identity | None:
    return session.exec(
        select(Identity).where(
            Identity.platform == key.platform,
            Identity.workspace_id == key.workspace_id,
            Identity.user_id == key.user_id,
        )
    ).first()


def ensure_identity(engine: Engine, key: IdentityKey, display_name: str = "") -> Identity:
    """The identity for `key`, created with a principal of its own on first sight.

    Two instances seeing a new user at once both try the insert; the loser re-reads.
    """
    for _ in range(2):
        try:
            with session_scope(engine) as session:
                identity = find_identity(session, key)
                if identity is not None:
                    if display_name and identity.display_name != display_name:
                        identity.display_name = display_name
                        session.add(identity)
                    return identity
                principal = Principal()
                session.add(principal)
                session.flush()
                assert principal.id is not None
                identity = Identity(
                    platform=key.platform,
                    workspace_id=key.workspace_id,
                    user_id=key.user_id,
                    display_name=display_name or key.user_id,
                    principal_id=principal.id,
                )
                session.add(identity)
                session.flush()
                return identity
        except IntegrityError:
            continue
    raise RuntimeError(f"could not create identity {key}")


def identities_of(session: Session, principal_id: int) -> list[Identity]:
    return list(
        session.exec(
            select(Identity).where(Identity.principal_id == principal_id).order_by(col(Identity.id))
        )
    )


def grants_of(session: Session, principal_id: int) -> list[Grant]:
    return list(
        session.exec(
            select(Grant).where(Grant.principal_id == principal_id).order_by(col(Grant.id))
        )
    )


def display_name_of(session: Session, principal_id: int | None) -> str:
    if principal_id is None:
        return "?"
    identity = session.exec(
        select(Identity).where(Identity.principal_id == principal_id).order_by(col(Identity.id))
    ).first()
    return identity.display_name if identity else f"principal {principal_id}"


def add_grant(
    engine: Engine, principal_id: int, role: str, project: str, stage: str, granted_by: int | None
) -> bool:
    """Add a grant; False when the principal already had exactly that grant."""
    try:
        with session_scope(engine) as session:
            session.add(
                Grant(
                    principal_id=principal_id,
                    role=role,
                    project=project,
                    stage=stage,
                    granted_by=granted_by,
                )
            )
        return True
    except IntegrityError:
        return False


def remove_grant(engine: Engine, principal_id: int, role: str, project: str, stage: str) -> bool:
    with session_scope(engine) as session:
        grant = session.exec(
            select(Grant).where(
                Grant.principal_id == principal_id,
                Grant.role == role,
                Grant.project == project,
                Grant.stage == stage,
            )
        ).first()
        if grant is None:
            return False
        session.delete(grant)
        return True


def merge_principals(session: Session, keep_id: int, absorb_id: int) -> None:
    """Move every identity and grant of `absorb_id` onto `keep_id`, then drop `absorb_id`."""
    if keep_id == absorb_id:
        return
    kept = {(g.role, g.project, g.stage) for g in grants_of(session, keep_id)}
    for grant in grants_of(session, absorb_id):
        if (grant.role, grant.project, grant.stage) in kept:
            session.delete(grant)
        else:
            grant.principal_id = keep_id
            session.add(grant)
    for identity in identities_of(session, absorb_id):
        identity.principal_id = keep_id
        session.add(identity)
    session.flush()
    absorbed = session.get(Principal, absorb_id)
    if absorbed is not None:
        session.delete(absorbed)
