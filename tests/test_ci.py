"""`.ci/run` and the test fixtures in CI: a missing PostgreSQL or a failed set-up step fails
the run instead of passing with the shared-database tests skipped or never run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support import REPO

UNREACHABLE_POSTGRES = "postgresql://postgres@127.0.0.1:9/postgres"  # the discard port: closed


def pytest_in_ci(*args: str, ci: str = "true") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CI": ci, "FLYBOT_TEST_POSTGRES_URL": UNREACHABLE_POSTGRES}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_in_ci_an_unreachable_postgres_fails_the_run() -> None:
    result = pytest_in_ci("tests/store/test_storage.py::test_grants_survive_a_new_engine")
    assert result.returncode != 0, result.stdout
    assert "PostgreSQL is not reachable" in result.stdout + result.stderr
    assert "CI=true" in result.stdout + result.stderr


def test_outside_ci_an_unreachable_postgres_skips_the_shared_database_tests() -> None:
    result = pytest_in_ci("tests/store/test_storage.py::test_grants_survive_a_new_engine", ci="")
    assert result.returncode == 0, result.stdout
    assert "1 passed, 1 skipped" in result.stdout


FAKE_PYTHON = """#!/usr/bin/env bash
# A stand-in for python3 that makes a .venv whose tools record their calls.
set -e
if [ "$1 $2" = "-m venv" ]; then
  mkdir -p "$3/bin"
  for tool in pip python ruff mypy; do
    printf '#!/usr/bin/env bash\\necho "%s $*" >> "$CALLS"\\nexit ${FAIL_%s:-0}\\n' \\
      "$tool" "$tool" > "$3/bin/$tool"
    chmod +x "$3/bin/$tool"
  done
  exit ${FAIL_venv:-0}
fi
exit 0
"""


def run_ci_script(tmp_path: Path, **fail: int) -> tuple[int, list[str]]:
    """.ci/run in a copy of its folder, with python3 replaced by a recording stand-in."""
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy(REPO / ".ci" / "run", repo / ".ci" / "run")
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    python = fake_bin / "python3"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    calls = tmp_path / "calls"
    calls.touch()
    env = {
        "PATH": f"{fake_bin}:/usr/bin:/bin",
        "CALLS": str(calls),
        "HOME": str(tmp_path),
        **{f"FAIL_{step}": str(code) for step, code in fail.items()},
    }
    result = subprocess.run(
        ["bash", str(repo / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=60
    )
    return result.returncode, [line.split()[0] for line in calls.read_text().splitlines()]


def test_the_ci_script_runs_every_step_when_all_pass(tmp_path: Path) -> None:
    code, steps = run_ci_script(tmp_path)
    assert code == 0
    assert steps == ["pip", "python", "ruff", "mypy"]


def test_a_failed_install_stops_the_ci_script(tmp_path: Path) -> None:
    code, steps = run_ci_script(tmp_path, pip=1)
    assert code != 0
    assert steps == ["pip"]


def test_a_failed_venv_stops_the_ci_script(tmp_path: Path) -> None:
    code, steps = run_ci_script(tmp_path, venv=1)
    assert code != 0
    assert steps == []


def test_failing_tests_fail_the_ci_script(tmp_path: Path) -> None:
    code, steps = run_ci_script(tmp_path, python=1)
    assert code != 0
    assert steps == ["pip", "python"]
