"""Must show (issue 14): two `flybot run` processes on one PostgreSQL database, Slack in
HTTP mode against the fake Slack, Fly through the simulator. A scheduled job that is due
(the hourly prune) runs once across both, and one slash command delivered to each (Slack's
retry, same trigger id, X-Slack-Retry-Num: 1) is answered once and deploys once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlmodel import select

from bot.store import make_engine
from bot.store.engine import session_scope
from bot.store.models import PeriodicRun, Release
from tests.fakes.slack_api import slash_command
from tests.flyharness import NEW
from tests.slack.harness import BOB, CHANNEL, FlybotProcess, slack_world
from tests.slack.test_story import check_every_call
from tests.store.test_prune import left, seed

pytestmark = pytest.mark.timeout(150)

ASK_EVERY = "0.5"  # seconds: each process asks this often whether the prune is due


def periodic_runs(url: str) -> list[tuple[str, str]]:
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            return [(r.name, r.run_by) for r in session.exec(select(PeriodicRun))]
    finally:
        engine.dispose()


def releases(url: str) -> list[tuple[str, str]]:
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            return [(r.stage, r.state) for r in session.exec(select(Release))]
    finally:
        engine.dispose()


async def test_two_processes_on_postgresql_run_a_due_job_once_and_a_retried_command_once(
    tmp_path: Path, postgres_url: str
) -> None:
    async with slack_world(tmp_path, database_url=postgres_url) as w:
        w.grant(BOB, "deployer")
        seed(postgres_url)  # a three-day-old delivery id and spent link codes: the prune is due
        first, second = await asyncio.gather(
            w.start(verbose=True, FLYBOT_SCHEDULER_ASK_EVERY=ASK_EVERY),
            w.start(verbose=True, FLYBOT_SCHEDULER_ASK_EVERY=ASK_EVERY),
        )
        slack = w.slack
        form = slash_command(slack, f"deploy shop dev {NEW}", BOB, "bob")
        async with first.sender() as one, second.sender() as two:
            answers = await asyncio.gather(one.command(form), two.command(form, retry=1))
        assert answers == [(200, "")] * 2

        def parents() -> list[str]:
            return [m.all_text() for m in slack.channel(CHANNEL) if m.thread_ts is None]

        await slack.wait_for(lambda: any("succeeded" in text for text in parents()), 60)

        def asked(process: FlybotProcess) -> int:
            return sum(
                r["message"].startswith('Running job "prune_old_rows') for r in process.records()
            )

        # Both processes ask several times, so a second run would have had its chances.
        await slack.wait_for(lambda: min(asked(first), asked(second)) >= 4, 30)
        assert await first.stop() == 0 and await second.stop() == 0

        # One scheduled run: one claim, one "pruned" line across both logs, the rows gone.
        runs = [run for run in periodic_runs(postgres_url) if run[0] == "prune"]
        assert len(runs) == 1, runs
        said = [log.count(" link codes (run claimed by ") for log in (first.log, second.log)]
        assert sorted(said) == [0, 1], said
        assert "pruned 1 delivery ids and 2 link codes" in first.log + second.log
        pruned_by = first.log if said[0] else second.log
        assert runs[0][1] in pruned_by  # the claim names the process that ran it
        keys, codes = left(postgres_url)
        assert "slack:T1:command:old" not in keys and codes == ["CLMD-OLD1", "STRT-NEW1"]

        # One answer, one effect for the command both processes were given.
        assert len(parents()) == 1, parents()
        assert releases(postgres_url) == [("dev", "succeeded")]
        assert len(w.sim.calls_for("Machines_update")) == 3  # dev's three machines, once each
        assert slack.calls_to("chat.postEphemeral") == []
        assert slack.calls_to("response_url") == []
        check_every_call(slack)


@pytest.mark.parametrize("bad", ["soon", "0", "-3", "1e9"])
def test_a_bad_scheduler_pace_is_one_line_and_starts_nothing(tmp_path: Path, bad: str) -> None:
    import os
    import subprocess
    import sys

    from tests.support import REPO

    database = tmp_path / "flybot.db"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "FLYBOT_DATABASE_URL": f"sqlite:///{database}",
        "SLACK_BOT_TOKEN": "xoxb-x",
        "SLACK_SIGNING_SECRET": "s",
        "FLYBOT_SCHEDULER_ASK_EVERY": bad,
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "run"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"flybot: FLYBOT_SCHEDULER_ASK_EVERY '{bad}' is not a number of seconds "
        "between 0.05 and 86400."
    ]
    assert not database.exists() and list(tmp_path.iterdir()) == []


async def test_the_scheduler_asks_at_the_pace_it_is_given(tmp_path: Path) -> None:
    from bot.runtime import Runtime
    from bot.runtime.scheduler import PRUNE_CHECK_EVERY
    from bot.settings import Settings

    url = f"sqlite:///{tmp_path / 'flybot.db'}"
    for environ, pace in (({}, PRUNE_CHECK_EVERY), ({"FLYBOT_SCHEDULER_ASK_EVERY": "0.5"}, 0.5)):
        settings = Settings.from_env({"FLYBOT_DATABASE_URL": url, **environ})
        runtime = Runtime.from_settings(settings)
        await runtime.start()
        try:
            assert runtime.scheduler is not None
            job = runtime.scheduler.get_job("row-prune")
            assert job is not None and job.trigger.interval.total_seconds() == pace
        finally:
            await runtime.stop()
