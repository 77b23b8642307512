"""`flybot run` with no chat adapter configured starts nothing: it names each mode it can
serve and the variables each lacks, creates no database file, and exits 2."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.runtime.cli import main
from tests.support import REPO

OURS = ("SLACK_", "DISCORD_", "FLY_", "FLYBOT_")


def run_with(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(OURS)}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "run"],
        cwd=tmp_path,
        env={**clean, "PYTHONPATH": str(REPO), "HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_nothing_configured_says_what_is_missing_and_exits_2(tmp_path: Path) -> None:
    result = run_with(tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == "flybot: nothing to run: no chat adapter is configured."
    assert "  Slack, HTTP mode: missing SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET" in lines
    assert "  Slack, Socket Mode: missing SLACK_BOT_TOKEN, SLACK_APP_TOKEN" in lines
    assert "  Discord: missing DISCORD_TOKEN" in lines
    assert any(line.startswith("  Fly: missing FLY_API_TOKEN") for line in lines)
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # no database file, nothing started


def test_a_token_no_adapter_of_run_uses_is_named_but_its_value_never_shown(
    tmp_path: Path,
) -> None:
    value = "tok-VALUE-never-shown-4711"
    result = run_with(tmp_path, FLY_API_TOKEN=value)
    assert result.returncode == 2, result.stderr
    assert "nothing to run" in result.stderr
    assert value not in result.stderr
    assert "FLY_API_TOKEN" not in result.stderr  # it is set: not listed as missing
    assert list(tmp_path.iterdir()) == []


def test_the_collector_is_on_again_when_run_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`run` turns the cyclic collector off for start-up (serve() turns it on once serving):
    a `run` that stops before serving leaves it on too."""
    for name in list(os.environ):
        if name.startswith(OURS):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert gc.isenabled()
    assert main(["run"]) == 2
    assert "nothing to run" in capsys.readouterr().err
    assert gc.isenabled()
