"""Database engine and sessions: SQLite by default, any SQLAlchemy URL accepted."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, create_engine

# How long a SQLite statement waits for another writer's lock. Off the event loop (a
# worker thread) waiting is harmless; on the loop it would freeze every task of the process
# (lease refreshes, heartbeats, other people's commands), so there it waits only briefly
# and fails "database is locked" instead (`is_database_busy`).
SQLITE_BUSY_TIMEOUT_MS = 5000
SQLITE_LOOP_BUSY_TIMEOUT_MS = 250


def normalize_url(url: str) -> str:
    """Accept `postgres://` (Fly Postgres hands those out) and plain `postgresql://`."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {
            "check_same_thread": False,
            "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
        }
    else:
        kwargs["pool_pre_ping"] = True
    if parsed.get_backend_name() == "postgresql":
        from bot.store.models import use_postgresql

        use_postgresql()
    engine = create_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "checkout", _sqlite_busy_timeout_for_this_thread)
    return engine


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _sqlite_busy_timeout_for_this_thread(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    timeout = SQLITE_LOOP_BUSY_TIMEOUT_MS if _on_event_loop() else SQLITE_BUSY_TIMEOUT_MS
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={timeout}")
    cursor.close()


def is_database_busy(exc: BaseException) -> bool:
    """A SQLite write that gave up waiting for another writer's lock."""
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers work while a writer commits; the busy timeout makes a second writer
    # wait instead of failing at once with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
