"""A database behind the newest migration is migrated by a child process (`flybot db
upgrade`), so alembic and what it loads (mako, pygments: about 9 MB resident) never stay in
a long-lived `flybot run`. Each check runs in a fresh interpreter: pytest's own has
imported alembic long ago."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.store import make_engine
from bot.store.migrate import at_head
from tests.slack.harness import free_port
from tests.support import REPO

pytestmark = pytest.mark.timeout(120)

PROBE = """
import json, sys
from bot.store.migrate import MigrationFailed, upgrade_in_child
try:
    upgrade_in_child(sys.argv[1])
    failed = None
except MigrationFailed as exc:
    failed = str(exc)
print(json.dumps({
    "failed": failed,
    "loaded": sorted(m for m in ("alembic", "mako", "pygments") if m in sys.modules),
}))
"""


def probe(url: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("FLYBOT_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, url],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=100,
    )
    found: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_a_new_database_is_brought_to_head_by_a_child_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'flybot.db'}"
    assert probe(url) == {"failed": None, "loaded": []}
    engine = make_engine(url)
    try:
        assert at_head(engine)
    finally:
        engine.dispose()


def test_a_database_at_head_needs_no_child(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'flybot.db'}"
    probe(url)
    assert probe(url) == {"failed": None, "loaded": []}


def test_a_database_in_memory_is_left_to_this_process() -> None:
    # A child could not reach it: nothing is done here, upgrade() migrates it in-process.
    assert probe("sqlite://") == {"failed": None, "loaded": []}


def test_a_child_that_cannot_migrate_is_reported() -> None:
    url = f"postgresql://flybot:x@127.0.0.1:{free_port()}/flybot"  # nothing listens there
    found = probe(url)
    assert found["loaded"] == []
    assert isinstance(found["failed"], str)
    assert "flybot db upgrade" in found["failed"]
