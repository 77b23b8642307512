"""Fixtures: a database per test (SQLite, and PostgreSQL on 127.0.0.1 when it answers)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.clock import set_clock

PG_ADMIN_URL = os.environ.get(
    "FLYBOT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
# In CI the shared-database tests must run: an unreachable PostgreSQL fails the run instead
# of skipping them, so a green CI always includes PostgreSQL.
IN_CI = os.environ.get("CI", "").lower() in ("true", "1")


def postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=2):
            return True
    except Exception:
        return False


_PG = postgres_available()
_PG_ABSENT = f"PostgreSQL is not reachable at {PG_ADMIN_URL.rsplit('@', 1)[-1]}"


def pytest_sessionstart(session: pytest.Session) -> None:
    if IN_CI and not _PG:
        pytest.exit(f"{_PG_ABSENT} and CI=true: the shared-database tests cannot run.", 1)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'flybot.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    if not _PG:
        if IN_CI:
            pytest.fail(f"{_PG_ABSENT} and CI=true")
        pytest.skip(_PG_ABSENT)
    import psycopg

    name = f"flybot_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run the test once on SQLite and once on PostgreSQL (skipped when PostgreSQL is absent)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'flybot.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(autouse=True)
def _real_clock() -> Iterator[None]:
    yield
    set_clock(None)
