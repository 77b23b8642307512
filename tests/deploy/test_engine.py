"""Deploys against the Fly simulator over HTTP: every strategy, failures, faults."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from bot.deploy.images import without_digest
from bot.store.models import Release
from tests.flyharness import BROKEN, CRASHLOOP, NEW, OLD, World, world
from tests.support import table_rows

MACHINE_PATH = re.compile(r"/v1/apps/[^/]+/machines/([^/?]+)")


def machine_of(call: Any) -> str | None:
    match = MACHINE_PATH.search(call.path)
    return match.group(1) if match else None


def releases(w: World) -> list[Release]:
    return table_rows(w.services.engine, Release)


async def deploy(w: World, line: str, user: str = "alice") -> tuple[Any, Any]:
    outcome, conversation = await w.bot.run(user, line)
    await w.services.jobs.wait_all()
    return outcome, conversation


def writes(w: World) -> list[Any]:
    """The calls that could change something on Fly (GraphQL queries and HEADs do not)."""
    return [c for c in w.calls() if c.method not in ("GET", "HEAD") and c.operation != "GraphQL"]


def image_of(machine: Any) -> str:
    """The image a machine runs, as people name it: a deploy pins `repo:tag@sha256:…`."""
    return without_digest(machine.config.image) if machine.config and machine.config.image else ""


async def all_healthy_on(w: World, image: str, app: str = "shop-staging") -> bool:
    for _ in range(200):
        machines = await w.machines(app)
        if all(
            m.config
            and image_of(m) == image
            and m.state == "started"
            and all(c.status == "passing" for c in m.checks)
            for m in machines
        ):
            return True
        await asyncio.sleep(0.05)
    return False


def groups_by_machine(machines: list[Any]) -> dict[str, str]:
    return {m.id: m.metadata.get("fly_process_group", "app") for m in machines}


def max_down_at_once(w: World, group_of: dict[str, str], group: str) -> int:
    """From the call log alone: a machine is down from its update call until the last time
    the engine looked at it (it stops looking once the machine is healthy)."""
    calls = w.calls()
    windows = []
    for index, call in enumerate(calls):
        machine = machine_of(call)
        if call.operation == "Machines_update" and group_of.get(machine or "") == group:
            last_look = max(
                i
                for i, c in enumerate(calls)
                if machine_of(c) == machine and c.operation == "Machines_show"
            )
            windows.append((index, last_look))
    return max(
        sum(1 for start, end in windows if start <= point <= end) for point in range(len(calls))
    )


@pytest.mark.parametrize("strategy", ["rolling", "immediate", "canary", "bluegreen"])
async def test_each_strategy_ends_with_every_machine_on_the_new_image(
    tmp_path: Path, strategy: str
) -> None:
    async with world(tmp_path) as w:
        before = await w.machines()
        assert len(before) == 6
        group_of = groups_by_machine(before)
        outcome, conversation = await deploy(w, f"deploy shop staging {NEW} --strategy {strategy}")
        assert outcome.status == "ok", conversation.all_text()
        assert await all_healthy_on(w, NEW)
        [release] = releases(w)
        assert (release.state, release.strategy, release.image) == ("succeeded", strategy, NEW)
        assert release.leases_json == "{}"
        after = await w.machines()
        assert {m.metadata["fly_release_version"] for m in after} == {"1"}
        text = conversation.all_text()
        assert "v1 succeeded in" in text and "6/6 machines" in text
        # Progress is batched: far fewer thread messages than steps.
        [thread] = conversation.threads.values()
        assert 1 <= len(thread) <= 6

        updates = w.calls("Machines_update")
        if strategy == "rolling":
            for group in ("web", "worker"):
                assert max_down_at_once(w, group_of, group) <= 2
            assert {machine_of(c) for c in updates} == set(group_of)
            # one machine alone first: the second update comes after the first is checked
            first, second = updates[0], updates[1]
            calls = w.calls()
            between = calls[calls.index(first) + 1 : calls.index(second)]
            assert any(
                c.operation == "Machines_show" and machine_of(c) == machine_of(first)
                for c in between
            )
        elif strategy == "immediate":
            assert len(updates) == 6
        elif strategy == "canary":
            creates, deletes = w.calls("Machines_create"), w.calls("Machines_delete")
            assert len(creates) == 2 and len(deletes) == 2  # one canary per group
            calls = w.calls()
            assert calls.index(deletes[0]) < calls.index(updates[0])
        else:  # bluegreen
            assert updates == []
            calls = w.calls()
            creates = w.calls("Machines_create")
            uncordons = w.calls("Machines_uncordon")
            deletes = w.calls("Machines_delete")
            assert len(creates) == len(uncordons) == len(deletes) == 6
            greens = {machine_of(c) for c in uncordons}
            last_look = max(
                i
                for i, c in enumerate(calls)
                if c.operation == "Machines_show" and machine_of(c) in greens
            )
            assert last_look < calls.index(uncordons[0]), "greens took traffic before all healthy"
            assert calls.index(uncordons[-1]) < calls.index(deletes[0])
            assert {machine_of(c) for c in deletes} == set(group_of)  # the blues are gone


async def test_a_broken_image_stops_rolling_at_the_first_machine_and_rolls_it_back(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        outcome, conversation = await deploy(w, f"deploy shop staging {BROKEN}")
        assert outcome.status == "ok"
        [release] = releases(w)
        assert release.state == "rolled_back"
        assert "not healthy within 3s" in release.error
        updates = w.calls("Machines_update")
        assert len(updates) == 2 and machine_of(updates[0]) == machine_of(updates[1])
        assert await all_healthy_on(w, OLD)
        text = conversation.all_text()
        assert "critical" in text  # the check output is in the thread
        assert f"back on {OLD}" in text
        assert "v1 rolled back" in text
        assert all(
            lease is None
            for lease in [await w.fly.get_lease("shop-staging", m.id) for m in await w.machines()]
        )


async def test_a_broken_image_in_bluegreen_deletes_the_greens_and_the_blues_keep_serving(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        blues = {m.id for m in await w.machines()}
        outcome, conversation = await deploy(
            w, f"deploy shop staging {BROKEN} --strategy bluegreen"
        )
        assert outcome.status == "ok"
        [release] = releases(w)
        assert release.state == "failed"
        assert w.calls("Machines_uncordon") == []
        created = {machine_of(c) for c in w.calls("Machines_delete")}
        assert created and not (created & blues)
        assert {m.id for m in await w.machines()} == blues
        assert await all_healthy_on(w, OLD)
        assert "blue ones keep serving" in conversation.all_text()


async def test_a_crash_looping_image_is_detected_and_rolled_back(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        _, conversation = await deploy(w, f"deploy shop staging {CRASHLOOP}")
        [release] = releases(w)
        assert release.state == "rolled_back"
        assert "crash-looping" in release.error or "did not start" in release.error
        assert await all_healthy_on(w, OLD)
        assert release.error in conversation.all_text()


async def test_deploys_end_correctly_when_a_fifth_of_fly_answers_are_429_or_500(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        w.sim.inject("*", status=429, rate=0.1)
        w.sim.inject("*", status=500, rate=0.1)
        outcome, conversation = await deploy(w, f"deploy shop staging {NEW}")
        w.sim.clear_faults()
        assert outcome.status == "ok", conversation.all_text()
        [release] = releases(w)
        assert release.state == "succeeded", release.error
        assert await all_healthy_on(w, NEW)
        assert any(c.status in (429, 500) for c in w.calls())


async def test_one_deploy_per_app_at_a_time_and_locks_refuse(tmp_path: Path) -> None:
    async with world(tmp_path, admins=("shell:local:alice", "shell:local:bob")) as w:
        first, _ = await w.bot.run("alice", f"deploy shop staging {NEW}")
        second, conversation = await w.bot.run("bob", f"deploy shop staging {NEW}")
        assert first.status == "ok" and second.status == "error"
        assert re.search(
            r"shop-staging is being deployed by alice since \d\d:\d\d UTC", conversation.all_text()
        )
        await w.services.jobs.wait_all()
        await w.bot.run("bob", 'lock shop staging "load test"')
        refused, conversation = await w.bot.run("alice", f"deploy shop staging {OLD}")
        assert refused.status == "error"
        assert "shop/staging is locked by bob until" in conversation.all_text()
        assert "load test" in conversation.all_text()


async def test_a_dry_run_shows_the_plan_and_changes_nothing(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        outcome, conversation = await deploy(w, "deploy shop staging --dry-run")
        assert outcome.status == "ok"
        text = conversation.all_text()
        assert f"Image: {OLD} → {OLD} (promoted from dev)" in text
        assert "[web] update 4" in text and "[worker] update 2" in text
        assert writes(w) == []
        assert releases(w) == []


async def test_promotion_takes_the_previous_stages_image(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await deploy(w, f"deploy shop dev {NEW} --strategy immediate")
        assert await all_healthy_on(w, NEW, app="shop-dev")
        outcome, conversation = await deploy(w, "deploy shop staging")
        assert outcome.status == "ok"
        assert "(promoted from dev)" in conversation.all_text()
        assert await all_healthy_on(w, NEW)


async def test_rollback_deploys_an_earlier_release_again(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await deploy(w, f"deploy shop staging {NEW} --strategy immediate")
        await deploy(w, "deploy shop staging registry.fly.io/shop:v3 --strategy immediate")
        outcome, conversation = await deploy(w, "rollback shop staging")
        assert outcome.status == "ok", conversation.all_text()
        assert await all_healthy_on(w, NEW)
        _, listing = await w.bot.run("alice", "releases shop staging")
        lines = listing.public[0].lines
        assert lines[0].startswith("v3  succeeded") and "(rollback)" in lines[0]
        missing, conversation = await deploy(w, "rollback shop staging 9")
        assert missing.status == "error" and "No succeeded release v9" in conversation.all_text()
