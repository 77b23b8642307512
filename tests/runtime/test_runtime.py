"""The runtime, not an adapter, starts what a process does once: recovery and the
scheduler, whatever adapters it runs; at shutdown it stops them and closes the Fly client."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlmodel import select

from bot.clock import utcnow
from bot.runtime import Runtime
from bot.settings import Settings
from bot.store.engine import session_scope
from bot.store.models import Release
from tests.deploy.test_routing import FakeAdapter
from tests.support import write_projects


def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'db'}",
        config_path=write_projects(tmp_path),
        fly_api_token="unused",
        fly_flaps_base_url="http://127.0.0.1:9",
        fly_api_base_url="http://127.0.0.1:9",
    )


async def test_two_adapters_share_one_recovery_one_scheduler_and_a_closed_fly_client(
    tmp_path: Path,
) -> None:
    runtime = Runtime.from_settings(settings(tmp_path))
    services = runtime.services
    assert services.deployer is not None and services.fly is not None
    with session_scope(services.engine) as session:  # left running by a process now dead
        session.add(
            Release(
                project="ping-go",
                stage="dev",
                app="ping-go-dev",
                version=1,
                image="x:v1",
                state="running",
                platform="slack",
                workspace_id="T1",
                channel_id="C1",
                message_id="1.0",
                thread_id="1.0",
                instance_id="dead-host-1-0",
                heartbeat_at=utcnow() - timedelta(minutes=5),
            )
        )
    slack, discord = FakeAdapter("slack"), FakeAdapter("discord")
    runtime.attach("slack", slack)
    await runtime.start()
    scheduler = runtime.scheduler
    runtime.attach("discord", discord)
    await runtime.start()  # the second adapter's start changes nothing
    assert runtime.scheduler is scheduler and scheduler is not None
    assert sorted(job.id for job in scheduler.get_jobs()) == [
        "approval-sweep",
        "certs-expiry",
        "certs-recheck",
        "deploy-sweep",
        "row-prune",
        "usage-collect",
        "usage-reports",
    ]
    assert [kind for kind, _, _ in slack.calls] == ["update", "thread"]  # recovered once
    assert discord.calls == []
    fly = services.fly
    await runtime.stop()
    assert runtime.scheduler is None and not scheduler.running
    assert fly._http.is_closed


async def test_the_scheduler_lets_old_delivery_ids_go(tmp_path: Path) -> None:
    from bot.runtime.scheduler import prune_old_rows
    from bot.store import dedupe
    from bot.store.models import DedupeKey

    runtime = Runtime.from_settings(settings(tmp_path))
    engine = runtime.services.engine
    assert dedupe.claim(engine, "slack:T1:command:old")
    assert dedupe.claim(engine, "slack:T1:command:new")
    with session_scope(engine) as session:
        old = session.get(DedupeKey, "slack:T1:command:old")
        assert old is not None
        old.created_at = utcnow() - timedelta(days=3)
        session.add(old)
    assert runtime.scheduler is None
    await runtime.start()
    assert runtime.scheduler is not None and runtime.scheduler.get_job("row-prune")
    await prune_old_rows(runtime.services)
    with session_scope(engine) as session:
        assert [k.key for k in session.exec(select(DedupeKey))] == ["slack:T1:command:new"]
    await runtime.stop()
