"""Principals, their platform identities, and their grants."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, delete, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, select

from bot.clock import utcnow
from bot.store.engine import session_scope
from bot.store.models import (
    ApprovalRequest,
    ApprovalVote,
    AuditEntry,
    Grant,
    Identity,
    LinkRequest,
    Principal,
)


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


def principal_columns() -> list[Column[Any]]:
    """Every column that names a principal: each foreign key to principal.id, plus the audit
    log's principal_id (kept without a key so the log never blocks a delete). Found from the
    tables themselves, so a new table with a principal key is re-pointed by a merge too."""
    found: list[Column[Any]] = []
    for table in SQLModel.metadata.sorted_tables:
        for column in table.columns:
            if any(fk.column.table.name == Principal.__tablename__ for fk in column.foreign_keys):
                found.append(column)
    found.append(AuditEntry.__table__.c.principal_id)  # type: ignore[attr-defined]
    return found


def merge_principals(session: Session, keep_id: int, absorb_id: int) -> None:
    """Make `absorb_id` one person with `keep_id`: every row naming it names `keep_id`, then
    `absorb_id` is dropped. Runs inside the caller's transaction (all or nothing).

    What would be duplicated is dropped first: a grant both held; a second vote of the one
    person on a request; and a vote the person gave on a request now their own, since nobody
    approves their own request (a merge must not turn an earlier click into self-approval).
    """
    if keep_id == absorb_id:
        return
    kept = {(g.role, g.project, g.stage) for g in grants_of(session, keep_id)}
    for grant in grants_of(session, absorb_id):
        if (grant.role, grant.project, grant.stage) in kept:
            session.delete(grant)
    one_person = (keep_id, absorb_id)
    votes = list(
        session.exec(select(ApprovalVote).where(col(ApprovalVote.principal_id).in_(one_person)))
    )
    voted: set[int] = set()
    for vote in sorted(votes, key=lambda v: (v.at, v.id or 0)):
        if vote.request_id in voted:
            session.delete(vote)
        voted.add(vote.request_id)
    session.flush()
    for column in principal_columns():
        session.execute(
            update(column.table).where(column == absorb_id).values({column.name: keep_id})
        )
    own_pending = select(ApprovalRequest.id).where(
        ApprovalRequest.requested_by == keep_id, ApprovalRequest.state == "pending"
    )
    session.execute(
        delete(ApprovalVote).where(
            col(ApprovalVote.principal_id) == keep_id,
            col(ApprovalVote.request_id).in_(own_pending),
        )
    )
    session.execute(delete(Principal).where(col(Principal.id) == absorb_id))


class LinkNotConfirmed(Exception):
    """The link code is not claimed, not this identity's to confirm, or has expired."""


def confirm_link(engine: Engine, code: str, confirming_identity_id: int) -> Identity:
    """Finish a claimed link: in one transaction, move the code from claimed to done (a
    compare-and-set that also checks who confirms and that it has not expired) and merge the
    other identity's principal into the confirming one's. On any failure nothing changes and
    the code can be confirmed again. Returns the other identity."""
    with session_scope(engine) as session:
        moved = session.execute(
            update(LinkRequest)
            .where(
                col(LinkRequest.code) == code,
                col(LinkRequest.state) == "claimed",
                col(LinkRequest.from_identity_id) == confirming_identity_id,
                col(LinkRequest.expires_at) > utcnow(),
            )
            .values(state="done")
        )
        if not moved.rowcount:  # type: ignore[attr-defined]
            raise LinkNotConfirmed(code)
        request = session.get(LinkRequest, code)
        me = session.get(Identity, confirming_identity_id)
        other = session.get(Identity, request.to_identity_id) if request else None
        if me is None or other is None:
            raise LinkNotConfirmed(code)
        merge_principals(session, keep_id=me.principal_id, absorb_id=other.principal_id)
        session.flush()
        session.refresh(other)
        return other
