"""A SQLite write lock held elsewhere (another flybot process on the same file, a backup, an
operator's sqlite3) never stalls this process's event loop for long: the pipeline's own
writes wait in a thread, and anything still written on the loop waits only briefly and is
answered "busy". Lease refreshes go on and the running deploy is unharmed."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import threading
from pathlib import Path

from sqlmodel import select

from bot.store.engine import session_scope
from bot.store.models import AuditEntry, Release
from tests.flyharness import NEW, simulator, world

HELD_FOR = 3.0  # seconds the other writer keeps the file locked: longer than a lease's TTL


async def wait_for(condition: object, tries: int = 400) -> None:
    for _ in range(tries):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.02)
    raise AssertionError("never happened")


async def test_a_held_write_lock_does_not_stall_leases_of_a_running_deploy(
    tmp_path: Path,
) -> None:
    timing = dataclasses.replace(simulator.SimulatorTiming.fast(), start_s=1.2)
    async with world(tmp_path, timing=timing) as w:
        deployer = w.services.deployer
        assert deployer is not None
        deployer.timing = dataclasses.replace(deployer.timing, lease_ttl=2, lease_refresh=0.2)
        outcome, said = await w.bot.run("alice", f"deploy shop staging {NEW}")
        assert outcome.status == "ok", said.all_text()
        await wait_for(lambda: w.calls("Machines_update"))  # leases held, machines updating

        holder = sqlite3.connect(
            tmp_path / "flybot.db", isolation_level=None, check_same_thread=False
        )
        holder.execute("BEGIN IMMEDIATE")  # the write lock, as another process would hold it
        release = threading.Timer(HELD_FOR, lambda: holder.execute("COMMIT"))
        release.start()
        try:
            outcome, said = await w.bot.run("alice", 'lock shop dev "while the file is busy"')
        finally:
            await asyncio.to_thread(release.join)
            holder.close()
        assert outcome.status == "ok" or "database is busy" in said.all_text(), said.all_text()
        await w.services.jobs.wait_all()

        assert w.sim.lease_lapses() == []
        with session_scope(w.services.engine) as session:
            [release_row] = session.exec(select(Release)).all()
            assert release_row.state == "succeeded", release_row.error
            # The attempt is in the audit log: its write waited in a thread for the lock.
            assert session.exec(select(AuditEntry).where(AuditEntry.action == "lock")).first()
