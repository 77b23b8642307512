"""The README's sandbox tour of `/fly secrets`, typed into `flybot sandbox` as a process: the
values come on the lines after each `secrets set` (the no-echo prompt, scripted) and are
never shown."""

from __future__ import annotations

from pathlib import Path

from tests.shell.test_sandbox_and_simulator_cli import flybot
from tests.shell.test_shell_process import answers

TOUR = """\
as bob
secrets list ping-go dev
secrets set ping-go dev API_TOKEN
tour-value-dev-1
wait
secrets set ping-go prod SENTRY_DSN --stage
tour-value-prod-2
as carol
approve 1
secrets list ping-go prod
as bob
secrets deploy ping-go prod
as carol
approve 2
wait
secrets list ping-go prod
secrets set ping-go dev API_TOKEN=tour-value-typed-3
"""


def test_the_sandbox_tour_of_secrets(tmp_path: Path) -> None:
    screen = flybot("sandbox", script=TOUR, tmp_path=tmp_path)
    assert "tour-value" not in screen
    out = answers(screen)
    listed = out["bob> secrets list ping-go dev"]
    assert listed[0] == "Secrets of ping-go/dev (ping-go-dev): names and digests only"
    assert any(line.startswith("DATABASE_URL  ") for line in listed)

    dev = " ".join(out["bob> secrets set ping-go dev API_TOKEN"] + out["bob> wait"])
    assert "value of API_TOKEN (hidden): ********" in dev
    assert "Secrets set: API_TOKEN (new)" in dev and "(secrets restart)" in dev
    assert "succeeded" in dev

    card = " ".join(out["bob> secrets set ping-go prod SENTRY_DSN --stage"])
    assert "#1 secrets ping-go/prod requested by bob" in card
    assert "SENTRY_DSN (replaced)" in card and "a restart of flybot drops them" in card
    assert "Staged on ping-go/prod" in " ".join(out["carol> approve 1"])
    staged = " ".join(out["carol> secrets list ping-go prod"])
    assert "SENTRY_DSN" in staged and "* staged: not on the machines yet" in staged

    assert "Staged secrets to hand out: SENTRY_DSN (replaced)" in " ".join(
        out["bob> secrets deploy ping-go prod"]
    )
    assert "succeeded" in " ".join(out["carol> wait"])
    typed = " ".join(out["carol> secrets set ping-go dev API_TOKEN=•••"])
    assert "Refused: API_TOKEN=… puts a secret's value in the command text" in typed
