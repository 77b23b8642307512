"""Issue 8 point 16: a machine's checks are looked at in step with their own grace period
and interval, never more often than Fly runs them, and less often while a slow boot keeps
them failing. (What a deploy costs per machine is measured by bench/deploy.py.)"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.deploy.test_engine import all_healthy_on, deploy, machine_of, releases
from tests.flyharness import NEW, World, world

INTERVAL = 0.05  # fly.toml's interval = "1s" and grace_period = "1s", at the tests' pace


async def looks_per_web_machine(w: World) -> Counter[str]:
    web = {m.id for m in await w.machines() if m.metadata.get("fly_process_group") == "web"}
    return Counter(machine_of(c) or "" for c in w.calls("Machines_show") if machine_of(c) in web)


async def test_checks_that_pass_at_once_are_looked_at_once_when_their_grace_ends(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        outcome, conversation = await deploy(w, f"deploy shop staging {NEW}")
        assert outcome.status == "ok", conversation.all_text()
        [release] = releases(w)
        assert release.state == "succeeded", release.error
        looks = await looks_per_web_machine(w)
        assert len(looks) == 4 and set(looks.values()) == {1}, looks


async def test_a_slow_boot_costs_a_few_looks_not_one_per_check_run(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        # The new build answers its checks 0.5 s after it starts: ten runs of the check
        # fail first. One look per run would be eleven looks, polling faster still more.
        w.sim.set_ready_after(10 * INTERVAL, image=NEW)
        outcome, conversation = await deploy(w, f"deploy shop staging {NEW}")
        assert outcome.status == "ok", conversation.all_text()
        [release] = releases(w)
        assert release.state == "succeeded", release.error
        assert await all_healthy_on(w, NEW)
        looks = await looks_per_web_machine(w)
        assert len(looks) == 4 and max(looks.values()) <= 5, looks
