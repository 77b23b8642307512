"""Delivery ids and link codes are let go on a schedule, claimed in the database so that any
number of instances prune once per period; a claimed link code (proof that two accounts are
one person, which the self-approval check reads) is kept."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

from sqlmodel import select

from bot.clock import FrozenClock, set_clock, utcnow
from bot.store import dedupe, make_engine, upgrade
from bot.store.engine import session_scope
from bot.store.models import DedupeKey, LinkRequest
from bot.store.principals import IdentityKey, ensure_identity
from bot.store.prune import PRUNE_EVERY, prune_if_due


def seed(url: str) -> None:
    engine = make_engine(url)
    upgrade(engine)
    now = utcnow()
    a = ensure_identity(engine, IdentityKey("slack", "T1", "U1"))
    b = ensure_identity(engine, IdentityKey("discord", "G1", "D1"))
    for key in ("old", "new"):
        assert dedupe.claim(engine, f"slack:T1:command:{key}")
    with session_scope(engine) as session:
        old = session.get(DedupeKey, "slack:T1:command:old")
        assert old is not None
        old.created_at = now - timedelta(days=3)
        session.add(old)
        long_ago = now - timedelta(days=3)
        for code, state, expires in (
            ("STRT-OLD1", "started", long_ago),
            ("STRT-NEW1", "started", now + timedelta(minutes=5)),
            ("DONE-OLD1", "done", long_ago),
            ("CLMD-OLD1", "claimed", long_ago),
        ):
            session.add(
                LinkRequest(
                    code=code,
                    from_identity_id=a.id or 0,
                    to_identity_id=None if state == "started" else b.id,
                    state=state,
                    created_at=expires - timedelta(minutes=10),
                    expires_at=expires,
                )
            )
    engine.dispose()


def left(url: str) -> tuple[list[str], list[str]]:
    engine = make_engine(url)
    with session_scope(engine) as session:
        keys = sorted(k.key for k in session.exec(select(DedupeKey)))
        codes = sorted(r.code for r in session.exec(select(LinkRequest)))
    engine.dispose()
    return keys, codes


def test_old_delivery_ids_and_link_codes_go_and_claimed_links_stay(database_url: str) -> None:
    seed(database_url)
    engine = make_engine(database_url)
    pruned = prune_if_due(engine, by="me")
    assert pruned is not None and pruned.deliveries == 1 and pruned.link_codes == 2
    assert left(database_url) == (
        ["slack:T1:command:new"],
        ["CLMD-OLD1", "STRT-NEW1"],
    )
    engine.dispose()


def test_six_instances_prune_once_per_period(database_url: str) -> None:
    clock = FrozenClock(utcnow())
    set_clock(clock)
    seed(database_url)
    engines = [make_engine(database_url) for _ in range(6)]
    start = threading.Barrier(len(engines))
    results: list[object] = [None] * len(engines)

    def instance(n: int) -> None:
        start.wait()
        results[n] = prune_if_due(engines[n], by=f"instance-{n}")

    def all_at_once() -> list[object]:
        threads = [threading.Thread(target=instance, args=(n,)) for n in range(len(engines))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        return [r for r in results if r is not None]

    assert len(all_at_once()) == 1
    assert left(database_url)[1] == ["CLMD-OLD1", "STRT-NEW1"]
    clock.advance(PRUNE_EVERY / 2)
    assert all_at_once() == []  # not due yet on any instance
    clock.advance(PRUNE_EVERY / 2)
    assert len(all_at_once()) == 1  # the next period: once again
    for engine in engines:
        engine.dispose()


async def test_the_runtime_schedules_the_claimed_prune(tmp_path: Path) -> None:
    from bot.runtime import Runtime
    from bot.runtime.scheduler import prune_old_rows
    from bot.settings import Settings

    url = f"sqlite:///{tmp_path / 'flybot.db'}"
    seed(url)
    runtime = Runtime.from_settings(Settings(database_url=url))
    await runtime.start()
    try:
        assert runtime.scheduler is not None and runtime.scheduler.get_job("row-prune")
        await prune_old_rows(runtime.services)
        assert left(url) == (["slack:T1:command:new"], ["CLMD-OLD1", "STRT-NEW1"])
    finally:
        await runtime.stop()
