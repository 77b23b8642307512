"""The migrations build exactly the tables the models describe, on SQLite and PostgreSQL, and
the sqlmodel floor in pyproject.toml has every type the migrations name."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import sqlmodel.sql.sqltypes
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_mock_engine
from sqlmodel import SQLModel

import bot.store.models  # noqa: F401  (registers the tables)
from bot.store import make_engine, upgrade
from bot.store.migrate import MIGRATIONS_DIR
from tests.support import REPO

# The first sqlmodel whose wheel has sqlmodel.sql.sqltypes.UTCDateTime (read from the 0.0.44
# and 0.0.45 wheels: 0.0.44 has only AutoString). Every datetime column's migration names it.
FIRST_WITH_UTCDATETIME = (0, 0, 45)


def test_the_migrations_make_what_the_models_describe(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, SQLModel.metadata)
    engine.dispose()
    assert differences == []


def test_the_sqlmodel_floor_has_every_type_the_migrations_name() -> None:
    named: set[str] = set()
    for migration in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        named |= set(re.findall(r"sqlmodel\.sql\.sqltypes\.(\w+)", migration.read_text()))
    assert named, "the migrations name sqlmodel's types"
    assert all(hasattr(sqlmodel.sql.sqltypes, name) for name in named)
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    [requirement] = [r for r in pyproject["project"]["dependencies"] if r.startswith("sqlmodel")]
    floor = re.search(r">=\s*([\d.]+)", requirement)
    assert floor is not None, requirement
    version = tuple(int(part) for part in floor.group(1).split("."))
    if "UTCDateTime" in named:
        assert version >= FIRST_WITH_UTCDATETIME, requirement


def test_create_all_on_postgresql_makes_the_partial_index_without_flybots_engine() -> None:
    """The PostgreSQL form of the one-active-deploy index is added by a dialect-aware hook
    (bot/store/models.py), not named in the model: a `create_all` on any PostgreSQL engine
    still makes it partial."""
    statements: list[str] = []

    def executor(sql: Any, *_: Any, **__: Any) -> None:
        statements.append(str(sql.compile(dialect=engine.dialect)))

    engine = create_mock_engine("postgresql+psycopg://", executor)
    SQLModel.metadata.create_all(engine)
    [index] = [s for s in statements if "uq_release_active_app" in s]
    assert "WHERE state IN ('queued', 'running')" in index
