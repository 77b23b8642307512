"""One process at a time through start-up's database work (migrations, the catalog mirror):
several instances starting together on one database take turns instead of racing.

PostgreSQL: a session advisory lock, held on a connection of its own. SQLite: an exclusive
file lock beside the database file (every process using a SQLite file is on its host).
"""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine


def _advisory_key(name: str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock, derived from `name`."""
    return int.from_bytes(hashlib.sha256(f"flybot:{name}".encode()).digest()[:8], signed=True)


@contextmanager
def exclusive(engine: Engine, name: str = "startup") -> Iterator[None]:
    """Wait until no other process holds `name` on this database, then hold it."""
    dialect = engine.dialect.name
    if dialect == "postgresql":
        key = _advisory_key(name)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        return
    database = engine.url.database if dialect == "sqlite" else None
    if not database or database == ":memory:":
        yield  # one process, or a database that brings its own locking
        return
    lock_file = Path(database).expanduser().with_name(f"{Path(database).name}.{name}.lock")
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
