from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from bot.clock import FrozenClock, set_clock
from bot.store import locks
from tests.support import Bot, write_projects


async def test_a_lock_expires_by_itself(tmp_path: Path) -> None:
    clock = FrozenClock()
    set_clock(clock)
    bot = Bot.start(
        f"sqlite:///{tmp_path / 'db'}",
        write_projects(tmp_path),
        admins=("shell:local:alice", "shell:local:bob"),
    )
    outcome, _ = await bot.run("alice", "lock ping-go prod --for 90m")
    assert outcome.status == "ok"
    clock.advance(timedelta(minutes=89))
    outcome, held = await bot.run("bob", "lock ping-go prod")
    assert (
        outcome.status == "error" and "already locked by alice until 10:30 UTC" in held.all_text()
    )
    clock.advance(timedelta(minutes=2))
    assert locks.current_lock(bot.engine, "ping-go", "prod") is None
    outcome, _ = await bot.run("bob", "lock ping-go prod")
    assert outcome.status == "ok"


async def test_lock_duration_is_bounded(tmp_path: Path) -> None:
    bot = Bot.start(
        f"sqlite:///{tmp_path / 'db'}", write_projects(tmp_path), admins=("shell:local:alice",)
    )
    outcome, conversation = await bot.run("alice", "lock ping-go prod --for 8d")
    assert outcome.status == "usage" or outcome.status == "error"
    assert "--for is at most 7d" in conversation.all_text()
    assert locks.current_lock(bot.engine, "ping-go", "prod") is None


async def test_unlocking_a_stage_that_is_not_locked_says_so(tmp_path: Path) -> None:
    bot = Bot.start(
        f"sqlite:///{tmp_path / 'db'}", write_projects(tmp_path), admins=("shell:local:alice",)
    )
    outcome, conversation = await bot.run("alice", "unlock hello staging")
    assert outcome.status == "error"
    assert conversation.private[0].text == "hello/staging is not locked."


async def test_a_repeated_delivery_runs_once(tmp_path: Path) -> None:
    bot = Bot.start(
        f"sqlite:///{tmp_path / 'db'}", write_projects(tmp_path), admins=("slack:T1:U1",)
    )
    first, _ = await bot.run(
        "U1", "lock ping-go dev", platform="slack", workspace="T1", dedupe_key="slack:Ev123"
    )
    second, conversation = await bot.run(
        "U1", "lock ping-go dev", platform="slack", workspace="T1", dedupe_key="slack:Ev123"
    )
    assert first.status == "ok"
    assert second.status == "duplicate"
    assert conversation.all_text() == ""
