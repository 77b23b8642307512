"""Issue 9 point 10 (the engine's part): the deploy engine's database writes run off the
event loop, so a database that makes writers wait (SQLite's busy timeout) cannot stall the
roll-out, its lease refreshes or anything else on the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

from tests.deploy.test_engine import deploy, releases
from tests.flyharness import NEW, world


async def test_a_locked_database_does_not_stall_a_running_deploy(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        w.sim.set_start_duration(0.4, image=NEW)
        counts: list[int] = []
        locked = threading.Event()

        def hold_the_write_lock() -> None:
            connection = sqlite3.connect(tmp_path / "flybot.db", timeout=0, isolation_level=None)
            connection.execute("BEGIN IMMEDIATE")  # every other writer now waits
            locked.set()
            time.sleep(0.6)  # the engine's heartbeat (every 0.2 s) is waiting by now
            counts.append(len(w.sim.calls))
            time.sleep(1.0)
            counts.append(len(w.sim.calls))
            connection.execute("COMMIT")
            connection.close()

        started = asyncio.create_task(deploy(w, f"deploy shop staging {NEW}"))
        while not w.calls("Machines_update"):
            await asyncio.sleep(0.01)
        holder = threading.Thread(target=hold_the_write_lock)
        holder.start()
        while holder.is_alive():
            await asyncio.sleep(0.01)
        outcome, conversation = await started
        assert outcome.status == "ok", conversation.all_text()
        [release] = releases(w)
        assert release.state == "succeeded", release.error
        before, after = counts
        assert after > before, "the event loop (simulator included) stood still"
