"""The audit log: every attempt, allowed or refused."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.store.engine import session_scope
from bot.store.models import AuditEntry


def record(engine: Engine, entry: AuditEntry) -> None:
    with session_scope(engine) as session:
        session.add(entry)


def recent(engine: Engine, project: str | None = None, limit: int = 20) -> list[AuditEntry]:
    with session_scope(engine) as session:
        query = select(AuditEntry)
        if project is not None:
            query = query.where(AuditEntry.project == project)
        query = query.order_by(col(AuditEntry.id).desc()).limit(limit)
        return list(session.exec(query))
