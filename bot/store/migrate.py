"""Apply the Alembic migrations (`flybot db upgrade`, and at every start).

A start on a database already at the newest migration never imports alembic (about a third
of `flybot run`'s imports): the newest revision is read from the migration files' headers
and compared with the database's `alembic_version` row. `flybot run` on a database behind
it migrates in a child process (`upgrade_in_child`), so alembic never stays in it either.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from bot.store.startup import exclusive

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_REVISION = re.compile(r"^revision\s*=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\s*=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


@cache
def head_revision() -> str | None:
    """The migration no other names as its down_revision, from the files' text; None when
    that is not one revision (then alembic decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        revision = _REVISION.search(source)
        if revision is None:
            return None
        revisions.add(revision.group(1))
        parents.update(_DOWN_REVISION.findall(source))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def at_head(engine: Engine) -> bool:
    """Whether the database is at the newest migration (False when it has none yet)."""
    head = head_revision()
    if head is None:
        return False
    try:
        with engine.connect() as connection:
            found = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    except SQLAlchemyError:  # no alembic_version table: a new database
        return False
    return [row[0] for row in found] == [head]


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate to `revision`. Instances starting together take turns (bot/store/startup.py):
    the first migrates, the others find the work done."""
    if revision == "head" and at_head(engine):
        return
    from alembic import command

    with exclusive(engine):
        command.upgrade(alembic_config(engine), revision)


class MigrationFailed(Exception):
    """The child process that was to migrate the database did not."""


def upgrade_in_child(database_url: str) -> None:
    """Bring the database to the newest migration in a child process (`flybot db upgrade`),
    so that alembic and what it loads (mako, pygments: about 9 MB resident) never stay in
    this long-lived one; nothing when the database is at head already. A SQLite database
    in memory exists only in this process: it is left to `upgrade()`. The child's log
    lines and errors go to this process's stderr; its "database at revision" line nowhere."""
    from bot.store.engine import make_engine, normalize_url

    parsed = make_url(normalize_url(database_url))
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        return
    engine = make_engine(database_url)
    try:
        if at_head(engine):
            return
    finally:
        engine.dispose()
    env = {**os.environ, "FLYBOT_DATABASE_URL": database_url}
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "db", "upgrade"], env=env, stdout=subprocess.DEVNULL
    )
    if done.returncode != 0:
        raise MigrationFailed(
            f"migrating the database failed: `flybot db upgrade` exited {done.returncode}"
        )


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
