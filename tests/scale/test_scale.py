"""`/fly scale show|count|vm` against the Fly simulator over HTTP: where new machines land,
which machines go, empty groups built from fly.toml, volumes, bad input changing nothing,
approvals and one-machine-at-a-time resizes, and the one-per-app slot shared with deploys."""

from __future__ import annotations

import asyncio
from collections import Counter
from itertools import pairwise
from pathlib import Path

from sqlmodel import select

from bot.store.engine import session_scope
from bot.store.models import Release
from tests.flyharness import OLD
from tests.scale.conftest import ScaleWorld, scale_world
from tests.support import snapshot


async def run_ok(world: ScaleWorld, line: str, user: str = "bob") -> str:
    outcome, conversation = await world.bot.run(user, line)
    assert outcome.status == "ok", conversation.all_text()
    await world.wait()
    return conversation.all_text()


def regions(machines: list) -> Counter[str]:
    return Counter(m.region for m in machines)


async def test_show_lists_each_group_by_region_with_size_and_state(tmp_path: Path) -> None:
    async with scale_world(tmp_path) as world:
        nrt1, sin1, nrt2, worker = world.seeded["shop-prod"]
        await world.fly.stop_machine("shop-prod", nrt2)
        await world.fly.wait_for_state("shop-prod", nrt2, "stopped", timeout=10)
        world.sim.calls.clear()
        text = await run_ok(world, "scale show shop prod", user="vic")
        assert "Scale of shop/prod (shop-prod), primary region nrt" in text
        assert "[web] 3 machine(s), shared-cpu-1x 512 MB" in text
        nrt = ", ".join(sorted((nrt1, nrt2)))
        assert f"nrt: 2 (1 started, 1 stopped) — {nrt}" in text
        assert f"sin: 1 (1 started) — {sin1}" in text
        assert f"nrt: 1 (1 started) — {worker}" in text
        assert "[worker] 1 machine(s), shared-cpu-1x 256 MB" in text
        store = await run_ok(world, "scale show store dev", user="vic")
        assert "[app] 1 machine(s)" in store and "Volumes: 1 attached, 0 free" in store
        assert world.writes() == []


async def test_count_up_2_to_5_then_down_5_to_1_across_two_regions(tmp_path: Path) -> None:
    """Must show: up round-robin from the primary (nrt, sin, nrt); down takes the stopped
    machine first, then the regions after the primary, so nrt keeps the last machine."""
    async with scale_world(tmp_path) as world:
        first_nrt, first_sin = world.seeded["shop-dev"]
        text = await run_ok(world, "scale count shop dev web=5")
        assert "[web] 2 → 5" in text and "create 3: nrt +2, sin +1" in text
        web = await world.machines("shop-dev", "web")
        assert regions(web) == {"nrt": 3, "sin": 2}
        new = [m for m in web if m.id not in (first_nrt, first_sin)]
        assert [m.region for m in new] == ["nrt", "sin", "nrt"]  # in creation order
        newest_seed = next(m for m in web if m.id == first_sin)
        assert newest_seed.config is not None
        for machine in new:  # clones of the newest machine's config
            assert machine.config is not None and machine.state == "started"
            assert machine.config.image == newest_seed.config.image
            assert machine.config.env == newest_seed.config.env
            assert machine.metadata["fly_process_group"] == "web"
            assert machine.metadata["fly_release_id"] == "seed"

        # One nrt machine is stopped: it goes first, wherever it is.
        stopped = new[0]
        await world.fly.stop_machine("shop-dev", stopped.id)
        await world.fly.wait_for_state("shop-dev", stopped.id, "stopped", timeout=10)
        world.sim.calls.clear()
        text = await run_ok(world, "scale count shop dev web=1")
        assert "[web] 5 → 1" in text
        destroyed = [c.machine_id for c in world.calls("Machines_delete")]
        # stopped first; then sin (after the primary), nrt, sin: oldest first in each region
        sin_new = new[1]
        assert destroyed == [stopped.id, first_sin, first_nrt, sin_new.id]
        left = await world.machines("shop-dev", "web")
        assert [(m.id, m.region) for m in left] == [(new[2].id, "nrt")]
        # leased before destroying, every one
        leased = {c.machine_id for c in world.calls("Machines_create_lease")}
        assert set(destroyed) <= leased


async def test_the_primary_region_shrinks_last_even_when_listed_second(tmp_path: Path) -> None:
    async with scale_world(tmp_path) as world:
        toml = world.root / "shop" / "fly.toml"
        in_sin = await world.launch("shop-dev", toml, "worker", "sin")  # the older one
        in_nrt = await world.launch("shop-dev", toml, "worker", "nrt")
        text = await run_ok(world, "scale count shop dev worker=1")
        assert "regions nrt, sin" in text  # the primary first, whatever Fly lists first
        assert [m.id for m in await world.machines("shop-dev", "worker")] == [in_nrt]
        assert [c.machine_id for c in world.calls("Machines_delete")] == [in_sin]


async def test_an_empty_group_scales_up_from_fly_toml_and_the_current_image(
    tmp_path: Path,
) -> None:
    async with scale_world(tmp_path) as world:
        text = await run_ok(world, "scale count shop dev worker=2")
        assert "[worker] 0 → 2" in text and "from fly.toml and the current image" in text
        workers = await world.machines("shop-dev", "worker")
        assert regions(workers) == {"nrt": 2}  # the primary region
        for machine in workers:
            assert machine.config is not None and machine.state == "started"
            assert (machine.config.image or "").startswith(OLD)
            assert machine.config.init is not None
            assert machine.config.init.cmd == ["/app/shop", "work"]
            assert machine.config.checks and "worker_alive" in machine.config.checks
            assert machine.metadata["fly_platform_version"] == "v2"
            assert machine.metadata["fly_release_id"] == "seed"


async def test_dry_run_shows_the_plan_and_changes_nothing(tmp_path: Path) -> None:
    async with scale_world(tmp_path) as world:
        before, rows = world.live(), snapshot(world.bot.engine)
        outcome, conversation = await world.bot.run("bob", "scale count shop dev web=4 --dry-run")
        assert outcome.status == "ok", conversation.all_text()
        text = conversation.all_text()
        assert "Dry run: nothing was changed." in text and "create 2: nrt +1, sin +1" in text
        assert world.live() == before and world.writes() == []
        with session_scope(world.bot.engine) as session:
            assert list(session.exec(select(Release))) == []
        after = snapshot(world.bot.engine)
        assert {k: v for k, v in after.items() if k != "audit_entry"} == {
            k: v for k, v in rows.items() if k != "audit_entry"
        }


BAD_LINES = [
    ("scale vm shop dev huge-cpu-9x", "Unknown size 'huge-cpu-9x'. Sizes: shared-cpu-1x,"),
    ("scale vm shop dev shared-cpu-1x --memory 100 --group web", "not a multiple of 256 MB"),
    ("scale vm shop dev performance-1x --memory 16384 --group web", "outside 2048-8192 MB"),
    ("scale count shop dev web=-1", "a count is the number of machines wanted, 0 or more"),
    ("scale count shop dev -2", "a count is the number of machines wanted, 0 or more"),
    ("scale count shop dev db=2", "No process group 'db'. Groups: web, worker."),
    ("scale count shop dev 3", "several process groups (web, worker): say which"),
    ("scale count shop dev web=two", "is not a count"),
    ("scale count shop dev web=3 --region nrt,xyz", "Unknown region 'xyz'"),
    ("scale count shop dev web=9 --max-per-region 2", "do not fit in 2 region(s)"),
    ("scale vm shop dev shared-cpu-2x --group db", "No process group 'db'"),
    ("scale vm shop dev shared-cpu-2x", "several process groups (web, worker): say which"),
    ("scale vm shop dev shared-cpu-2x --group worker", "[worker] of shop/dev has no machines"),
    ("scale count shop dev web=2", "already scaled as asked: nothing to change"),
]


async def test_bad_input_gets_one_clear_line_and_changes_nothing(tmp_path: Path) -> None:
    """Must show: a bad size, a negative count and an unknown group (and the rest) each get
    one line; the simulator's machines, the database and Fly's call log stay as they were."""
    async with scale_world(tmp_path) as world:
        before = {app: world.live(app) for app in ("shop-dev", "shop-prod")}
        rows = snapshot(world.bot.engine)
        for line, expected in BAD_LINES:
            outcome, conversation = await world.bot.run("bob", line)
            text = conversation.all_text()
            assert outcome.status in ("usage", "error"), (line, text)
            assert expected in text, (line, text)
            assert "\n" not in outcome.message.strip(), (line, outcome.message)
        await world.wait()
        assert {app: world.live(app) for app in ("shop-dev", "shop-prod")} == before
        assert world.writes() == []
        after = snapshot(world.bot.engine)
        assert {k: v for k, v in after.items() if k != "audit_entry"} == {
            k: v for k, v in rows.items() if k != "audit_entry"
        }


async def test_a_volume_group_refuses_to_scale_up_without_a_free_volume(tmp_path: Path) -> None:
    async with scale_world(tmp_path) as world:
        before = world.live("store-dev")
        outcome, conversation = await world.bot.run("bob", "scale count store dev 3")
        text = conversation.all_text()
        assert outcome.status == "error", text
        assert "[app] mounts the volume 'data'" in text and "2 in nrt is missing" in text
        assert "nothing was changed" in text
        assert world.live("store-dev") == before and world.writes() == []

        free = await world.create_volume("store-dev", "data", "nrt")
        elsewhere = await world.create_volume("store-dev", "data", "sin")
        world.sim.calls.clear()
        text = await run_ok(world, "scale count store dev 2")
        assert f"volumes mounted: {free}" in text
        [old, new] = await world.machines("store-dev")
        assert new.region == "nrt" and new.config is not None and new.config.mounts
        assert new.config.mounts[0].volume == free
        volumes = {v.id: v for v in world.sim.state.apps["store-dev"].volumes}
        assert volumes[free].attached_machine_id == new.id
        assert volumes[elsewhere].attached_machine_id is None

        # Down again: the oldest goes; its volume stays, free for the next scale up.
        seed_volume = next(v for v, vol in volumes.items() if vol.attached_machine_id == old.id)
        text = await run_ok(world, "scale count store dev 1")
        assert "their volumes stay, detached" in text
        assert [m.id for m in await world.machines("store-dev")] == [new.id]
        assert volumes[seed_volume].attached_machine_id is None
        assert volumes[free].attached_machine_id == new.id
        assert len(world.sim.state.apps["store-dev"].volumes) == 3


async def test_scale_vm_on_a_guarded_stage_waits_for_approval_then_goes_one_at_a_time(
    tmp_path: Path,
) -> None:
    """Must show: approval first; then each machine leased, updated with the new guest and
    waited for before the next one is touched (the simulator's call log)."""
    async with scale_world(tmp_path) as world:
        web = world.seeded["shop-prod"][:3]
        before = world.live("shop-prod")
        outcome, conversation = await world.bot.run(
            "bob", "scale vm shop prod shared-cpu-2x --group web"
        )
        assert outcome.status == "awaiting", conversation.all_text()
        card = conversation.all_text()
        assert "resize 3 of 3 machine(s) to shared-cpu-2x 512 MB, one at a time" in card
        assert "Approval binds: plan" in card
        assert "[[vm]] says shared-cpu-1x 512 MB for [web]" in card  # the undo warning
        await world.wait()
        assert world.live("shop-prod") == before and world.writes() == []

        outcome, conversation = await world.bot.run("carol", "approve 1")
        assert outcome.status == "ok", conversation.all_text()
        await world.wait()
        for machine in await world.machines("shop-prod", "web"):
            assert machine.config is not None and machine.config.guest is not None
            assert machine.config.guest.to_json() == {
                "cpu_kind": "shared",
                "cpus": 2,
                "memory_mb": 512,
            }
        [worker] = await world.machines("shop-prod", "worker")
        assert worker.config is not None and worker.config.guest is not None
        assert worker.config.guest.cpus == 1  # another group: untouched

        log = [
            (c.operation, c.machine_id)
            for c in world.sim.calls
            if c.machine_id in web
            and c.operation in ("Machines_create_lease", "Machines_update", "Machines_wait")
        ]
        leases = [m for op, m in log if op == "Machines_create_lease"]
        assert set(web) <= set(leases)
        first_update = next(i for i, (op, _) in enumerate(log) if op == "Machines_update")
        assert all(op == "Machines_create_lease" for op, _ in log[:first_update])
        updates = [(i, m) for i, (op, m) in enumerate(log) if op == "Machines_update"]
        assert [m for _, m in updates] == web  # one each, in order
        for (at, machine), (next_at, _) in pairwise(updates):
            between = log[at + 1 : next_at]
            assert ("Machines_wait", machine) in between, "the next machine went before a wait"
            assert all(m == machine for _, m in between)
        # every update carried its lease's nonce
        for call in world.calls("Machines_update"):
            assert call.status == 200
        with session_scope(world.bot.engine) as session:
            [release] = session.exec(select(Release)).all()
        assert release.kind == "scale" and release.state == "succeeded"
        assert world.calls("Releases_create") == []  # a scale is no Fly release


async def test_a_changed_target_voids_the_approval(tmp_path: Path) -> None:
    async with scale_world(tmp_path) as world:
        outcome, _ = await world.bot.run("bob", "scale count shop prod web=5")
        assert outcome.status == "awaiting"
        # A machine appears meanwhile (someone ran fly scale): the targets differ now.
        await world.launch("shop-prod", world.root / "shop" / "prod.fly.toml", "web", "sin")
        before = world.live("shop-prod")
        outcome, conversation = await world.bot.run("carol", "approve 1")
        assert "is void: the plan changed" in conversation.all_text()
        await world.wait()
        assert world.live("shop-prod") == before


async def test_the_approval_names_the_machines_a_scale_down_removes(tmp_path: Path) -> None:
    """Same count, other victims: a machine stopped after the request changes which one
    goes, so the approval no longer matches what would run."""
    async with scale_world(tmp_path) as world:
        _, sin1, nrt2, _ = world.seeded["shop-prod"]
        outcome, conversation = await world.bot.run("bob", "scale count shop prod web=2")
        assert outcome.status == "awaiting"
        assert f"destroy 1: {sin1} (sin, started)" in conversation.all_text()
        await world.fly.stop_machine("shop-prod", nrt2)
        await world.fly.wait_for_state("shop-prod", nrt2, "stopped", timeout=10)
        before = world.live("shop-prod")
        outcome, conversation = await world.bot.run("carol", "approve 1")
        assert "is void: the plan changed" in conversation.all_text()
        await world.wait()
        assert world.live("shop-prod") == before


async def test_scale_vm_warns_when_fly_toml_would_undo_it(tmp_path: Path) -> None:
    async with scale_world(tmp_path) as world:
        first_nrt, first_sin = world.seeded["shop-dev"]
        await world.fly.stop_machine("shop-dev", first_sin)
        await world.fly.wait_for_state("shop-dev", first_sin, "stopped", timeout=10)
        world.sim.calls.clear()
        text = await run_ok(world, "scale vm shop dev performance-1x --group web")
        # the stopped machine first, and it stays stopped (as a rolling deploy does)
        assert [c.machine_id for c in world.calls("Machines_update")] == [first_sin, first_nrt]
        assert f"{first_sin} (sin) resized, stays stopped" in text
        assert world.live()[first_sin][1] == "stopped"
        assert (
            "⚠ fly.toml has no [[vm]] for [web], so deploys use shared-cpu-1x 256 MB: the next "
            "deploy puts that back" in text
        )
        assert 'size = "performance-1x", memory = "2048mb"' in text
        for machine in await world.machines("shop-dev", "web"):
            assert machine.config is not None and machine.config.guest is not None
            assert machine.config.guest.cpu_kind == "performance"
            assert machine.config.guest.memory_mb == 2048
        # What fly.toml says already: no warning.
        text = await run_ok(world, "scale vm shop dev shared-cpu-1x --group web")
        assert "⚠" not in text


async def test_a_scale_and_a_deploy_of_one_app_cannot_run_at_once(
    tmp_path: Path, database_url: str
) -> None:
    async with scale_world(tmp_path, database_url) as world:
        world.sim.set_start_duration(1.5, image=OLD)  # new machines take a while to start
        outcome, conversation = await world.bot.run("bob", "scale count shop dev web=3")
        assert outcome.status == "ok", conversation.all_text()
        outcome, conversation = await world.bot.run(
            "bob", "deploy shop dev registry.fly.io/shop:v2"
        )
        assert outcome.status == "error"
        assert "shop-dev is being scaled by bob" in conversation.all_text()
        assert [c for c in world.writes() if c.operation == "Machines_update"] == []
        await world.wait()
        assert len(await world.machines("shop-dev", "web")) == 3  # the scale itself finished

        world.sim.set_start_duration(1.5, image="registry.fly.io/shop:v2")
        outcome, conversation = await world.bot.run(
            "bob", "deploy shop dev registry.fly.io/shop:v2"
        )
        assert outcome.status == "ok", conversation.all_text()
        outcome, conversation = await world.bot.run("bob", "scale count shop dev web=1")
        assert outcome.status == "error"
        assert "shop-dev is being deployed by bob" in conversation.all_text()
        await world.wait()
        assert len(await world.machines("shop-dev", "web")) == 3
        with session_scope(world.bot.engine) as session:
            kinds = [(r.kind, r.state) for r in session.exec(select(Release))]
        assert kinds == [("scale", "succeeded"), ("deploy", "succeeded")]


async def test_two_instances_asked_at_once_scale_once(tmp_path: Path, database_url: str) -> None:
    """The same scale typed to two bot processes on one database: one runs it, the other
    says the app is busy (the release table's one-active-per-app index)."""
    async with scale_world(tmp_path, database_url) as world:
        world.sim.set_start_duration(0.5, image=OLD)
        other = world.instance()
        (first, one), (second, two) = await asyncio.gather(
            world.bot.run("bob", "scale count shop dev web=4"),
            other.run("bob", "scale count shop dev web=4"),
        )
        statuses = sorted([first.status, second.status])
        assert statuses == ["error", "ok"], (one.all_text(), two.all_text())
        refused = one if first.status == "error" else two
        assert "shop-dev is being scaled by bob" in refused.all_text()
        await world.wait()
        for services in world.others:
            await services.jobs.wait_all()
        assert regions(await world.machines("shop-dev", "web")) == {"nrt": 2, "sin": 2}
        assert len(world.calls("Machines_create")) == 2
        with session_scope(world.bot.engine) as session:
            assert [r.kind for r in session.exec(select(Release))] == ["scale"]


async def test_max_per_region_gives_back_excess_and_fills_other_regions(tmp_path: Path) -> None:
    """As flyctl: a region over --max-per-region gives back its excess first (its oldest),
    then new machines go round-robin to the regions still under the maximum."""
    async with scale_world(tmp_path) as world:
        await run_ok(world, "scale count shop dev web=5")  # nrt 3, sin 2
        oldest_nrt = world.seeded["shop-dev"][0]
        world.sim.calls.clear()
        text = await run_ok(
            world, "scale count shop dev web=5 --region nrt,sin,syd --max-per-region 2"
        )
        assert "regions nrt, sin, syd" in text and "create 1: syd +1" in text
        assert [c.machine_id for c in world.calls("Machines_delete")] == [oldest_nrt]
        assert regions(await world.machines("shop-dev", "web")) == {"nrt": 2, "sin": 2, "syd": 1}


async def test_a_group_with_no_machine_left_is_built_from_fly_s_last_release(
    tmp_path: Path,
) -> None:
    async with scale_world(tmp_path) as world:
        [only] = world.seeded["store-dev"]
        await world.fly.delete_machine("store-dev", only, force=True)
        await world.fly.wait_for_state("store-dev", only, "destroyed", timeout=10)
        before = world.live("store-dev")
        outcome, conversation = await world.bot.run("bob", "scale count store dev 1")
        assert outcome.status == "error"
        assert "no machines to clone and no image to build one from fly.toml; deploy the stage" in (
            conversation.all_text()
        )
        assert world.live("store-dev") == before

        release = await world.fly.create_release("store-dev", OLD)
        await world.fly.update_release(release.id, "complete")
        text = await run_ok(world, "scale count store dev 1")
        assert "from fly.toml and the current image" in text
        [machine] = await world.machines("store-dev")
        assert machine.config is not None and (machine.config.image or "").startswith(OLD)
        [volume] = world.sim.state.apps["store-dev"].volumes  # the old one, free again
        assert machine.config.mounts and machine.config.mounts[0].volume == volume.id
        assert volume.attached_machine_id == machine.id


async def test_a_resize_that_does_not_come_up_in_time_is_rolled_back_and_fails(
    tmp_path: Path,
) -> None:
    """The deploy engine's waits and the stage's rollback policy hold for scale vm: the
    second machine does not start within fly.toml's wait_timeout, so the first is put back
    on its old size, and the scale ends failed saying which machine did not come back."""
    async with scale_world(tmp_path) as world:
        first_nrt, first_sin = world.seeded["shop-dev"]
        world.sim.set_start_duration(30, machine_id=first_sin)
        outcome, conversation = await world.bot.run(
            "bob", "scale vm shop dev shared-cpu-2x --group web"
        )
        assert outcome.status == "ok", conversation.all_text()
        await world.wait()
        text = conversation.all_text()
        assert f"machine {first_sin} did not start" in text or "not healthy within" in text, text
        assert f"↩ {first_nrt} (nrt) back on" in text
        with session_scope(world.bot.engine) as session:
            [release] = session.exec(select(Release)).all()
        # The slow machine cannot come back healthy either (it still will not start), so
        # the engine says so rather than "rolled back".
        assert (release.kind, release.state) == ("scale", "failed")
        assert f"the rollback did not bring {first_sin} back healthy" in release.error
        back = world.sim.state.apps["shop-dev"].machines[first_nrt]
        assert back.config["guest"] == {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256}


async def test_new_machines_get_the_newest_secrets_version(tmp_path: Path) -> None:
    """As flyctl's scale passes min_secrets_version: secrets staged with --stage reach the
    machines a scale creates, and Fly is asked for that version on each create."""
    async with scale_world(tmp_path) as world:
        staged, conversation = await world.bot.run(
            "bob", "secrets set shop dev API_TOKEN --stage", secrets={"API_TOKEN": "s3cr3t-v"}
        )
        assert staged.status == "ok", conversation.all_text()
        version = world.sim.state.apps["shop-dev"].secrets_version
        world.sim.calls.clear()
        await run_ok(world, "scale count shop dev web=3")
        [create] = world.calls("Machines_create")
        assert create.body["min_secrets_version"] == version
        [new] = [
            m
            for m in world.sim.state.apps["shop-dev"].machines.values()
            if m.id not in world.seeded["shop-dev"]
        ]
        assert new.secrets_version == version
        assert "s3cr3t-v" not in str([c.to_json() for c in world.sim.calls])
