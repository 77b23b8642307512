"""Issue 8 point 14: the release flybot records on Fly goes pending → running → complete as
flyctl's does, and machines carry Fly's release id and version (what `fly releases` and the
next `fly deploy` read), not flybot's own counter."""

from __future__ import annotations

from pathlib import Path

from tests.deploy.test_engine import deploy, releases
from tests.flyharness import NEW, world


async def test_the_fly_release_runs_and_machines_carry_its_version(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        for _ in range(3):  # earlier `fly deploy`s: Fly's next release is v4, flybot's v1
            await w.fly.create_release("shop-staging", image="registry.fly.io/shop:v0")
        w.sim.calls.clear()
        outcome, _ = await deploy(w, f"deploy shop staging {NEW}")
        assert outcome.status == "ok"
        [release] = releases(w)
        assert (release.state, release.version) == ("succeeded", 1)
        statuses = [c.body["status"] for c in w.calls("Releases_update")]
        assert statuses == ["running", "complete"]
        calls = w.calls()
        running = next(c for c in calls if c.operation == "Releases_update")
        assert calls.index(running) < calls.index(w.calls("Machines_update")[0])
        [fly_release] = [
            r for r in await w.fly.list_releases("shop-staging") if r.id == release.fly_release_id
        ]
        assert (fly_release.version, fly_release.status) == (4, "complete")
        metadata = [m.metadata for m in await w.machines()]
        assert {m["fly_release_version"] for m in metadata} == {"4"}
        assert {m["fly_release_id"] for m in metadata} == {release.fly_release_id}
