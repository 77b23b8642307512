"""`flybot sandbox` never touches the database FLYBOT_DATABASE_URL names: its demo grants
and projects go into a fresh file of its own, every time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.shell.test_shell_process import answers


def sandbox(tmp_path: Path, script: str, database: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLY", "FLYBOT"))}
    env.update(HOME=str(tmp_path), FLYBOT_DATABASE_URL=f"sqlite:///{database}")
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "sandbox"],
        input=script,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_sandbox_ignores_the_configured_database(tmp_path: Path) -> None:
    team_db = tmp_path / "team.db"
    first = answers(sandbox(tmp_path, 'lock ping-go dev "left over"\n', team_db))
    assert "ping-go/dev locked by alice" in first['alice> lock ping-go dev "left over"'][0]
    assert not team_db.exists(), "the sandbox wrote into FLYBOT_DATABASE_URL"
    second = answers(sandbox(tmp_path, "lock ping-go dev\n", team_db))
    assert "ping-go/dev locked by alice" in second["alice> lock ping-go dev"][0]  # fresh again
