"""Issue 8 points 6 and 9: bluegreen takes an app whose worker has no health check (judged by
state alone, and the plan says so), and retires the blues as flyctl does — cordon, drain,
stop, wait for `stopped`, destroy — so the proxy drops nothing; a blue that will not go is
reported, not a failed deploy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.deploy.test_engine import all_healthy_on, deploy, releases, writes
from tests.flyharness import NEW, OLD, World, world


def without_worker_check(w: World) -> None:
    path = w.root / "shop" / "staging.fly.toml"
    text = path.read_text()
    start = text.index("[checks.worker_alive]")
    path.write_text(text[:start])


async def test_bluegreen_takes_a_worker_without_checks_and_says_it_is_judged_by_state(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        without_worker_check(w)
        outcome, conversation = await deploy(w, f"deploy shop staging {NEW} --strategy bluegreen")
        assert outcome.status == "ok", conversation.all_text()
        assert "No health checks in [worker]" in conversation.all_text()
        assert "judged by state alone" in conversation.all_text()
        [release] = releases(w)
        assert release.state == "succeeded", release.error
        assert await all_healthy_on(w, NEW)


async def test_bluegreen_without_a_check_in_any_group_is_refused_and_changes_nothing(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        without_worker_check(w)
        path = w.root / "shop" / "staging.fly.toml"
        text = path.read_text()
        path.write_text(text[: text.index("  [[http_service.checks]]")])
        w.sim.calls.clear()
        outcome, conversation = await deploy(w, f"deploy shop staging {NEW} --strategy bluegreen")
        assert outcome.status == "error"
        assert "bluegreen needs a health check" in conversation.all_text()
        assert releases(w) == [] and writes(w) == []
        assert await all_healthy_on(w, OLD)


def per_machine(calls: list[Any], machine_id: str) -> list[str]:
    out = []
    for call in calls:
        if call.machine_id != machine_id:
            continue
        name = call.operation
        if name == "Machines_wait":
            name += ":" + call.query.get("state", "")
        if name == "Machines_delete" and call.query.get("force") == "true":
            name += ":force"
        out.append(name)
    return out


async def test_blues_are_cordoned_drained_stopped_and_then_destroyed(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        blues = [m.id for m in await w.machines()]
        outcome, _ = await deploy(w, f"deploy shop staging {NEW} --strategy bluegreen")
        assert outcome.status == "ok"
        [release] = releases(w)
        assert release.state == "succeeded", release.error
        assert w.sim.dropped_requests() == []
        for blue in blues:
            steps = [
                s
                for s in per_machine(w.calls(), blue)
                if s.split(":")[0]
                in ("Machines_cordon", "Machines_stop", "Machines_wait", "Machines_delete")
            ]
            assert steps == [
                "Machines_cordon",
                "Machines_stop",
                "Machines_wait:stopped",
                "Machines_delete",
            ], (blue, steps)


async def test_a_blue_that_will_not_go_is_reported_and_the_deploy_succeeds(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        stuck = (await w.machines())[0].id
        w.sim.inject("Machines_delete", status=500, machine_id=stuck)
        outcome, conversation = await deploy(w, f"deploy shop staging {NEW} --strategy bluegreen")
        w.sim.clear_faults()
        assert outcome.status == "ok"
        [release] = releases(w)
        assert release.state == "succeeded", release.error
        text = conversation.all_text()
        assert f"blue {stuck} could not be removed" in text
        assert f"fly machine destroy --force {stuck} -a shop-staging" in text
