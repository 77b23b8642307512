"""The README's sandbox tour of `/fly scale`, typed into `flybot sandbox` as a process."""

from __future__ import annotations

from pathlib import Path

from tests.shell.test_sandbox_and_simulator_cli import flybot
from tests.shell.test_shell_process import answers

TOUR = """\
as bob
scale show ping-go prod
scale count ping-go dev web=3 --region nrt,sin
wait
scale show ping-go dev
scale count ping-go dev web=1
wait
scale vm ping-go prod shared-cpu-2x --group web
as carol
approve 1
wait
scale show ping-go prod
"""


def test_the_sandbox_tour_of_scale(tmp_path: Path) -> None:
    out = answers(flybot("sandbox", script=TOUR, tmp_path=tmp_path))
    shown = out["bob> scale show ping-go prod"]
    assert shown[0] == "Scale of ping-go/prod (ping-go-prod), primary region nrt"
    assert "[web] 2 machine(s), shared-cpu-1x 256 MB" in shown
    assert any(line.startswith("sin: 1 (1 started)") for line in shown)
    assert "Volumes: 0 attached, 1 free (ping_data in nrt ×1)" in shown

    counted = " ".join(out["bob> scale count ping-go dev web=3 --region nrt,sin"])
    assert "[web] 1 → 3" in counted and "create 2: nrt +1, sin +1" in counted
    after = out["bob> scale show ping-go dev"]
    assert "[web] 3 machine(s), shared-cpu-1x 256 MB" in after
    assert any(line.startswith("nrt: 2 (2 started)") for line in after)
    assert any(line.startswith("sin: 1 (1 started)") for line in after)
    down = " ".join(out["bob> scale count ping-go dev web=1"])
    assert "[web] 3 → 1" in down and "(sin, started)" in down  # sin goes before nrt

    card = " ".join(out["bob> scale vm ping-go prod shared-cpu-2x --group web"])
    assert "#1 scale ping-go/prod requested by bob" in card
    assert "resize 2 of 2 machine(s) to shared-cpu-2x 512 MB, one at a time" in card
    assert "prod.fly.toml's [[vm]] says shared-cpu-1x 256 MB for [web]" in card
    ran = " ".join(out["carol> wait"])
    assert "resized and healthy" in ran and "succeeded" in ran
    resized = out["carol> scale show ping-go prod"]
    assert "[web] 2 machine(s), shared-cpu-2x 512 MB" in resized
    assert "[cron] 1 machine(s), shared-cpu-1x 256 MB" in resized
