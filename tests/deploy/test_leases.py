"""Issue 8 points 7 and 13: leases are taken with retries that cannot steal or duplicate,
another holder is a clear refusal, refreshes run side by side within the TTL, and a lease
that is lost stops the roll-out before its machine is touched."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from tests.deploy.test_engine import all_healthy_on, deploy, releases
from tests.flyharness import FAST_ENGINE, NEW, OLD, World, world


async def no_leases_left(w: World, app: str = "shop-staging") -> bool:
    return all([await w.fly.get_lease(app, m.id) is None for m in await w.machines(app)])


async def test_a_500_on_taking_a_lease_is_retried_and_the_deploy_succeeds(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        w.sim.inject("Machines_create_lease", status=500, count=1)
        w.sim.inject("Machines_create_lease", status=500, applied=1.0, count=1)  # lost answer
        outcome, _ = await deploy(w, f"deploy shop staging {NEW}")
        assert outcome.status == "ok"
        [release] = releases(w)
        assert release.state == "succeeded", release.error
        assert await all_healthy_on(w, NEW)
        assert await no_leases_left(w)


async def test_another_holders_lease_is_refused_by_name_and_nothing_changes(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        busy = (await w.machines())[3]
        await w.fly.acquire_lease("shop-staging", busy.id, ttl=60, description="bob: fly deploy")
        await deploy(w, f"deploy shop staging {NEW}")
        [release] = releases(w)
        assert release.state == "failed"
        assert busy.id in release.error and "bob: fly deploy" in release.error
        assert "Nothing was changed" in release.error
        assert w.calls("Machines_update") == []
        leased = [m.id for m in await w.machines() if await w.fly.get_lease("shop-staging", m.id)]
        assert leased == [busy.id]  # only bob's is left


async def test_slow_refreshes_never_let_a_lease_run_out(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        assert w.services.deployer is not None
        w.services.deployer.timing = replace(FAST_ENGINE, lease_ttl=3, lease_refresh=0.3)
        w.sim.set_start_duration(1.0, image=NEW)
        running = asyncio.create_task(deploy(w, f"deploy shop staging {NEW}"))
        while not w.calls("Machines_update"):
            await asyncio.sleep(0.01)
        w.sim.inject("Machines_create_lease", latency=0.7)  # every refresh now takes 0.7 s
        await running
        w.sim.clear_faults()
        [release] = releases(w)
        assert release.state == "succeeded", release.error
        assert w.sim.lease_lapses() == []


async def test_a_lease_taken_over_midway_stops_the_rollout_before_that_machine(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        w.sim.set_start_duration(0.3, image=NEW)
        machines = await w.machines()
        last = max(
            (m for m in machines if m.metadata["fly_process_group"] == "worker"), key=lambda m: m.id
        )
        running = asyncio.create_task(deploy(w, f"deploy shop staging {NEW}"))
        while not w.calls("Machines_update"):
            await asyncio.sleep(0.01)
        # An operator clears the deploy's lease on the last machine and takes one of their own,
        # as `fly machine leases clear` followed by other work would.
        ours = await w.fly.get_lease("shop-staging", last.id)
        assert ours is not None and ours.nonce
        await w.fly.release_lease("shop-staging", last.id, ours.nonce)
        await w.fly.acquire_lease("shop-staging", last.id, ttl=60, description="ops: maintenance")
        await running
        [release] = releases(w)
        assert release.state == "rolled_back", release.error
        assert f"lost the lease on {last.id}" in release.error
        assert all(c.machine_id != last.id for c in w.calls("Machines_update"))
        assert await all_healthy_on(w, OLD)


async def test_a_create_answered_late_by_fly_leaves_no_second_machine(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        path = w.root / "shop" / "staging.fly.toml"
        path.write_text(path.read_text().replace("[processes]\n", '[processes]\n  cron = "c"\n'))
        # Fly made the machine, the answer was lost, and its listing shows it only after the
        # client stopped looking: the client creates again; the deploy removes the copy.
        w.sim.set_timing(list_lag_s=1.0)
        await asyncio.sleep(1.1)  # the machines seeded a moment ago are listed again
        w.sim.inject("Machines_create", status=500, applied=1.0, count=1)
        _, conversation = await deploy(w, f"deploy shop staging {NEW}")
        w.sim.set_timing(list_lag_s=0.0)
        [release] = releases(w)
        assert release.state == "succeeded", release.error
        assert len(w.calls("Machines_create")) == 2
        crons = [m for m in await w.machines() if m.metadata["fly_process_group"] == "cron"]
        assert len(crons) == 1, crons
        assert "a second copy of" in conversation.all_text()
