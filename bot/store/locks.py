"""Stage locks: one holder per (project, stage), taken by an atomic insert, with an expiry."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.clock import utcnow
from bot.store.engine import session_scope
from bot.store.models import Lock


def _current(session: Session, project: str, stage: str) -> Lock | None:
    lock = session.exec(select(Lock).where(Lock.project == project, Lock.stage == stage)).first()
    if lock is not None and lock.expires_at <= utcnow():
        session.delete(lock)
        session.flush()
        return None
    return lock


def current_lock(engine: Engine, project: str, stage: str) -> Lock | None:
    with session_scope(engine) as session:
        return _current(session, project, stage)


def acquire(
    engine: Engine,
    project: str,
    stage: str,
    owner_id: int,
    owner_name: str,
    reason: str,
    expires_at: datetime,
) -> tuple[bool, Lock]:
    """Take the lock. Returns (True, lock) when taken, (False, holder's lock) when held."""
    for _ in range(3):
        try:
            with session_scope(engine) as session:
                held = _current(session, project, stage)
                if held is not None:
                    return False, held
                lock = Lock(
                    project=project,
                    stage=stage,
                    owner_id=owner_id,
                    owner_name=owner_name,
                    reason=reason,
                    expires_at=expires_at,
                )
                session.add(lock)
                session.flush()
                return True, lock
        except IntegrityError:
            continue  # another instance won the insert; read who holds it
    held_now = current_lock(engine, project, stage)
    if held_now is None:
        raise RuntimeError(f"lock on {project}/{stage} flapped three times")
    return False, held_now


def release(engine: Engine, lock_id: int) -> bool:
    with session_scope(engine) as session:
        lock = session.get(Lock, lock_id)
        if lock is None:
            return False
        session.delete(lock)
        return True


def all_locks(engine: Engine) -> list[Lock]:
    with session_scope(engine) as session:
        now = utcnow()
        return list(
            session.exec(
                select(Lock)
                .where(Lock.expires_at > now)
                .order_by(col(Lock.project), col(Lock.stage))
            )
        )
