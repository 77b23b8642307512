"""The interactive shell's history file never keeps a line whose verb takes sensitive input
(a link code today, secret values when `secrets set` exists), even when the line is wrong."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from adapters.shell.session import ShellSession
from commands.dispatch import Dispatcher
from tests.support import Bot, write_projects


def test_sensitive_lines_are_recalled_in_the_session_but_never_written(tmp_path: Path) -> None:
    bot = Bot.start(f"sqlite:///{tmp_path / 'db'}", write_projects(tmp_path))
    session = ShellSession(Dispatcher(bot.services), "alice", Console(file=None))
    history_file = tmp_path / "history"
    history = session.history(history_file)
    for line in ("whoami", "link ABCD-EFGH", "/fly link confirm ABCD-EFGH", "link nonsense x"):
        history.append_string(line)
    history.append_string("lock ping-go prod")
    written = history_file.read_text()
    assert "whoami" in written and "lock ping-go prod" in written
    assert "ABCD" not in written and "link" not in written
    assert list(history.get_strings())[-2:] == ["link nonsense x", "lock ping-go prod"]
