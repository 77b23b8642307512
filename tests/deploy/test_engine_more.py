"""More of the deploy engine: release commands, first machines, the leave-them policy,
pruned images, freeze windows, and how many messages a big deploy posts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bot.clock import FrozenClock, set_clock
from bot.deploy.images import without_digest
from tests.deploy.test_engine import all_healthy_on, deploy, image_of, releases
from tests.flyharness import BROKEN, NEW, OLD, World, seed_stage, world


def edit_staging(w: World, old: str, new: str) -> None:
    path = w.root / "shop" / "staging.fly.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


async def test_a_release_command_runs_first_in_a_temporary_machine(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        edit_staging(w, "[deploy]\n", '[deploy]\n  release_command = "/app/shop migrate"\n')
        outcome, conversation = await deploy(w, f"deploy shop staging {NEW}")
        assert outcome.status == "ok"
        [release] = releases(w)
        assert release.state == "succeeded", release.error
        creates, updates = w.calls("Machines_create"), w.calls("Machines_update")
        assert len(creates) == 1 and len(updates) == 6
        calls = w.calls()
        assert calls.index(creates[0]) < calls.index(updates[0])
        assert creates[0].body["config"]["init"]["cmd"] == ["/app/shop", "migrate"]
        assert creates[0].body["config"]["auto_destroy"] is True
        assert "✓ release command succeeded" in conversation.all_text()


async def test_a_failing_release_command_stops_before_any_machine_changes(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        edit_staging(w, "[deploy]\n", '[deploy]\n  release_command = "/app/shop migrate --fail"\n')
        _, conversation = await deploy(w, f"deploy shop staging {NEW}")
        [release] = releases(w)
        assert release.state == "failed"
        assert "release command exited with code 1; no machine was changed" in release.error
        assert w.calls("Machines_update") == []
        assert await all_healthy_on(w, OLD)
        assert release.error in conversation.all_text()


async def test_new_process_groups_get_their_first_machines_in_the_primary_region(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        edit_staging(
            w, "[processes]\n", '[processes]\n  cron = "/app/shop cron"\n  api = "/app/shop api"\n'
        )
        edit_staging(w, 'processes = ["web"]', 'processes = ["web", "api"]')
        outcome, _ = await deploy(w, f"deploy shop staging {NEW}")
        assert outcome.status == "ok"
        assert releases(w)[0].state == "succeeded", releases(w)[0].error
        machines = await w.machines()
        by_group: dict[str, list[str]] = {}
        for machine in machines:
            assert image_of(machine) == NEW
            assert machine.metadata["fly_platform_version"] == "v2"
            by_group.setdefault(machine.metadata["fly_process_group"], []).append(
                machine.region or ""
            )
        assert by_group["cron"] == ["nrt"]  # one: cron has no services
        assert by_group["api"] == ["nrt", "nrt"]  # two: api serves HTTP
        assert len(machines) == 9


async def test_the_release_is_recorded_on_fly_and_leases_are_kept_fresh(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await deploy(w, f"deploy shop staging {NEW}")
        await deploy(w, f"deploy shop staging {BROKEN}")
        created = w.calls("Releases_create")
        assert [without_digest(c.body["image"]) for c in created] == [NEW, BROKEN]
        statuses = [c.body["status"] for c in w.calls("Releases_update")]
        assert statuses == ["running", "complete", "running", "failed"]
        # The broken deploy waits out its 3 s timeout: its leases (TTL 5 s) were refreshed.
        refreshes = [c for c in w.calls("Machines_create_lease") if c.status == 200]
        assert refreshes, "no lease was refreshed"
        assert all(c.status != 409 for c in w.calls("Machines_update"))


async def test_with_rollback_off_a_failure_leaves_the_machines_and_says_what_runs_where(
    tmp_path: Path,
) -> None:
    extra = "\n[projects.shop.stages.staging]\nrollback_on_failure = false\n"
    async with world(tmp_path, extra_config=extra) as w:
        _, conversation = await deploy(w, f"deploy shop staging {BROKEN}")
        [release] = releases(w)
        assert release.state == "failed"
        images = [image_of(m) for m in await w.machines()]
        assert images.count(BROKEN) == 1 and images.count(OLD) == 5
        text = conversation.all_text()
        assert f"runs {BROKEN}" in text and "left as they are" in text


async def test_rollback_refuses_an_image_fly_has_pruned(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await deploy(w, f"deploy shop staging {NEW} --strategy immediate")
        await deploy(w, "deploy shop staging registry.fly.io/shop:v3 --strategy immediate")
        w.sim.prune_image(NEW)
        outcome, conversation = await deploy(w, "rollback shop staging 1")
        assert outcome.status == "error"
        assert f"v1's image {NEW} no longer exists on Fly" in conversation.all_text()
        assert len(releases(w)) == 2


async def test_a_freeze_window_refuses_a_deploy_with_the_reason(tmp_path: Path) -> None:
    extra = '\n[projects.shop.stages.staging]\nfreeze = ["Fri 16:00-Mon 08:00 Asia/Seoul"]\n'
    set_clock(FrozenClock(datetime(2026, 11, 28, 12, 0, tzinfo=UTC)))  # a Saturday
    async with world(tmp_path, extra_config=extra) as w:
        outcome, conversation = await deploy(w, f"deploy shop staging {NEW}")
        assert outcome.status == "error"
        assert "shop/staging is frozen now (Fri 16:00-Mon 08:00 Asia/Seoul)" in (
            conversation.all_text()
        )
        assert releases(w) == []


async def test_a_thirty_machine_deploy_posts_a_handful_of_messages(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        staging = w.root / "shop" / "staging.fly.toml"
        await seed_stage(w.fly, w.base_url, staging, OLD, web=26, worker=0, create_app=False)
        edit_staging(w, "max_unavailable = 2", "max_unavailable = 4")
        outcome, conversation = await deploy(w, f"deploy shop staging {NEW}")
        assert outcome.status == "ok", conversation.all_text()
        [release] = releases(w)
        assert release.state == "succeeded", release.error
        assert len(await w.machines()) == 32
        [thread] = conversation.threads.values()
        assert len(thread) <= 10, [r.lines for r in thread]
        healthy = [line for r in thread for line in r.lines if "healthy on" in line]
        assert len(healthy) == 32  # every machine is still reported
