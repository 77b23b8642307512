"""Issue 8 point 5: every image is pinned to its digest when the deploy is planned; the plan
shows it, an approval is bound to it, and the roll-out runs exactly those bits even when the
tag is pushed again. When no look-up answers, a guarded stage refuses and an unguarded one
deploys by tag with a warning."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.deploy.test_approvals import ask, people, request_row
from tests.deploy.test_engine import all_healthy_on, deploy, image_of, releases
from tests.flyharness import BROKEN, NEW, OLD, World, world

PEOPLE = ("shell:local:alice",)


async def digests(w: World, app: str) -> set[str]:
    return {m.image_ref.digest or "" for m in await w.machines(app) if m.image_ref}


async def test_an_approval_binds_the_digest_and_a_pushed_tag_voids_it(tmp_path: Path) -> None:
    async with world(tmp_path, admins=PEOPLE) as w:
        people(w)
        approved_bits = w.sim.image_digest(NEW)
        conversation = await ask(w, f"deploy shop prod {NEW}")
        assert approved_bits[:19] in conversation.all_text()  # the card shows what is bound
        assert request_row(w).fingerprint
        # The tag is pushed again, to a broken build, before anyone approves.
        w.sim.push_image(NEW, like=BROKEN)
        _, conversation = await w.bot.run("approver0", "approve 1")
        await w.services.jobs.wait_all()
        assert request_row(w).state == "voided", conversation.all_text()
        assert releases(w) == []
        assert {image_of(m) for m in await w.machines("shop-prod")} == {OLD}


async def test_a_tag_pushed_during_the_rollout_changes_nothing_that_runs(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        w.sim.set_start_duration(0.2, image=NEW)
        planned = w.sim.image_digest(NEW)
        running = asyncio.create_task(deploy(w, f"deploy shop staging {NEW}"))
        while not w.calls("Machines_update"):
            await asyncio.sleep(0.01)
        w.sim.push_image(NEW, like=BROKEN)
        outcome, conversation = await running
        assert outcome.status == "ok"
        [release] = releases(w)
        assert release.state == "succeeded", release.error
        assert release.image_digest == planned
        assert await digests(w, "shop-staging") == {planned}
        assert await all_healthy_on(w, NEW)
        assert f"pinned to {planned[:19]}" in conversation.all_text()


async def test_with_graphql_down_the_registry_pins_the_image(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        w.sim.inject("GraphQL", status=503)
        outcome, conversation = await deploy(w, f"deploy shop staging {NEW} --strategy immediate")
        w.sim.clear_faults()
        assert outcome.status == "ok", conversation.all_text()
        assert "(the registry (registry.fly.io))" in conversation.all_text()
        assert await digests(w, "shop-staging") == {w.sim.image_digest(NEW)}


async def test_with_no_lookup_answering_guarded_refuses_and_unguarded_warns(
    tmp_path: Path,
) -> None:
    async with world(tmp_path, admins=PEOPLE) as w:
        people(w)
        w.sim.inject("GraphQL", status=503)
        w.sim.inject("Registry_manifest", status=503)
        refused, conversation = await w.bot.run("bob", f"deploy shop prod {NEW}")
        assert refused.status == "error", conversation.all_text()
        text = conversation.all_text()
        assert "could not be pinned to a digest" in text and "503" in text
        outcome, conversation = await deploy(w, f"deploy shop staging {NEW} --strategy immediate")
        w.sim.clear_faults()
        assert outcome.status == "ok", conversation.all_text()
        assert "is deployed by tag, not pinned" in conversation.all_text()
        assert releases(w)[0].state == "succeeded"


async def test_an_image_the_registry_does_not_have_is_refused_before_anything_changes(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        outcome, conversation = await deploy(
            w, "deploy shop staging registry.fly.io/shop:v9-missing"
        )
        assert outcome.status == "error"
        assert "is not in the registry" in conversation.all_text()
        assert releases(w) == []


async def test_a_rollback_goes_ahead_with_a_warning_when_no_lookup_answers(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await deploy(w, f"deploy shop staging {NEW} --strategy immediate")
        v1_bits = releases(w)[0].image_digest
        await deploy(w, "deploy shop staging registry.fly.io/shop:v3 --strategy immediate")
        w.sim.inject("GraphQL", status=503)
        w.sim.inject("Registry_manifest", status=503)
        outcome, conversation = await deploy(w, "rollback shop staging")
        w.sim.clear_faults()
        assert outcome.status == "ok", conversation.all_text()
        assert "Could not check that registry.fly.io/shop:v2 still exists" in (
            conversation.all_text()
        )
        assert releases(w)[2].state == "succeeded"
        assert await digests(w, "shop-staging") == {v1_bits}


async def test_a_rollback_runs_the_digest_it_ran_not_what_the_tag_names_now(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        await deploy(w, f"deploy shop staging {NEW} --strategy immediate")
        v1_bits = releases(w)[0].image_digest
        await deploy(w, "deploy shop staging registry.fly.io/shop:v3 --strategy immediate")
        w.sim.push_image(NEW, like=BROKEN)
        outcome, conversation = await deploy(w, "rollback shop staging")
        assert outcome.status == "ok", conversation.all_text()
        assert releases(w)[2].state == "succeeded", releases(w)[2].error
        assert await digests(w, "shop-staging") == {v1_bits}
