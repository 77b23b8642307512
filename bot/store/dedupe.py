"""De-duplication of platform deliveries (Slack retries, repeated clicks, two instances)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from bot.clock import utcnow
from bot.store.engine import session_scope
from bot.store.models import DedupeKey


def claim(engine: Engine, key: str) -> bool:
    """True for the first delivery of `key`, False for every later one, on any instance."""
    try:
        with session_scope(engine) as session:
            session.add(DedupeKey(key=key))
        return True
    except IntegrityError:
        return False


def prune(engine: Engine, older_than: timedelta = timedelta(days=2)) -> int:
    """Forget deliveries older than `older_than`; returns how many."""
    with session_scope(engine) as session:
        cutoff = utcnow() - older_than
        result = session.execute(delete(DedupeKey).where(col(DedupeKey.created_at) < cutoff))
        return int(result.rowcount)  # type: ignore[attr-defined]
