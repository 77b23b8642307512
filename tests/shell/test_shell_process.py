"""`flybot shell` as a subprocess, driven by a script on stdin, as a person would use it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import REPO


def run_shell(tmp_path: Path, script: str, user: str = "alice") -> str:
    env = {
        **os.environ,
        "FLYBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'flybot.db'}",
        "FLYBOT_CONFIG": str(REPO / "examples" / "flybot.toml"),
        "FLYBOT_ADMINS": "shell:local:alice",
        "HOME": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "shell", "--as", user],
        input=script,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def answers(transcript: str) -> dict[str, list[str]]:
    """Map each typed line (`user> line`) to the lines printed in answer."""
    result: dict[str, list[str]] = {}
    current: list[str] = []
    for line in transcript.splitlines():
        if "> " in line and not line.startswith(" "):
            current = result.setdefault(line, [])
        else:
            current.append(line.strip())
    return result


SCRIPT = """\
# alice is the first admin (FLYBOT_ADMINS)
whoami
perms grant @bob deployer ping-go dev
perms grant @carol approver ping-go
as bob
whoami
lock ping-go prod
lock ping-go dev "trying a migration" --for 30m
as carol
lock ping-go dev
unlock ping-go dev
as bob
unlock ping-go dev
lock ping-go dev --for 2h
as alice
unlock ping-go dev
perms revoke @bob deployer ping-go dev
as bob
lock ping-go dev
as alice
audit ping-go --limit 3
deploy ping-go prod
quit
whoami
"""


def test_a_scripted_shell_session_answers_every_line(tmp_path: Path) -> None:
    out = answers(run_shell(tmp_path, SCRIPT))
    assert out["alice> whoami"] == [
        "(only you) whoami",
        "You: alice (shell:local:alice)",
        "• admin on */*",
    ]
    assert out["alice> perms grant @bob deployer ping-go dev"] == [
        "✓ bob is now deployer on ping-go/dev."
    ]
    assert out["alice> perms grant @carol approver ping-go"] == [
        "✓ carol is now approver on ping-go/*."
    ]
    assert out["bob> whoami"][-1] == "• deployer on ping-go/dev"
    assert out["bob> lock ping-go prod"] == [
        "(only you) ✗ Not allowed: `lock` needs deployer on ping-go/prod; you have no role there."
    ]
    locked = out['bob> lock ping-go dev "trying a migration" --for 30m']
    assert len(locked) == 1 and "ping-go/dev locked by bob for 30m" in locked[0]
    assert locked[0].endswith(": trying a migration.")
    # carol is an approver: above deployer, so she may lock, but the stage is bob's now
    [held] = out["carol> lock ping-go dev"]
    assert "already locked by bob" in held and "trying a migration" in held
    [refused] = out["carol> unlock ping-go dev"]
    assert "locked by bob; only they or an admin can unlock it" in refused
    assert out["bob> unlock ping-go dev"] == ["✓ 🔓 ping-go/dev unlocked."]
    assert "ping-go/dev locked by bob for 2h" in out["bob> lock ping-go dev --for 2h"][0]
    assert out["alice> unlock ping-go dev"] == [
        "! 🔓 ping-go/dev force-unlocked by alice (it was locked by bob)."
    ]
    assert out["alice> perms revoke @bob deployer ping-go dev"] == [
        "✓ bob is no longer deployer on ping-go/dev."
    ]
    assert out["bob> lock ping-go dev"] == [
        "(only you) ✗ Not allowed: `lock` needs deployer on ping-go/dev; you have no role there."
    ]
    audit = out["alice> audit ping-go --limit 3"]
    assert audit[0] == "(only you) Audit log"
    assert len(audit) == 4
    assert "bob (shell:bob) lock ping-go/dev → denied: needs deployer on ping-go/dev" in audit[1]
    assert "alice (shell:alice) perms revoke ping-go/dev → ok" in audit[2]
    assert "force-unlock of bob's lock" in audit[3]
    assert out["alice> deploy ping-go prod"] == [
        "(only you) ✗ flybot has no Fly API token: set FLY_API_TOKEN and restart it."
    ]
    # `quit` ends the session: the line after it is never read
    assert "alice> whoami" in out and list(out).count("alice> whoami") == 1


def test_grants_locks_and_the_audit_log_survive_a_restart(tmp_path: Path) -> None:
    run_shell(
        tmp_path, "perms grant @bob deployer ping-go\nas bob\nlock ping-go prod db --for 3h\n"
    )
    second = answers(
        run_shell(tmp_path, "whoami\nlock ping-go prod\naudit --limit 5\n", user="bob")
    )
    assert second["bob> whoami"][-1] == "• deployer on ping-go/*"
    [held] = second["bob> lock ping-go prod"]
    assert "already locked by bob" in held and ": db." in held
    # bob is no approver: the audit log needs one, so ask alice in a third run
    third = answers(run_shell(tmp_path, "audit --limit 10\n"))
    log = "\n".join(third["alice> audit --limit 10"])
    assert "bob (shell:bob) lock ping-go/prod → ok" in log
    assert "bob (shell:bob) lock ping-go/prod → refused: ping-go/prod is already locked" in log
    assert "alice (shell:alice) perms grant ping-go → ok" in log


def test_as_switch_rejects_a_bad_name(tmp_path: Path) -> None:
    out = answers(run_shell(tmp_path, "as b@d!\nwhoami\n"))
    assert out["alice> as b@d!"] == ["✗ Usage: as <user> (letters, digits, . _ -)"]
    assert out["alice> whoami"][1] == "You: alice (shell:local:alice)"


def test_a_malformed_config_stops_the_shell_with_the_file_and_line(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "fly.toml").write_text('app = "p-dev"\n[env\nX = 1\n')
    config = tmp_path / "flybot.toml"
    config.write_text('[projects.p]\npath = "p"\n')
    env = {
        **os.environ,
        "FLYBOT_CONFIG": str(config),
        "FLYBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "shell"],
        input="",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"flybot: {project / 'fly.toml'}, line 2" in result.stderr
