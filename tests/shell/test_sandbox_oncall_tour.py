"""The README's sandbox lines for the on-call verbs, typed into `flybot sandbox` as a
process: the demo machines' logs, a rolling restart, and `launch` of an app that exists."""

from __future__ import annotations

from pathlib import Path

from tests.shell.test_sandbox_and_simulator_cli import flybot
from tests.shell.test_shell_process import answers

TOUR = """\
logs ping-go prod --lines 20
restart ping-go dev
wait
releases ping-go dev
launch ping-go dev
"""


def test_the_sandbox_tour_of_logs_and_restart(tmp_path: Path) -> None:
    out = answers(flybot("sandbox", script=TOUR, tmp_path=tmp_path))
    logs = out["alice> logs ping-go prod --lines 20"]
    assert logs[0] == "Logs of ping-go/prod (ping-go-prod)"
    assert logs[1] == "Newest 20 line(s), oldest first."
    assert len(logs) == 22 and all(" [info] " in line for line in logs[2:])
    assert logs[-1].split(" [info] ", 1)[1].startswith("GET /ping 200 OK")
    ran = " ".join(out["alice> wait"])
    assert "succeeded" in ran and "healthy on registry.fly.io/ping-go:" in ran
    assert "(restart)" in " ".join(out["alice> releases ping-go dev"])
    assert "ping-go-dev already exists on Fly" in " ".join(out["alice> launch ping-go dev"])
