"""Issue 8 points 10, 11, 12 and 15: what "healthy" means, judged from the config's checks
and Fly's own events and clock; rollbacks wait for it too; a wait is reported while it
lasts, and `fail_fast` ends a hopeless one early."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.deploy.test_engine import all_healthy_on, deploy, machine_of, releases
from tests.flyharness import BROKEN, CRASHLOOP, NEW, OLD, World, world

OLD_BROKEN = "registry.fly.io/shop:v1-broken"


async def restart_twice(w: World) -> None:
    for machine in await w.machines():
        for _ in range(2):
            await w.fly.restart_machine("shop-staging", machine.id)
            await w.fly.wait_for_state("shop-staging", machine.id, "started", timeout=10)


async def test_requested_restarts_before_the_deploy_are_no_crash_loop(tmp_path: Path) -> None:
    async with world(tmp_path, fly_clock_skew=300) as w:  # Fly's clock 5 minutes ahead of ours
        await restart_twice(w)  # two requested exits on every machine
        outcome, _ = await deploy(w, f"deploy shop staging {NEW}")
        assert outcome.status == "ok"
        [release] = releases(w)
        assert release.state == "succeeded", release.error
        assert await all_healthy_on(w, NEW)


async def test_requested_restarts_during_the_wait_are_no_crash_loop(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        w.sim.set_ready_after(0.5, image=NEW)  # the wait lasts long enough to restart in
        running = asyncio.create_task(deploy(w, f"deploy shop staging {NEW}"))
        while not w.calls("Machines_update"):
            await asyncio.sleep(0.01)
        first = machine_of(w.calls("Machines_update")[0]) or ""
        lease = await w.fly.get_lease("shop-staging", first)
        assert lease is not None and lease.nonce
        for _ in range(2):  # asked for, each one: exits that are no crash
            await w.fly.wait_for_state("shop-staging", first, "started", timeout=10)
            await w.fly.restart_machine("shop-staging", first, lease_nonce=lease.nonce)
        outcome, _ = await running
        assert outcome.status == "ok"
        [release] = releases(w)
        assert release.state == "succeeded", release.error
        events = await w.fly.list_events("shop-staging", first, limit=50)
        requested = [
            e for e in events if e.type == "exit" and e.request["exit_event"]["requested_stop"]
        ]
        assert len(requested) >= 2


async def test_a_crash_loop_is_seen_by_fly_s_clock_even_when_it_lags_ours(
    tmp_path: Path,
) -> None:
    async with world(tmp_path, fly_clock_skew=-300) as w:  # Fly's clock 5 minutes behind ours
        await deploy(w, f"deploy shop staging {CRASHLOOP}")
        [release] = releases(w)
        assert release.state == "rolled_back"
        assert "crash-looping" in release.error and "exit code 1" in release.error


async def test_a_machine_killed_for_memory_over_and_over_is_a_crash_loop(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await deploy(w, "deploy shop staging registry.fly.io/shop:v2-oom")
        [release] = releases(w)
        assert release.state == "rolled_back", (release.state, release.error)
        assert "crash-looping" in release.error and "out of memory" in release.error
        assert await all_healthy_on(w, OLD)


async def test_checks_fly_registers_late_are_waited_for(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        # Fly lists no checks for 0.3 s after a start: an empty list is not "all passing".
        w.sim.set_timing(check_register_s=0.3)
        await deploy(w, f"deploy shop staging {BROKEN}")
        [release] = releases(w)
        assert release.state == "rolled_back", (release.state, release.error)
        assert await all_healthy_on(w, OLD)


async def test_a_rollback_waits_for_the_old_version_to_pass_its_checks(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        w.sim.set_ready_after(0.4, image=OLD)  # the old build answers checks 0.4 s after start
        _, conversation = await deploy(w, f"deploy shop staging {BROKEN}")
        [release] = releases(w)
        assert release.state == "rolled_back", release.error
        # Right when the deploy reports, the rolled-back machine already passes its checks.
        for machine in await w.machines():
            assert {c.status for c in machine.checks} == {"passing"}, machine.checks
        assert ", healthy" in conversation.all_text()


async def test_a_rollback_that_does_not_come_back_healthy_says_so(tmp_path: Path) -> None:
    async with world(tmp_path, seed_image=OLD_BROKEN) as w:
        _, conversation = await deploy(w, f"deploy shop staging {BROKEN}")
        [release] = releases(w)
        assert release.state == "failed", release.state
        assert "did not bring" in release.error and "back healthy" in release.error
        assert f"did not come back healthy on {OLD_BROKEN}" in conversation.all_text()


async def test_a_failing_wait_is_reported_while_it_lasts(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        _, conversation = await deploy(w, f"deploy shop staging {BROKEN}")
        edits = [r.text for r in conversation.public if "checks" in r.text]
        assert edits, [r.text for r in conversation.public]
        assert any(
            "web 1/4" in e and "checks critical for" in e and "HTTP 500 on /healthz" in e
            for e in edits
        ), edits
        assert len(edits) <= 3  # 3 s of waiting, at most one edit every 3 s (and the first)


async def test_fail_fast_ends_a_hopeless_wait_before_the_timeout(tmp_path: Path) -> None:
    extra = "\n[projects.shop.stages.staging]\nfail_fast = true\n"
    async with world(tmp_path, extra_config=extra) as w:
        path = w.root / "shop" / "staging.fly.toml"
        path.write_text(path.read_text().replace('wait_timeout = "3s"', 'wait_timeout = "10m"'))
        await deploy(w, f"deploy shop staging {BROKEN}")
        [release] = releases(w)
        assert release.state == "rolled_back"
        assert "every check critical for three intervals (fail_fast)" in release.error
        assert await all_healthy_on(w, OLD)
